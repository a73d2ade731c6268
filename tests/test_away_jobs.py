"""Background jobs: retries with backoff, failing for good, jobs of a dead worker run again,
the retention of finished jobs, the queue's health and gauges, and the push scan that
loses no message."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus, task
from django_tasks_db.models import DBTaskResult

from messaging import metrics
from messaging.domain import services
from messaging.jobs import duties, embedded, queue, runner
from messaging.jobs.queue import GiveUp, RetryLater, enqueue_many
from messaging.jobs.runner import Runner
from messaging.jobs.tasks import push_send
from messaging.models import JobClock, JobWorker, Message

pytestmark = pytest.mark.django_db(transaction=True)

CALLS: list[dict] = []


@task()
def note(word: str) -> str:
    CALLS.append({"word": word, "thread": threading.current_thread().name})
    return word.upper()


@task()
def narrowing(left: list[int]) -> int:
    CALLS.append({"left": list(left)})
    if len(left) > 1:
        raise RetryLater("one at a time", kwargs={"left": left[1:]})
    return left[0]


@task()
def always_failing() -> None:
    CALLS.append({"failed": True})
    raise ConnectionError("the mail server is down")


@task()
def hopeless() -> None:
    CALLS.append({"hopeless": True})
    raise GiveUp("this address can never work")


@pytest.fixture(autouse=True)
def _fresh_calls(settings):
    CALLS.clear()
    settings.CHAT_JOB_RETRY_SECONDS = 0


def job_rows():
    return list(DBTaskResult.objects.order_by("enqueued_at"))


def make_due():
    """Let the jobs waiting for a retry run now."""
    DBTaskResult.objects.filter(status=TaskResultStatus.READY).update(run_after=timezone.now())


def counter(family, **labels) -> float:
    return family.labels(**labels)._value.get()


def test_a_job_runs_once_on_a_worker_thread_and_records_its_result():
    with transaction.atomic():
        enqueue_many(note, [{"word": "hello"}])
    assert Runner(threads=2).run_until_idle() == 1
    (row,) = job_rows()
    assert row.status == TaskResultStatus.SUCCESSFUL and row.return_value == "HELLO"
    assert [call["word"] for call in CALLS] == ["hello"]
    assert CALLS[0]["thread"].startswith("chat-job")
    assert Runner(threads=2).run_until_idle() == 0


def test_a_job_rolled_back_with_its_transaction_never_runs():
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_many(note, [{"word": "ghost"}])
        raise RuntimeError("the message's transaction failed")
    assert job_rows() == []
    assert Runner(threads=1).run_until_idle() == 0 and CALLS == []


def test_a_failing_job_is_retried_with_a_doubling_wait_then_fails_for_good(settings):
    settings.CHAT_JOB_ATTEMPTS = 3
    settings.CHAT_JOB_RETRY_SECONDS = 5
    retried = counter(metrics.JOBS_RETRIED, task="always_failing")
    failed = counter(metrics.JOBS_FAILED, task="always_failing")
    enqueue_many(always_failing, [{}])

    waits = []
    for _ in range(3):
        before = timezone.now()
        Runner(threads=1).run_until_idle()
        (row,) = job_rows()
        if row.status == TaskResultStatus.READY:
            waits.append((row.run_after - before).total_seconds())
            make_due()
    assert row.status == TaskResultStatus.FAILED
    assert row.exception_class_path == "builtins.ConnectionError"
    assert "the mail server is down" in row.traceback
    assert len(CALLS) == 3 and len(row.worker_ids) == 3
    assert 4.4 <= waits[0] <= 5.6 and 8.9 <= waits[1] <= 11.1
    assert counter(metrics.JOBS_RETRIED, task="always_failing") == retried + 2
    assert counter(metrics.JOBS_FAILED, task="always_failing") == failed + 1


def test_a_retry_carries_on_with_what_is_left_and_give_up_fails_at_once():
    enqueue_many(narrowing, [{"left": [1, 2, 3]}])
    enqueue_many(hopeless, [{}])
    for _ in range(3):
        Runner(threads=1).run_until_idle()
        make_due()
    assert [call["left"] for call in CALLS if "left" in call] == [[1, 2, 3], [2, 3], [3]]
    statuses = {row.task_path.rsplit(".", 1)[1]: row.status for row in job_rows()}
    assert statuses == {"narrowing": "SUCCESSFUL", "hopeless": "FAILED"}
    assert sum(1 for call in CALLS if "hopeless" in call) == 1


def test_the_jobs_of_a_worker_that_stopped_beating_run_again_elsewhere_once(settings):
    settings.CHAT_WORKER_TTL = 30
    enqueue_many(note, [{"word": "orphan"}])
    dead = Runner(worker_id="dead-worker")
    dead.beat()
    (claimed,) = dead.claim(("default",), 1)
    # The process died with the job running: its heartbeat grows old.
    JobWorker.objects.filter(id="dead-worker").update(
        heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    live = Runner(worker_id="live-worker")
    live.beat()
    make_due()
    assert live.run_until_idle() == 1
    (row,) = job_rows()
    assert row.status == TaskResultStatus.SUCCESSFUL
    assert row.worker_ids == ["dead-worker", "live-worker"]
    assert [call["word"] for call in CALLS] == ["orphan"]
    # The dead worker coming back to finish it changes nothing: the job is not its own now.
    assert runner.finish(claimed, value="late") == "done"
    (row,) = job_rows()
    assert row.return_value == "ORPHAN"


@pytest.mark.services
def test_two_workers_never_take_the_same_job():
    enqueue_many(note, [{"word": f"w{n}"} for n in range(40)])
    first, second = Runner(worker_id="one"), Runner(worker_id="two")
    claimed: list[list] = [[], []]

    def claim_all(worker, into):
        while taken := worker.claim(("default",), 3):
            into.extend(job.pk for job in taken)

    threads = [
        threading.Thread(target=claim_all, args=(worker, into))
        for worker, into in zip((first, second), claimed, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed[0]) + len(claimed[1]) == 40
    assert not set(claimed[0]) & set(claimed[1])


def test_finished_jobs_are_deleted_after_the_retention_and_waiting_ones_never(settings):
    settings.CHAT_JOBS_KEEP_DAYS = 7
    enqueue_many(note, [{"word": word} for word in ("old", "recent", "waiting")])
    Runner(threads=1).run_until_idle()
    old, recent, waiting = job_rows()
    DBTaskResult.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=8))
    DBTaskResult.objects.filter(pk=waiting.pk).update(
        status=TaskResultStatus.READY, finished_at=None
    )
    duties.run_now("clean_up")
    assert duties.run_due([duty for duty in duties.DUTIES if duty.name == "clean_up"]) == [
        "clean_up"
    ]
    assert {row.pk for row in job_rows()} == {recent.pk, waiting.pk}
    assert JobClock.objects.get(name="clean_up").state == {"last_deleted": 1}
    # Scheduled: the next clean-up is an hour away.
    assert duties.run_due(duties.DUTIES[2:]) == []


def test_a_queue_that_has_not_moved_for_a_minute_shows_in_healthz_and_metrics(client):
    assert client.get("/healthz").json()["checks"]["jobs"] == "ok"
    enqueue_many(note, [{"word": "stuck"}])
    DBTaskResult.objects.update(enqueued_at=timezone.now() - timedelta(seconds=90))
    health = client.get("/healthz")
    # Shown, not counted against the process: it still serves the chat.
    assert health.status_code == 200
    assert health.json()["checks"]["jobs"] == "no worker running; jobs waiting for 90 s"
    Runner(worker_id="idle").beat()
    assert client.get("/healthz").json()["checks"]["jobs"] == "queue has not moved for 90 s"
    scraped = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    line = next(
        ln for ln in scraped.splitlines() if ln.startswith("chat_jobs_oldest_queued_seconds")
    )
    assert 89 <= float(line.split()[1]) <= 95

    Runner(threads=1).run_until_idle()
    assert client.get("/healthz").json()["checks"]["jobs"] == "ok"


def test_the_embedded_worker_starts_only_under_daphne():
    assert embedded.under_daphne(["/srv/chat/.venv/bin/daphne", "-p", "8001"])
    assert embedded.under_daphne(["/usr/lib/python3/site-packages/daphne/__main__.py"])
    assert not embedded.under_daphne(["manage.py", "chat_worker"])
    assert not embedded.under_daphne(["/srv/chat/.venv/bin/pytest"])


def test_chat_worker_once_runs_what_waits_and_exits():
    from django.core.management import call_command

    enqueue_many(note, [{"word": "a"}, {"word": "b"}])
    call_command("chat_worker", "--once")
    assert sorted(call["word"] for call in CALLS) == ["a", "b"]
    assert {row.status for row in job_rows()} == {TaskResultStatus.SUCCESSFUL}


def test_the_push_scan_finds_a_message_that_commits_after_a_later_one(alice, bob):
    """PostgreSQL may commit a message with a smaller id after one with a larger id: the
    scan looks for the missing id again until it appears (or a minute passes)."""
    # The first pass starts from the newest message: one is there, so that ids that tests
    # before this one used and rolled back are not taken for gaps.
    services.message_send(sender=alice, body="before", client_id="e0", to="bob")
    duties.run_now("push_scan")
    duties.run_due(duties.DUTIES[:1])
    early = services.message_send(sender=alice, body="early", client_id="e1", to="bob").message
    late = services.message_send(sender=alice, body="late", client_id="e2", to="bob").message
    kept = Message.objects.filter(pk=early.pk)
    row = kept.values()[0]
    kept.delete()  # Not committed yet, as far as the scan can tell.

    seen: list[list[int]] = []
    original = duties.away.push_targets
    duties.away.push_targets = lambda messages: seen.append([m.id for m in messages]) or []
    try:
        duties.run_now("push_scan")
        duties.run_due(duties.DUTIES[:1])
        # (On PostgreSQL the ids of earlier tests' messages, below, are missing too.)
        assert str(early.pk) in JobClock.objects.get(name="push_scan").state["gaps"]
        Message.objects.create(**row)  # It commits now.
        duties.run_now("push_scan")
        duties.run_due(duties.DUTIES[:1])
    finally:
        duties.away.push_targets = original
    assert seen == [[late.pk], [early.pk]]
    assert str(early.pk) not in JobClock.objects.get(name="push_scan").state["gaps"]


def test_a_gap_that_never_fills_is_given_up_after_a_minute(monkeypatch):
    JobClock.objects.create(
        name="push_scan", next_run_at=timezone.now(), state={"high": 10, "gaps": {}}
    )
    clock = [1000.0]
    monkeypatch.setattr(duties.time, "time", lambda: clock[0])
    state = duties.push_scan({"high": 10, "gaps": {"7": 1000.0}})
    assert state["gaps"] == {"7": 1000.0}
    clock[0] += duties.GAP_SECONDS + 1
    assert duties.push_scan(state)["gaps"] == {}


def test_queue_health_words():
    state = queue.QueueState(
        waiting=3, running=0, oldest_waiting=75, since_finished=5, live_workers=1
    )
    assert queue.health_reason(state) == "ok"  # busy, but moving
    stuck = queue.QueueState(
        waiting=3, running=1, oldest_waiting=75, since_finished=300, live_workers=1
    )
    assert queue.health_reason(stuck) == "queue has not moved for 75 s"


HUNG_SERVICE, FINE_SERVICE = "https://hung.push.example", "https://fine.push.example"


def test_a_push_service_that_hangs_holds_a_few_places_and_the_other_services_pushes_go(
    monkeypatch,
):
    # Forty push jobs wait for a service that never answers, then one for another service.
    enqueue_many(push_send, [{"origin": HUNG_SERVICE, "items": []} for _ in range(40)])
    enqueue_many(push_send, [{"origin": FINE_SERVICE, "items": []}])
    posted = threading.Event()

    async def post(job, function, args, kwargs) -> None:
        if kwargs["origin"] == HUNG_SERVICE:
            await asyncio.Event().wait()  # no answer, ever
        posted.set()

    monkeypatch.setattr(runner, "_run_coroutine", post)
    worker = Runner(worker_id="one")
    try:
        while worker.take():
            pass
        assert posted.wait(5), "the other service's push waited behind the hung one"
        assert worker.async_per_service[HUNG_SERVICE] == runner.ASYNC_JOBS_PER_SERVICE
        waiting = DBTaskResult.objects.filter(status=TaskResultStatus.READY).count()
        assert waiting == 40 - runner.ASYNC_JOBS_PER_SERVICE  # for the next free place
    finally:
        for future in list(worker.running.values()):
            future.cancel()
        worker.pool.shutdown()
