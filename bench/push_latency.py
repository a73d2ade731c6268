"""Measure the latency of Web Push: from a message's commit to the push service's receipt.

1,000 people, each away (no socket) with one push subscription at a push service on
127.0.0.1 that checks the VAPID signature and decrypts every push as a real one would
(tests/push_service.py). Messages to them are stored through the send pipeline's batch
(messaging/sending/batch.py, as sockets send them); one `manage.py chat_worker` process,
started as in production, finds them with its push scan and posts the pushes. Two runs:
a burst (1,000 messages committed at once, in batches of 50) and a steady rate (100 a
second for 10 seconds). Run from the repository root:

    .venv/bin/python bench/push_latency.py

It makes (and next time empties) the PostgreSQL database chat_push_bench, or the one
PUSH_BENCH_DATABASE_URL names. The push service runs in a process of its own and notes
the time each push arrived; everything runs on this machine, so its decryption competes
with the worker for the CPU.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get(
    "PUSH_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chat_push_bench"
)
PEOPLE = 1000
BATCH = 50
RATE = 100  # messages a second in the steady run
STEADY_SECONDS = 10


def database_made() -> None:
    """Create the benchmark's database if it is missing, and migrate it."""
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if exists.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=environment({}),
        check=True,
    )


def environment(extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DEBUG": "1",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": "",
        "CHAT_EMBEDDED_WORKER": "0",
        # The benchmark opens a conversation with each person at once.
        "CHAT_CONVERSATION_RATE": "1000000/1s",
        **extra,
    }


def main() -> None:
    database_made()
    from messaging.jobs import vapid

    key = vapid.new_private_key()
    os.environ.update(environment({"CHAT_VAPID_PRIVATE_KEY": key}))
    import django

    django.setup()
    service = RemoteService(vapid.public_key_of(key))
    os.environ["CHAT_PUSH_ENDPOINTS_ALLOWED"] = service.origin + "/"
    _, conversations = people(service)
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "chat_worker"],
        cwd=ROOT,
        env=environment(
            {"CHAT_VAPID_PRIVATE_KEY": key, "CHAT_PUSH_ENDPOINTS_ALLOWED": service.origin + "/"}
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_first_scan()
        burst = run(service, conversations, steady=False)
        report("burst: 1,000 messages committed at once, in batches of 50", burst)
        steady = run(service, conversations, steady=True)
        report(f"steady: {RATE} messages a second for {STEADY_SECONDS} s", steady)
    finally:
        worker.terminate()
        worker.wait(30)
        service.stop()


def serve(expected_key: str, count: int, answers, receipts) -> None:
    """Run the push service in this (child) process: hand out `count` subscriptions, then
    report (body, arrival time) of every push taken."""
    from tests.push_service import PushService

    service = PushService().start()
    service.expected_key = expected_key
    answers.put((service.origin, [service.browser().subscription() for _ in range(count)]))
    reported = 0
    while True:
        taken = service.taken()
        for push in taken[reported:]:
            receipts.put((push.payload["body"], push.at))
        reported = len(taken)
        if service.problems:
            receipts.put(("problem", service.problems[0]))
            return
        with service.changed:
            service.changed.wait(0.05)


class RemoteService:
    """The push service in a process of its own, as seen from here."""

    def __init__(self, expected_key: str) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        answers, self.receipts = context.Queue(), context.Queue()
        self.process = context.Process(
            target=serve, args=(expected_key, PEOPLE, answers, self.receipts), daemon=True
        )
        self.process.start()
        self.origin, self.subscriptions = answers.get(timeout=60)
        self.arrived: dict[str, float] = {}

    def wait_for(self, bodies: set[str], timeout: float) -> dict[str, float]:
        """Wait until pushes with these bodies arrived; return when each did."""
        deadline = time.monotonic() + timeout
        while not bodies <= self.arrived.keys():
            body, at = self.receipts.get(timeout=max(0.1, deadline - time.monotonic()))
            if body == "problem":
                raise AssertionError(f"the push service refused a push: {at}")
            self.arrived[body] = at
        return {body: self.arrived[body] for body in bodies}

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


def people(service):
    """Make the senders, the people away with one subscription each, and their pairs."""
    from django.contrib.auth import get_user_model
    from django_tasks_db.models import DBTaskResult

    from messaging.domain import services
    from messaging.models import JobClock, JobWorker, PushSubscription

    User = get_user_model()
    # What an earlier run left: its people (their messages and subscriptions go with them).
    User.objects.filter(username__startswith="pb-").delete()
    DBTaskResult.objects.all().delete()
    JobClock.objects.all().delete()
    JobWorker.objects.all().delete()
    PushSubscription.objects.all().delete()
    senders = [User.objects.create_user(f"pb-sender-{n}", password="x") for n in range(20)]
    away = User.objects.bulk_create(
        [User(username=f"pb-away-{n}", password="!") for n in range(PEOPLE)]
    )
    PushSubscription.objects.bulk_create(
        [
            PushSubscription(
                user=person,
                endpoint=subscription["endpoint"],
                p256dh=subscription["keys"]["p256dh"],
                auth=subscription["keys"]["auth"],
            )
            for person, subscription in zip(away, service.subscriptions, strict=True)
        ]
    )
    conversations = []
    for n, person in enumerate(away):
        sender = senders[n % len(senders)]
        conversation, _ = services.conversation_open_direct(user=sender, other=person)
        conversations.append((sender, conversation.pk, person.pk))
    return senders, conversations


def wait_for_first_scan() -> None:
    from messaging.models import JobClock

    deadline = time.monotonic() + 30
    while not JobClock.objects.filter(name="push_scan", state__has_key="high").exists():
        assert time.monotonic() < deadline, "the worker never scanned"
        time.sleep(0.1)
    time.sleep(0.5)


_round = iter(range(1, 1_000_000))


def run(service, conversations, *, steady: bool) -> list[float]:
    """Send one message to each person away; return each push's latency in seconds."""
    from messaging.sending.batch import SendRequest, messages_send_many

    label = next(_round)
    committed: dict[str, float] = {}
    started = time.monotonic()
    for start in range(0, len(conversations), BATCH):
        chunk = conversations[start : start + BATCH]
        if steady:
            # Batches of RATE/10 every 100 ms: the pace of RATE a second.
            per_tick = RATE // 10
            for tick_start in range(0, len(chunk), per_tick):
                part = chunk[tick_start : tick_start + per_tick]
                due = started + (start + tick_start) / RATE
                time.sleep(max(0.0, due - time.monotonic()))
                committed.update(send(part, label, messages_send_many, SendRequest))
        else:
            committed.update(send(chunk, label, messages_send_many, SendRequest))
    arrived = service.wait_for(set(committed), timeout=120)
    return [arrived[body] - committed[body] for body in committed]


def send(chunk, label, messages_send_many, SendRequest) -> dict[str, float]:
    requests = [
        SendRequest(
            sender=sender,
            body=f"r{label} to {person}",
            client_id=f"r{label}-{person}",
            conversation_id=conversation_id,
        )
        for sender, conversation_id, person in chunk
    ]
    outcomes, _ = messages_send_many(requests)
    done = time.time()
    assert all(outcome.result is not None for outcome in outcomes)
    return {request.body: done for request in requests}


def report(title: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    print(
        f"{title}: {len(ordered)} pushes, commit to receipt p50 {p50 * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
