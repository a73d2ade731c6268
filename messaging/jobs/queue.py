"""The job queue: django-tasks-db's table, enqueued into in bulk, and how it is doing.

Jobs are DBTaskResult rows. Enqueueing writes them in the caller's transaction, so a job
is there exactly when what made it committed. The workers (messaging/jobs/runner.py)
take them in order of priority, then of when they may run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks.utils import normalize_json
from django_tasks_db.models import DBTaskResult, get_date_max

from messaging import metrics
from messaging.models import JobWorker
from messaging.singletons import per_process

# The queue has not moved when its oldest job waited this long and no job finished since.
STUCK_AFTER = 60.0


class RetryLater(Exception):
    """Raised by a job that should run again later (with backoff), with new arguments if
    it did part of its work."""

    def __init__(self, reason: str, *, kwargs: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.kwargs = kwargs


class GiveUp(Exception):
    """Raised by a job that can never succeed: it fails at once, without retries."""


def enqueue_many(task, calls: Sequence[dict[str, Any]], *, run_after: datetime | None = None):
    """Enqueue one job of `task` per keyword arguments in `calls`, in one statement.

    As the task's backend would one by one (the same rows), in the caller's transaction.
    """
    if not calls:
        return []
    rows = [
        DBTaskResult(
            id=uuid.uuid4(),
            args_kwargs=normalize_json({"args": [], "kwargs": kwargs}),
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            run_after=run_after or get_date_max(),
            backend_name=task.backend,
        )
        for kwargs in calls
    ]
    made = DBTaskResult.objects.bulk_create(rows)
    metrics.JOBS_QUEUED.labels(task=task.name).inc(len(made))
    return made


def ready_jobs():
    """Return the jobs that may run now, in the order workers take them."""
    return DBTaskResult.objects.ready().filter(backend_name="default")


@dataclass(frozen=True)
class QueueState:
    """How the queue is doing, read in one query."""

    waiting: int
    running: int
    # Seconds the longest-waiting job that may run has waited (0 if none waits).
    oldest_waiting: float
    # Seconds since a job last finished (None if none ever did).
    since_finished: float | None
    live_workers: int


def queue_state() -> QueueState:
    """Read how the queue is doing now."""
    now = timezone.now()
    date_max = get_date_max()
    may_run = Q(status=TaskResultStatus.READY) & (Q(run_after=date_max) | Q(run_after__lte=now))
    found = DBTaskResult.objects.aggregate(
        waiting=Count("pk", filter=may_run),
        running=Count("pk", filter=Q(status=TaskResultStatus.RUNNING)),
        enqueued=Min("enqueued_at", filter=may_run & Q(run_after=date_max)),
        due=Min("run_after", filter=may_run & ~Q(run_after=date_max)),
        finished=Max("finished_at"),
    )
    since = [moment for moment in (found["enqueued"], found["due"]) if moment is not None]
    live_since = now - timedelta(seconds=settings.CHAT_WORKER_TTL)
    return QueueState(
        waiting=found["waiting"],
        running=found["running"],
        oldest_waiting=max(0.0, (now - min(since)).total_seconds()) if since else 0.0,
        since_finished=(now - found["finished"]).total_seconds() if found["finished"] else None,
        live_workers=JobWorker.objects.filter(heartbeat_at__gte=live_since).count(),
    )


def health_reason(state: QueueState) -> str:
    """Say in a few words what is wrong with the queue, or "ok"."""
    if state.oldest_waiting < STUCK_AFTER:
        return "ok"
    if state.since_finished is not None and state.since_finished < STUCK_AFTER:
        return "ok"  # Busy, and moving.
    if not state.live_workers:
        return f"no worker running; jobs waiting for {state.oldest_waiting:.0f} s"
    return f"queue has not moved for {state.oldest_waiting:.0f} s"


def check_queue() -> str:
    """Check the queue for /healthz; refresh the queue's gauges on the way."""
    state = queue_state()
    _remember(state)
    return health_reason(state)


# /metrics shows the last state read without asking the database on its event loop; a
# read older than this starts a new one in a thread of its own.
GAUGES_MAX_AGE = 10.0


class _GaugeReading:
    """The last state read and when, and whether a read is under way."""

    def __init__(self) -> None:
        self.last: tuple[float, QueueState] | None = None
        self.reading = threading.Lock()


_gauge_reading = per_process(_GaugeReading)


def _remember(state: QueueState) -> None:
    _gauge_reading().last = (time.monotonic(), state)
    metrics.JOBS_WAITING.set(state.waiting)
    metrics.JOBS_RUNNING.set(state.running)
    metrics.JOBS_OLDEST_QUEUED.set(state.oldest_waiting)


def _read_in_background(reading: _GaugeReading) -> None:
    try:
        _remember(queue_state())
    except Exception:
        pass
    finally:
        connection.close()
        reading.reading.release()


def refresh_gauges() -> None:
    """Start reading the queue's state in a thread, unless a fresh one is known or under way."""
    reading = _gauge_reading()
    if reading.last is not None and time.monotonic() - reading.last[0] < GAUGES_MAX_AGE:
        return
    if reading.reading.acquire(blocking=False):
        threading.Thread(
            target=_read_in_background, args=(reading,), name="job-gauges", daemon=True
        ).start()
