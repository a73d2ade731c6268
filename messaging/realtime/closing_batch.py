"""The presence clean-up of the sockets closing at the same time, done in one call for all.

When a proxy drops its connections or a network blips, thousands of sockets of a process
close at once, each with its presence row to delete under its user's lock and, for a
user's last socket, an announcement that they went offline: a few statements each, queued
for the one database thread ahead of the same clients' handshakes coming back. Those
closing together are cleaned up together.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from messaging.delivery import fanout
from messaging.domain import presence
from messaging.realtime.batched_calls import BatchedCalls
from messaging.singletons import per_event_loop

# Sockets cleaned up in one call at most: their transaction holds their users' locks.
MOST_AT_ONCE = 200


async def _close_together(closings: list[tuple[Any, str]]) -> list[None]:
    """Forget the sockets (user, channel name) closing together; announce who went offline."""
    _, events, routes = await database_sync_to_async(fanout.call_collecting)(
        presence.sockets_closed, closings=closings
    )
    await fanout.publish(events, routes)
    return [None] * len(closings)


closing_batches = per_event_loop(lambda: BatchedCalls(_close_together, MOST_AT_ONCE))
closing_batches.__doc__ = "Return this event loop's queue of sockets to clean up together."
