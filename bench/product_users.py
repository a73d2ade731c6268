"""Create the benchmark's users in the product's database and print their bearer tokens.

Run with the product's settings (DJANGO_SETTINGS_MODULE=chatsite.settings, DATABASE_URL of
the benchmark database), from the repository root:

    python bench/product_users.py PREFIX COUNT OUT.json

Users are PREFIX0000, PREFIX0001, ... with unusable passwords; OUT.json is a list of
{"username", "token", "conversation"}. Tokens come from messaging.domain.tokens.token_issue,
as a client's would. The pairs the load generator uses (0 and 1, 2 and 3, ...) get their
direct conversation here, so that no measured send pays for opening one; "conversation" is
its id.
"""

import json
import os
import sys
from pathlib import Path

# The product checkout to use is the working directory (bench/run.py sets it).
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import transaction  # noqa: E402

try:
    from messaging.domain.services import conversation_open_direct
    from messaging.domain.tokens import token_issue
except ImportError:
    # A product checkout from before the layer packages (BENCH_PRODUCT_DIR, to compare).
    from messaging.services import conversation_open_direct
    from messaging.tokens import token_issue


def main() -> None:
    prefix, count, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    User = get_user_model()
    names = [f"{prefix}{index:04d}" for index in range(count)]
    with transaction.atomic():
        existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
        fresh = []
        for name in names:
            if name not in existing:
                user = User(username=name)
                user.set_unusable_password()
                fresh.append(user)
        User.objects.bulk_create(fresh, batch_size=1000)
        users = {user.username: user for user in User.objects.filter(username__in=names)}
        rows = [{"username": name, "token": token_issue(user=users[name])} for name in names]
        for index in range(0, len(names) - 1, 2):
            conversation, _ = conversation_open_direct(
                user=users[names[index]], other=users[names[index + 1]]
            )
            rows[index]["conversation"] = rows[index + 1]["conversation"] = conversation.pk
    out.write_text(json.dumps(rows))
    print(f"{len(rows)} users with tokens in {out}")


if __name__ == "__main__":
    main()
