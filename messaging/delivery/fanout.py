"""Tell sockets about committed changes (at most once).

A socket of this process gets its frames handed to it directly, in commit order. A user
whose presence rows show sockets in another process also gets the event through the
channel layer, as a group send marked with this process's origin, which this process's own
sockets skip. Whatever a socket misses, its client finds by `sync` (`prev_seq`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DatabaseError, connection

from messaging import metrics, sql_values
from messaging.delivery.registry import socket_registry
from messaging.domain import events as domain_events
from messaging.domain.events import Event

log = logging.getLogger(__name__)

# Group sends in flight at once for one publish.
PUBLISH_CONCURRENCY = 50

# Where the sockets of some users are, in every process: user id -> their channel names.
Routes = dict[int, list[str]]


def routes_for(events: Iterable[Event]) -> Routes:
    """Find the sockets (channel names), in every process, of the users the events are for.

    Call it after the events' transaction committed: a socket whose presence row is not
    seen here was recorded later, and its client's `sync` finds the change.
    """
    user_ids = event_users(events)
    if not user_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(*routes_statement(user_ids))
        return routes_from_rows(cursor.fetchall())


def event_users(events: Iterable[Event]) -> list[int]:
    """Return the ids of the users the events are for, in order."""
    return sorted(
        {uid for group, _ in events if (uid := domain_events.group_user(group)) is not None}
    )


def routes_statement(user_ids: list[int]) -> tuple[str, list[str]]:
    """Build the statement reading the sockets of these users (run it after the commit)."""
    from messaging.models import SocketPresence

    # Written out: it runs after every batch of sends, where Django's query building
    # would cost more than the query.
    of_users, params = sql_values.one_of("user_id", user_ids)
    return (
        f"SELECT user_id, channel_name FROM {SocketPresence._meta.db_table} WHERE {of_users}",
        params,
    )


def routes_from_rows(rows: Iterable[tuple[int, str]]) -> Routes:
    """Group (user id, channel name) rows into routes."""
    routes: Routes = {}
    for user_id, channel_name in rows:
        routes.setdefault(user_id, []).append(channel_name)
    return routes


@dataclass(frozen=True)
class Delivery:
    """Events a transaction committed, with where their users' sockets were after it."""

    events: list[Event]
    routes: Routes | None


def call_collecting(
    function: Callable[..., Any], /, **kwargs: Any
) -> tuple[Any, list, Routes | None]:
    """Call a function that commits changes; return its result, events and their routes.

    Runs on the database thread: the routes are read there, after the commit. Without them
    (the database failed after the commit) the events go through the layer to every socket.
    """
    with domain_events.collecting() as events:
        result = function(**kwargs)
    try:
        return result, events, routes_for(events)
    except DatabaseError as exc:
        # The change is committed: its client must not hear that nothing was stored, and
        # its retry would change nothing and tell no one.
        log.warning("routes unread after a commit, sent through the layer: %s", _describe(exc))
        return result, events, None


async def publish(events: Iterable[Event], routes: Routes | None = None) -> int:
    """Deliver events; return how many layer sends failed (logged, never raised).

    With `routes` (from routes_for), the sockets of this process get their frames at once,
    before this returns, and the group is sent the event through the layer only when the
    user has sockets elsewhere (marked with this process's origin, which its own sockets
    skip). Without, every event goes to its group through the layer.
    """
    events = list(events)
    if not events:
        return 0
    if routes is None:
        return await _group_send(events)
    registry = socket_registry()
    remote: list[Event] = []
    for group, payload in events:
        user_id = domain_events.group_user(group)
        if user_id is None:
            remote.append((group, payload))
            continue
        here = registry.by_user.get(user_id, {})
        for consumer in list(here.values()):
            await consumer.deliver(payload)
        if any(name not in here for name in routes.get(user_id, ())):
            remote.append((group, {**payload, "origin": registry.origin}))
    return await _group_send(remote)


def publish_from_sync_code(events: list[Event]) -> None:
    """Deliver events committed by synchronous code (views, commands, signals)."""
    async_to_sync(publish)(events)


async def _group_send(events: list[Event]) -> int:
    """Send each event to its group through the layer; return how many failed."""
    layer = get_channel_layer()
    if layer is None or not events:
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
