"""/healthz: does the database answer, does the channel layer answer, do the jobs move."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from messaging.jobs.queue import check_queue
from messaging.singletons import per_process

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0


def _database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # This runs on a pool thread that no request will clean up after.
        connection.close()


def _jobs() -> None:
    """Check that the background jobs move (messaging/jobs/queue.py)."""
    try:
        reason = check_queue()
    finally:
        connection.close()
    if reason != "ok":
        raise JobsStuck(reason)


class JobsStuck(Exception):
    """The job queue has not moved for a while; the message says how long."""


# The checks a process cannot serve without: /healthz answers 503 when one fails. A stuck
# job queue is shown, not counted: this process still serves the chat, and the workers
# are watched apart (chat_jobs_oldest_queued_seconds, docs/operations.md).
REQUIRED = ("database", "channel_layer")


# How long a probe may take before another is sent. The channel layer delivers at most once:
# channels-redis loses a message that a socket's read popped from Redis just as the
# socket closed (its BZPOPMIN answered, the task cancelled before the message was kept).
PROBE_AGAIN_AFTER = 0.5


async def _channel_layer() -> None:
    """Send probes through the layer to this process until one comes back."""
    layer = get_channel_layer()
    # The default prefix: with channels-redis, this process's sockets already wait on that
    # channel family, and a channel of another family would queue behind their reads.
    channel = await layer.new_channel()
    sent: set[str] = set()
    while True:
        probe = uuid.uuid4().hex
        sent.add(probe)
        await layer.send(channel, {"type": "health.probe", "probe": probe})
        try:
            received = await asyncio.wait_for(layer.receive(channel), PROBE_AGAIN_AFTER)
        except TimeoutError:
            continue
        if received.get("probe") not in sent:
            raise RuntimeError("wrong message received")
        return


async def _run(name: str, check) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        log.warning("health check %s failed: %s", name, type(exc).__name__)
        return failure_reason(exc)
    return "ok"


def failure_reason(exc: BaseException) -> str:
    """Name why a check failed in a few words, never with the exception's own text.

    /healthz answers anyone, and a driver's message can hold host names, user names or a
    password from a URL.
    """
    if isinstance(exc, JobsStuck):
        return str(exc)
    seen: BaseException | None = exc
    for _ in range(10):  # the chain of causes, which could loop
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError) or "connection refused" in str(seen).lower():
            return "connection refused"
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


async def _check_all() -> dict[str, str]:
    database, layer, jobs = await asyncio.gather(
        _run("database", sync_to_async(_database, thread_sensitive=False)),
        _run("channel_layer", _channel_layer),
        _run("jobs", sync_to_async(_jobs, thread_sensitive=False)),
    )
    checks = {"database": database, "channel_layer": layer, "jobs": jobs}
    _shared().latest = (time.monotonic(), checks)
    return checks


class _SharedChecks:
    """The last answer (when it was made, the checks) and the check under way (on which
    event loop): callers share them, so no number of requests makes a process ask the
    database and Redis more than once per CHAT_HEALTH_CACHE_SECONDS."""

    def __init__(self) -> None:
        self.latest: tuple[float, dict[str, str]] | None = None
        self.running: tuple[asyncio.AbstractEventLoop, asyncio.Task] | None = None


_shared = per_process(_SharedChecks)


async def shared_checks() -> dict[str, str]:
    """Return the checks' results: the last ones while fresh, else those of a shared run."""
    shared = _shared()
    latest = shared.latest
    if latest is not None and time.monotonic() - latest[0] < settings.CHAT_HEALTH_CACHE_SECONDS:
        return latest[1]
    loop = asyncio.get_running_loop()
    running = shared.running
    if running is None or running[0] is not loop or running[1].done():
        running = shared.running = (loop, loop.create_task(_check_all()))
    # A caller that goes away must not cancel the run the others wait for.
    return await asyncio.shield(running[1])


def forget_checks() -> None:
    """Drop the last answer, so that the next call checks again."""
    shared = _shared()
    shared.latest = shared.running = None


async def healthz(request) -> JsonResponse:
    """Answer 200 when the database and the channel layer answer, else 503 naming what failed."""
    checks = await shared_checks()
    healthy = all(checks[name] == "ok" for name in REQUIRED)
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
