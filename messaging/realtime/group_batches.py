"""The group joins and leaves of sockets opening or closing at the same time, as one call.

A socket joins its user's group and its login's (session or token) group when it opens, and
leaves them when it closes: on channels-redis two round trips to Redis for each join and
one for each leave, a good part of a handshake's cost once its database work is shared
(messaging/realtime/opening_batch.py). Sockets that open or close together (a restart, a
proxy dropping its connections, the layer back after an outage) send theirs in one
pipeline per Redis shard, which also keeps them from taking every connection of the
layer's pool at once. Layers without such a call (the in-memory one) get one call per
group, as before.
"""

from __future__ import annotations

from typing import Any

from messaging.realtime.batched_calls import BatchedCalls
from messaging.singletons import per_event_loop

# Sockets whose groups go in one round at most (two groups each).
MOST_AT_ONCE = 500

# One socket's part of a round: its layer and its (group, channel) pairs.
GroupChange = tuple[Any, list[tuple[str, str]]]


async def _in_one_call(changes: list[GroupChange], many: str, one: str) -> list[None]:
    """Make the changes of every socket waiting with `many` of their layer, else `one`."""
    by_layer: dict[int, tuple[Any, list[tuple[str, str]]]] = {}
    for layer, pairs in changes:
        by_layer.setdefault(id(layer), (layer, []))[1].extend(pairs)
    for layer, pairs in by_layer.values():
        if hasattr(layer, many):
            await getattr(layer, many)(pairs)
        else:
            for group, channel in pairs:
                await getattr(layer, one)(group, channel)
    return [None] * len(changes)


async def _join_together(changes: list[GroupChange]) -> list[None]:
    return await _in_one_call(changes, "group_add_many", "group_add")


async def _leave_together(changes: list[GroupChange]) -> list[None]:
    return await _in_one_call(changes, "group_discard_many", "group_discard")


_joins = per_event_loop(lambda: BatchedCalls(_join_together, MOST_AT_ONCE))
_leaves = per_event_loop(lambda: BatchedCalls(_leave_together, MOST_AT_ONCE))


async def join_groups(layer: Any, channel: str, groups: list[str]) -> None:
    """Add the channel to its groups, with the sockets joining at the same time."""
    await _joins().call((layer, [(group, channel) for group in groups]))


async def leave_groups(layer: Any, channel: str, groups: list[str]) -> None:
    """Take the channel out of its groups, with the sockets leaving at the same time."""
    await _leaves().call((layer, [(group, channel) for group in groups]))
