"""Measure what one batch of sends costs: wall time, this thread's CPU and PostgreSQL's.

Calls messaging.sending.batch.messages_send_many in a loop, on this thread alone, against the
benchmark's database as `make bench` leaves it (its users, paired, with their direct
conversations). Run from the repository root, after a `make bench`:

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat_bench \\
        .venv/bin/python bench/batch_cost.py

It adds messages to that database (the next `make bench` makes it afresh).
"""

import os
import statistics
import sys
import time
import uuid

# The product checkout to use is the working directory.
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

import django
import psutil

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from messaging.models import Conversation  # noqa: E402
from messaging.sending.batch import SendRequest, messages_send_many  # noqa: E402

# Batch size: how many batches of it to time.
ROUNDS = {1: 400, 10: 100, 50: 30}


def pairs() -> list[tuple[object, int]]:
    """Return (sender, conversation id) of the benchmark's pairs."""
    users = list(get_user_model().objects.filter(username__startswith="u").order_by("pk")[:200])
    by_key = dict(
        Conversation.objects.filter(kind=Conversation.Kind.DIRECT).values_list("direct_key", "pk")
    )
    found = [
        (first, by_key[Conversation.direct_key_for(first.pk, second.pk)])
        for first, second in zip(users[::2], users[1::2], strict=False)
        if Conversation.direct_key_for(first.pk, second.pk) in by_key
    ]
    if not found:
        raise SystemExit("no paired users with conversations: run `make bench` first")
    return found


def backend_cpu():
    """Return a function giving the CPU seconds used so far by this connection's backend."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cursor.fetchone()[0])

    def used() -> float:
        times = backend.cpu_times()
        return times.user + times.system

    return used


def main() -> None:
    senders = pairs()
    database_cpu = backend_cpu()
    for size, rounds in ROUNDS.items():
        walls, cpus, database = [], [], []
        for round_ in range(rounds):
            requests = [
                SendRequest(sender, "hello there", uuid.uuid4().hex, conversation_id=chat)
                for sender, chat in (
                    senders[(round_ * size + k) % len(senders)] for k in range(size)
                )
            ]
            wall, cpu, used = time.perf_counter(), time.thread_time(), database_cpu()
            outcomes, _ = messages_send_many(requests)
            database.append(database_cpu() - used)
            cpus.append(time.thread_time() - cpu)
            walls.append(time.perf_counter() - wall)
            refused = [outcome.error for outcome in outcomes if outcome.error is not None]
            if refused:
                raise SystemExit(f"a send was refused: {refused[0]}")
        cpu_ms = statistics.median(cpus) * 1000
        print(
            f"batch of {size}: wall p50 {statistics.median(walls) * 1000:.2f} ms,"
            f" CPU p50 {cpu_ms:.2f} ms ({cpu_ms / size:.3f} ms a send),"
            # The kernel counts a process's CPU in ticks: only a mean over many batches says.
            f" PostgreSQL CPU mean {statistics.mean(database) * 1000:.2f} ms"
        )


if __name__ == "__main__":
    main()
