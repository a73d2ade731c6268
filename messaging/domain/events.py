"""Events of committed changes: which group of sockets is told what, once it is committed.

A write builds its events (a frame for every socket of a user, a close for the sockets of
a session or a token) and publishes them on commit, never before. Delivering them is the
delivery layer's work (messaging/delivery/fanout.py), which hands its deliverer to this
module when the application loads (messaging/apps.py): the domain never imports the
layers above it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import transaction

log = logging.getLogger(__name__)

# An event: the channel-layer group and the frame every socket in it should get.
Event = tuple[str, dict[str, Any]]

_USER_GROUP_PREFIX = "user."

# When a socket calls a service, the events of its commit are handed back to it here so
# that it sends its ack first and then publishes from its own event loop, instead of the
# database thread waiting on the channel layer.
_collected: ContextVar[list[Event] | None] = ContextVar("collected_events", default=None)

# Delivers committed events from synchronous code (a view, a management command, a signal).
_deliver: Callable[[list[Event]], None] | None = None


def user_group(user_id: int) -> str:
    """Name the group holding every socket of one user, in every process."""
    return f"{_USER_GROUP_PREFIX}{user_id}"


def group_user(group: str) -> int | None:
    """Return the id of the user a group belongs to, or None for other groups."""
    if group.startswith(_USER_GROUP_PREFIX):
        return int(group[len(_USER_GROUP_PREFIX) :])
    return None


def session_group(session_key: str) -> str:
    """Name the group holding the sockets opened with one login session."""
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def token_group(token_id: int) -> str:
    """Name the group holding the sockets opened with one bearer token."""
    return f"token.{token_id}"


def frame_event(group: str, frame: dict[str, Any]) -> Event:
    """Build an event that forwards a frame to every socket of a group."""
    return group, {"type": "chat.frame", "frame": frame}


def close_event(group: str, code: int) -> Event:
    """Build an event that closes every socket of a group with the given code."""
    return group, {"type": "chat.close", "code": code}


def deliver_committed_with(deliver: Callable[[list[Event]], None]) -> None:
    """Set how events committed outside a socket's own call are delivered."""
    global _deliver
    _deliver = deliver


def publish_on_commit(events: Iterable[Event]) -> None:
    """Publish the events once the current transaction commits, never before."""
    events = list(events)
    if events:
        transaction.on_commit(lambda: _publish_committed(events))


def publish_found_on_commit(find: Callable[[], Iterable[Event]]) -> None:
    """Once the current transaction commits, call `find` for the events and publish them.

    For events whose audience is read after the commit: who is online then. A socket whose
    presence row committed before is found; one committing later reads the change itself.
    """
    transaction.on_commit(lambda: _publish_found(find))


def _publish_found(find: Callable[[], Iterable[Event]]) -> None:
    try:
        events = list(find())
    except Exception:
        # Committed whatever happens here: clients catch up by `sync` and `ready`.
        log.exception("events of a committed change could not be found")
        return
    if events:
        _publish_committed(events)


def _publish_committed(events: list[Event]) -> None:
    collected = _collected.get()
    if collected is not None:
        collected.extend(events)
        return
    if _deliver is None:
        log.warning("%d committed events not delivered: no deliverer is set", len(events))
        return
    try:
        _deliver(events)
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
