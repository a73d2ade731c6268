"""A worker: takes jobs from the database and runs them, many at once; runs the duties.

Any number of workers may run against one database (`manage.py chat_worker` processes,
and daphne processes with the embedded defaults): a job is taken by one of them, under a
row lock that the others skip (SELECT ... FOR UPDATE SKIP LOCKED; SQLite takes one writer
at a time anyway). Jobs of plain functions run on CHAT_WORKER_THREADS threads; coroutine
jobs (pushes) run on the push client's event loop, many at once, so that a slow email
server never holds up a push and a slow push service never holds up a thread.

A job that raises is put back to run again after a wait that doubles each time (RetryLater
may narrow its arguments to what is left to do); after CHAT_JOB_ATTEMPTS tries, or on
GiveUp, it fails for good. A worker that dies (its heartbeat older than CHAT_WORKER_TTL)
leaves its running jobs to the others, which run them again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks.utils import normalize_json
from django_tasks_db.models import DBTaskResult

from messaging import metrics
from messaging.jobs import duties
from messaging.jobs.push_client import push_client
from messaging.jobs.queue import GiveUp, RetryLater, ready_jobs
from messaging.models import JobWorker

log = logging.getLogger(__name__)

# Queues whose jobs are coroutines, run on the push loop.
ASYNC_QUEUES = ("push",)
SYNC_QUEUES = ("default", "email")
# Coroutine jobs one worker runs at once (each may post many pushes).
ASYNC_JOBS = 32
# Of those, the jobs of one push service (a job posts to one): a service that hangs holds
# at most these places, and the rest stay free for the pushes to every other service.
ASYNC_JOBS_PER_SERVICE = 8
# The longest wait before a retry.
LONGEST_RETRY = 3600.0
# How long a stopping worker waits for its running jobs before leaving them to others.
STOP_GRACE = 15.0


def retry_wait(attempt: int) -> float:
    """Return the wait before try `attempt + 1`: doubling from CHAT_JOB_RETRY_SECONDS, with
    a little jitter so that jobs failing together do not come back together."""
    base = settings.CHAT_JOB_RETRY_SECONDS * 2 ** max(0, attempt - 1)
    return min(LONGEST_RETRY, base) * random.uniform(0.9, 1.1)


def new_worker_id() -> str:
    return f"{socket.gethostname()[:32]}-{os.getpid()}-{secrets.token_hex(4)}"


class Runner:
    """One worker: its id, its threads, the jobs it runs now."""

    def __init__(
        self,
        *,
        worker_id: str | None = None,
        threads: int | None = None,
        embedded: bool = False,
        run_duties: bool = True,
    ) -> None:
        self.id = worker_id or new_worker_id()
        self.threads = threads or settings.CHAT_WORKER_THREADS
        self.embedded = embedded
        self.run_duties = run_duties
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="chat-job")
        self.running: dict[str, Future] = {}
        self.async_running = 0
        self.async_per_service: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.beaten_at = 0.0
        self.clocks_ready = False
        self.idle_wait = settings.CHAT_WORKER_POLL_SECONDS

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        """Run jobs and duties until stop() is called."""
        log.info("worker %s starting (%d threads)", self.id, self.threads)
        try:
            while not self.stopping.is_set():
                if not self.step():
                    self.wake.wait(self.idle_wait)
                    self.wake.clear()
        finally:
            self._leave()

    def stop(self) -> None:
        """Ask the loop to finish: it takes no more jobs, and waits for those running."""
        self.stopping.set()
        self.wake.set()

    def step(self) -> bool:
        """Beat, run the due duties, take jobs; tell whether any job was taken."""
        try:
            if time.monotonic() - self.beaten_at >= settings.CHAT_WORKER_HEARTBEAT_SECONDS:
                self.beat()
            if self.run_duties:
                if not self.clocks_ready:
                    duties.clocks_made()
                    self.clocks_ready = True
                duties.run_due()
                # Wake for the next duty on time rather than up to a poll late.
                self.idle_wait = min(
                    settings.CHAT_WORKER_POLL_SECONDS, duties.seconds_to_next() + 0.005
                )
            return self.take() > 0
        except DatabaseError as error:
            log.warning("worker %s: database error: %s", self.id, type(error).__name__)
            self.stopping.wait(1)
            return False
        finally:
            # The loop's thread keeps no connection between steps (CONN_MAX_AGE = 0).
            connection.close()

    def run_until_idle(self, *, timeout: float = 30, with_duties: bool = False) -> int:
        """Run jobs (and duties) until none waits and none runs; return how many ran."""
        self.beat()
        done = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if with_duties:
                duties.clocks_made()
                duties.run_due()
            taken = self.take()
            done += taken
            connection.close()
            with self.lock:
                pending = list(self.running.values())
            for future in pending:
                future.result(max(0.1, deadline - time.monotonic()))
            if not taken and not pending:
                return done
        raise TimeoutError(f"jobs still waiting or running after {timeout} s")

    # --- heartbeat and jobs of dead workers ---------------------------------------------

    def beat(self) -> None:
        """Say this worker is alive; put back the jobs of workers that are not."""
        now = timezone.now()
        JobWorker.objects.update_or_create(
            id=self.id, defaults={"heartbeat_at": now, "embedded": self.embedded}
        )
        self.beaten_at = time.monotonic()
        recover_abandoned(now=now)

    def _leave(self) -> None:
        """Wait a while for the running jobs, put back the rest, and say goodbye."""
        with self.lock:
            pending = list(self.running.values())
        deadline = time.monotonic() + STOP_GRACE
        for future in pending:
            try:
                future.result(max(0.0, deadline - time.monotonic()))
            except Exception:
                pass
        self.pool.shutdown(wait=False, cancel_futures=True)
        try:
            with self.lock:
                unfinished = list(self.running)
            put_back(unfinished, worker_id=self.id)
            JobWorker.objects.filter(id=self.id).delete()
        except DatabaseError:
            pass  # The others put them back once this worker's heartbeat is old.
        finally:
            connection.close()
        log.info("worker %s stopped", self.id)

    # --- taking and running jobs --------------------------------------------------------

    def take(self) -> int:
        """Claim as many ready jobs as there is room for; start each; return how many."""
        with self.lock:
            room_sync = self.threads - (len(self.running) - self.async_running)
            room_async = ASYNC_JOBS - self.async_running
            service_room = {
                service: ASYNC_JOBS_PER_SERVICE - running
                for service, running in self.async_per_service.items()
            }
        taken = 0
        if room_async > 0:
            for job in self.claim(ASYNC_QUEUES, room_async, service_room=service_room):
                self.start(job)
                taken += 1
        if room_sync > 0:
            for job in self.claim(SYNC_QUEUES, room_sync):
                self.start(job)
                taken += 1
        return taken

    def claim(
        self, queues: tuple[str, ...], count: int, *, service_room: dict[str, int] | None = None
    ) -> list[DBTaskResult]:
        """Mark up to `count` ready jobs of these queues as this worker's; return them.

        With `service_room` (push jobs: the places each push service has left, those not
        named ASYNC_JOBS_PER_SERVICE), no service gets more than its places.
        """
        with transaction.atomic():
            ready = ready_jobs().filter(queue_name__in=queues)
            if service_room is not None:
                full = [service for service, room in service_room.items() if room <= 0]
                if full:
                    ready = ready.exclude(args_kwargs__kwargs__origin__in=full)
            jobs = list(ready.select_for_update(skip_locked=True)[:count])
            if service_room is not None:
                # Those left out stay ready: the next claim, with this service full, skips them.
                jobs = _within_room(jobs, service_room)
            if not jobs:
                return []
            now = timezone.now()
            for job in jobs:
                job.status = TaskResultStatus.RUNNING
                job.started_at = now
                job.worker_ids = [*job.worker_ids, self.id]
            DBTaskResult.objects.bulk_update(jobs, ["status", "started_at", "worker_ids"])
        return jobs

    def start(self, job: DBTaskResult) -> None:
        """Start a claimed job: a coroutine on the push loop, a function on a thread."""
        try:
            function = job.task.func
        except Exception as error:
            finish(job, error=GiveUp(f"cannot load {job.task_path}: {error}"))
            return
        kwargs = job.args_kwargs.get("kwargs", {})
        args = job.args_kwargs.get("args", [])
        coroutine = iscoroutinefunction(function)
        key = str(job.pk)
        service = service_of(job)
        with self.lock:
            if coroutine:
                future = asyncio.run_coroutine_threadsafe(
                    _run_coroutine(job, function, args, kwargs), push_client().loop
                )
                self.async_running += 1
                self.async_per_service[service] += 1
            else:
                future = self.pool.submit(_run_function, job, function, args, kwargs)
            self.running[key] = future

        def done(_: Future) -> None:
            with self.lock:
                self.running.pop(key, None)
                if coroutine:
                    self.async_running -= 1
                    self.async_per_service[service] -= 1
                    if self.async_per_service[service] <= 0:
                        del self.async_per_service[service]
            self.wake.set()

        future.add_done_callback(done)


def service_of(job: DBTaskResult) -> str:
    """Return the push service a push job posts to ("" for any other job)."""
    return str(job.args_kwargs.get("kwargs", {}).get("origin", ""))


def _within_room(jobs: list[DBTaskResult], service_room: dict[str, int]) -> list[DBTaskResult]:
    room = dict(service_room)
    kept = []
    for job in jobs:
        service = service_of(job)
        left = room.get(service, ASYNC_JOBS_PER_SERVICE)
        if left > 0:
            room[service] = left - 1
            kept.append(job)
    return kept


def _run_function(job: DBTaskResult, function, args: list, kwargs: dict[str, Any]) -> None:
    try:
        value = function(*args, **kwargs)
    except BaseException as error:
        finish(job, error=error)
    else:
        finish(job, value=value)
    finally:
        connection.close()


async def _run_coroutine(job: DBTaskResult, function, args: list, kwargs: dict[str, Any]) -> None:
    try:
        value = await function(*args, **kwargs)
    except Exception as error:
        await sync_to_async(_finish_and_close, thread_sensitive=False)(job, error=error)
    else:
        await sync_to_async(_finish_and_close, thread_sensitive=False)(job, value=value)


def _finish_and_close(job: DBTaskResult, **outcome: Any) -> None:
    try:
        finish(job, **outcome)
    finally:
        connection.close()


def finish(job: DBTaskResult, *, value: Any = None, error: BaseException | None = None) -> str:
    """Record a job's outcome: done, back in the queue to retry, or failed; return which.

    Only while the job is still this run's (its claim time unchanged): a job put back by
    another worker, which thought this one dead, is theirs now.
    """
    name = job.task_path.rsplit(".", 1)[-1]
    now = timezone.now()
    mine = DBTaskResult.objects.filter(
        pk=job.pk, status=TaskResultStatus.RUNNING, started_at=job.started_at
    )
    if error is None:
        mine.update(
            status=TaskResultStatus.SUCCESSFUL,
            finished_at=now,
            return_value=normalize_json(value),
            exception_class_path="",
            traceback="",
        )
        metrics.JOBS_DONE.labels(task=name).inc()
        return "done"
    attempts = len(job.worker_ids)
    described = {
        "exception_class_path": f"{type(error).__module__}.{type(error).__qualname__}",
        "traceback": "".join(traceback.format_exception(error))[-10000:],
    }
    if not isinstance(error, GiveUp) and attempts < settings.CHAT_JOB_ATTEMPTS:
        if isinstance(error, RetryLater) and error.kwargs is not None:
            described["args_kwargs"] = normalize_json({"args": [], "kwargs": error.kwargs})
        mine.update(
            status=TaskResultStatus.READY,
            run_after=now + timedelta(seconds=retry_wait(attempts)),
            **described,
        )
        metrics.JOBS_RETRIED.labels(task=name).inc()
        log.info("job %s (%s) to retry: %s", job.pk, name, error)
        return "retry"
    mine.update(status=TaskResultStatus.FAILED, finished_at=now, **described)
    metrics.JOBS_FAILED.labels(task=name).inc()
    log.warning("job %s (%s) failed after %d tries: %s", job.pk, name, attempts, error)
    return "failed"


def recover_abandoned(*, now=None) -> int:
    """Put back the running jobs of workers whose heartbeat stopped; return how many."""
    now = now or timezone.now()
    live = set(
        JobWorker.objects.filter(
            heartbeat_at__gte=now - timedelta(seconds=settings.CHAT_WORKER_TTL)
        ).values_list("id", flat=True)
    )
    with transaction.atomic():
        running = list(
            DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING)
            .select_for_update(skip_locked=True)
            .only("pk", "worker_ids", "task_path", "started_at")
        )
        abandoned = [
            job for job in running if not job.worker_ids or job.worker_ids[-1] not in live
        ]
        for job in abandoned:
            log.warning(
                "job %s: its worker %s stopped; running it again", job.pk, job.worker_ids[-1:]
            )
            finish(job, error=RuntimeError("the worker running this job stopped"))
    return len(abandoned)


def put_back(job_ids: list[str], *, worker_id: str) -> None:
    """Return a stopping worker's unfinished jobs to the queue at once."""
    if not job_ids:
        return
    with transaction.atomic():
        for job in DBTaskResult.objects.filter(
            pk__in=job_ids, status=TaskResultStatus.RUNNING
        ).select_for_update():
            if job.worker_ids and job.worker_ids[-1] == worker_id:
                DBTaskResult.objects.filter(pk=job.pk).update(
                    status=TaskResultStatus.READY, run_after=timezone.now()
                )
