"""Measure what recording handshakes and their `ready` costs the database thread.

Calls messaging.realtime.opening_batch.open_sockets (the presence rows, the announcement
that their users came online, each `ready`: last stamp and online peers) as the handshakes
waiting together call it, then messaging.domain.presence.sockets_closed for the same
sockets, on this thread alone, in batches of 1, 10 and 100 sockets of different users. It
runs against the benchmark's database as a `make bench` leaves it (its users); every
socket it records it removes. Run from the repository root:

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat_bench \\
        .venv/bin/python bench/open_cost.py

Prints, for each batch size, the median CPU of this thread per socket opened and closed.
"""

import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

# The product checkout to use is the working directory.
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from messaging.delivery import fanout  # noqa: E402
from messaging.domain import presence  # noqa: E402
from messaging.realtime.opening_batch import open_sockets  # noqa: E402

BATCHES = (1, 10, 100)
ROUNDS = 20
PROCESS = f"open-cost-{uuid.uuid4().hex[:8]}"


@dataclass
class Socket:
    """What open_sockets reads of a socket being opened."""

    user: Any
    channel_name: str = field(default_factory=lambda: f"specific.{PROCESS}!{uuid.uuid4().hex}")
    scope: dict = field(default_factory=dict)


def round_of(users: list) -> tuple[float, float]:
    """Open and close one socket for each user; return this thread's CPU of each, in ms."""
    sockets = [Socket(user) for user in users]
    started = time.thread_time()
    readies, _, _ = fanout.call_collecting(
        open_sockets, sockets=sockets, process=PROCESS, max_sockets=100
    )
    opened = time.thread_time()
    if any(isinstance(ready, str) for ready in readies):
        raise SystemExit(f"refused: {readies}")
    fanout.call_collecting(
        presence.sockets_closed, closings=[(s.user, s.channel_name) for s in sockets]
    )
    return (opened - started) * 1000, (time.thread_time() - opened) * 1000


def main() -> None:
    users = list(get_user_model().objects.filter(is_active=True).order_by("pk")[: max(BATCHES)])
    if len(users) < max(BATCHES):
        raise SystemExit("the database has too few users: run `make bench` first")
    print(f"{'sockets at once':>15} {'open ms/socket':>15} {'close ms/socket':>16}")
    for size in BATCHES:
        for _ in range(2):
            round_of(users[:size])
        spent = [round_of(users[:size]) for _ in range(ROUNDS)]
        opening = statistics.median(o for o, _ in spent) / size
        closing = statistics.median(c for _, c in spent) / size
        print(f"{size:>15} {opening:>15.3f} {closing:>16.3f}", flush=True)


if __name__ == "__main__":
    main()
