"""Create the demo users alice, bob and carol once, and print their logins."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAMES = ("alice", "bob", "carol")


class Command(BaseCommand):
    help = (
        "Create the demo users alice, bob and carol with random passwords on first run, "
        "keep their logins in var/demo-logins.txt, and print them."
    )

    def handle(self, *args, **options) -> None:
        logins_file = Path(settings.VAR_DIR) / "demo-logins.txt"
        User = get_user_model()
        if not User.objects.filter(username__in=DEMO_USERNAMES).exists():
            lines = []
            for username in DEMO_USERNAMES:
                password = "-".join(secrets.token_hex(3) for _ in range(3))
                User.objects.create_user(username=username, password=password)
                lines.append(f"{username}  {password}")
            logins_file.parent.mkdir(parents=True, exist_ok=True)
            logins_file.write_text("\n".join(lines) + "\n")
            logins_file.chmod(0o600)
        if logins_file.exists():
            self.stdout.write("Demo logins (username  password):")
            self.stdout.write(logins_file.read_text().rstrip())
        else:
            self.stdout.write("Demo users exist; their logins are not on this machine.")
