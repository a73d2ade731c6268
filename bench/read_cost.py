"""The CPU a heavy user's reads cost the process, without HTTP or sockets around them.

On a database seeded by bench/seed_bigdb.py, from the root of the checkout to measure:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat_bigdb \\
        python bench/read_cost.py [--repeat 30]

Calls what each read of bench/bigdb.py calls (the inbox's first page, a history page of 50,
a `sync` page from 0, search for a rare and a common word) for the first heavy user, and
encodes the answer as JSON; and what a `typing` frame and a `read` frame that moves the
user's pointer cost (the latter rolled back after each call, so that every call moves it),
and what checking a bearer token costs (every bearer API request and handshake does);
prints each read's median CPU (this thread's) and wall time in milliseconds. One thread,
nothing else in the process: the figures move only with the code and the machine, so a
before/after pair run the same minute can be compared closely (bench/read_cpu.py gives
the same reads through daphne, with its noise). With --plans, each read's statements are
run again under `EXPLAIN (ANALYZE, BUFFERS)` instead: how many there are, their time in
PostgreSQL, and the slowest one's plan.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path.cwd()


def timed(read: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Run `read` `repeat` times after two warm-ups; return median CPU and wall ms."""
    for _ in range(2):
        read()
    cpu, wall = [], []
    for _ in range(repeat):
        began_cpu, began = time.thread_time(), time.perf_counter()
        read()
        cpu.append((time.thread_time() - began_cpu) * 1000)
        wall.append((time.perf_counter() - began) * 1000)
    return statistics.median(cpu), statistics.median(wall)


def plans(name: str, read: Callable[[], object]) -> str:
    """Run the read's statements under EXPLAIN ANALYZE; show their time and the slowest plan."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        read()
    explained = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
            plan = "\n".join(line for (line,) in cursor.fetchall())
            took = float(re.search(r"Execution Time: ([\d.]+) ms", plan)[1])
            explained.append((took, query["sql"], plan))
    took, sql, plan = max(explained)
    total = sum(ms for ms, _, _ in explained)
    return (
        f"=== {name}: {len(explained)} queries, {total:.1f} ms in PostgreSQL;"
        f" the slowest ({took:.1f} ms):\n{sql}\n{plan}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--user", default="heavy1")
    parser.add_argument("--only", help="these reads, separated by commas")
    parser.add_argument("--plans", action="store_true", help="EXPLAIN ANALYZE each read")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    os.environ.setdefault("SECRET_KEY", "bench-read-cost-" + "x" * 40)
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from messaging.domain import reading, selectors
    from messaging.domain.events import collecting
    from messaging.domain.search import message_search
    from messaging.models import Membership, Message
    from messaging.protocol import encode, message_data

    user = get_user_model().objects.get(username=args.user)
    group = (
        Membership.objects.filter(user=user, conversation__kind="group")
        .order_by("-conversation__last_activity_at")
        .values_list("conversation_id", flat=True)
        .first()
    )

    def inbox() -> str:
        page, has_more, cursor = selectors.conversation_page_for_user(user=user, limit=100)
        return json.dumps({"conversations": page, "has_more": has_more, "next_cursor": cursor})

    def history() -> str:
        page, has_more = selectors.message_history(conversation_id=group, before=None, limit=50)
        return json.dumps({"messages": [message_data(m) for m in page], "has_more": has_more})

    def sync() -> str:
        page, more = selectors.messages_after(user=user, after=0, limit=200)
        shown = [message_data(m) for m in page]
        return encode({"type": "sync.result", "messages": shown, "has_more": more})

    def search(word: str) -> Callable[[], str]:
        return lambda: json.dumps(message_search(user=user, query=word, before=None, limit=50))

    def typing() -> int:
        with collecting() as events:
            reading.conversation_typing(user=user, conversation_id=group)
        return len(events)

    newest = Message.objects.filter(conversation_id=group).order_by("-seq").values("pk")[:1]
    newest_id = newest[0]["pk"]

    def read_receipt() -> int:
        with collecting() as events, transaction.atomic():
            Membership.objects.filter(user=user, conversation_id=group).update(
                last_read_message_id=0
            )
            reading.conversation_mark_read(user=user, conversation_id=group, up_to=newest_id)
            transaction.set_rollback(True)
        return len(events)

    from messaging.domain.tokens import token_issue, token_revoke, tokens_for_keys, tokens_of

    bearer = token_issue(user=user, name="read_cost")

    def bearer_token() -> int:
        return sum(token is not None for token in tokens_for_keys([bearer]))

    reads = {
        "inbox": inbox,
        "history": history,
        "sync_from_0": sync,
        "search_rare": search("zanzibar"),
        "search_common": search("project"),
        "typing": typing,
        "read_receipt": read_receipt,
        "bearer_token": bearer_token,
    }
    chosen = args.only.split(",") if args.only else list(reads)
    try:
        if args.plans:
            for name in chosen:
                reads[name]()  # the cache warm, as for the timings
                print(plans(f"{name} ({args.user})", reads[name]), flush=True)
            return
        heading = f"{'read':<14} {'CPU ms':>8} {'wall ms':>8}"
        print(f"{heading}   ({args.repeat} times each, {args.user})")
        for name in chosen:
            cpu, wall = timed(reads[name], args.repeat)
            print(f"{name:<14} {cpu:8.2f} {wall:8.2f}", flush=True)
    finally:
        for token in tokens_of(user=user):
            if token.name == "read_cost":
                token_revoke(user=user, token_id=token.pk)


if __name__ == "__main__":
    main()
