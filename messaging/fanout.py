"""Tell sockets about committed changes through the channel layer (at most once)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from messaging import metrics

log = logging.getLogger(__name__)

# Group sends in flight at once for one publish.
PUBLISH_CONCURRENCY = 50

# An event: the channel-layer group and the frame every socket in it should get.
Event = tuple[str, dict[str, Any]]

# When a socket calls a service, the events of its commit are handed back to it here so
# that it sends its ack first and then publishes from its own event loop, instead of the
# database thread waiting on the channel layer.
_collected: ContextVar[list[Event] | None] = ContextVar("collected_events", default=None)


def user_group(user_id: int) -> str:
    """Name the group holding every socket of one user, in every process."""
    return f"user.{user_id}"


def session_group(session_key: str) -> str:
    """Name the group holding the sockets opened with one login session."""
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def frame_event(group: str, frame: dict[str, Any]) -> Event:
    """Build an event that forwards a frame to every socket of a group."""
    return group, {"type": "chat.frame", "frame": frame}


def close_event(group: str, code: int) -> Event:
    """Build an event that closes every socket of a group with the given code."""
    return group, {"type": "chat.close", "code": code}


def publish_on_commit(events: Iterable[Event]) -> None:
    """Publish the events once the current transaction commits, never before."""
    events = list(events)
    if events:
        transaction.on_commit(lambda: _publish_committed(events))


def _publish_committed(events: list[Event]) -> None:
    collected = _collected.get()
    if collected is not None:
        collected.extend(events)
        return
    try:
        async_to_sync(publish)(events)
    except Exception:
        # A change is committed whatever happens here: clients catch up by `sync`.
        log.exception("fan-out of %d events failed", len(events))


@contextmanager
def collecting():
    """Collect events published on commit inside the block, to publish them later."""
    events: list[Event] = []
    token = _collected.set(events)
    try:
        yield events
    finally:
        _collected.reset(token)


async def publish(events: Iterable[Event]) -> int:
    """Send events to their groups; return how many failed (logged, never raised)."""
    layer = get_channel_layer()
    if layer is None:
        return 0
    events = list(events)
    if not events:
        return 0
    results = []
    # In slices: a fan-out to thousands of groups at once (a sweep announcing a whole
    # process offline) would otherwise exhaust the Redis connection pool.
    for start in range(0, len(events), PUBLISH_CONCURRENCY):
        results += await asyncio.gather(
            *(
                layer.group_send(group, payload)
                for group, payload in events[start : start + PUBLISH_CONCURRENCY]
            ),
            return_exceptions=True,
        )
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        metrics.FANOUT_FAILURES.inc(len(failures))
        metrics.REDIS_ERRORS.inc()
        log.warning(
            "fan-out: %d of %d group sends failed: %s",
            len(failures),
            len(events),
            _describe(failures[0]),
        )
    return len(failures)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
