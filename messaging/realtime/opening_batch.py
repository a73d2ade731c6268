"""The database work of the handshakes waiting at the same time, done in one call for all.

A handshake's database work (its presence row under its user's lock, the announcement that
its user came online, and its `ready`: the last stamp and who is online) is a dozen
statements, most of their cost the ORM's and the hop to the database thread rather than
PostgreSQL's. When a process restarts, thousands of handshakes queue for that thread at
once. Those waiting together are opened together: one lock of their users, one count, one
insert, one announcement, one read of every `ready`; the cost of a handshake falls with the
number waiting, and a lone one costs what it did.

The writes are a round on the database thread; the `ready` frames, which only read, a round
on the read threads (messaging/realtime/read_threads.py) while the next handshakes' writes
go on. For a heavy user most of PostgreSQL's work is in those reads (2,000 conversations'
last stamps, 3,400 peers' presence): on the one thread, 20 heavy users' handshakes at once
waited for each other's.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from messaging.delivery import fanout
from messaging.delivery.registry import socket_registry
from messaging.domain import presence, selectors
from messaging.protocol import user_data
from messaging.realtime.batched_calls import BatchedCalls
from messaging.realtime.read_threads import run_on_read_threads
from messaging.singletons import per_event_loop

# Handshakes opened in one call at most: their transaction holds this many users' locks.
MOST_AT_ONCE = 100


class OpeningSocket(Protocol):
    """What the batch reads of a socket being opened (messaging/realtime/opening.py)."""

    user: Any
    channel_name: str
    scope: dict[str, Any]


class Refused(Exception):
    """This socket's handshake cannot go on; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def open_socket(socket: OpeningSocket) -> dict[str, Any]:
    """Record the socket with those waiting together; return its `ready` (or raise Refused)."""
    await opening_batches().call(socket)
    return await ready_batches().call(socket)


async def _open_together(sockets: list[OpeningSocket]) -> list[None | Exception]:
    """Record the sockets waiting together: None for each recorded, or why it is refused."""
    # Queued behind other sockets' database work for longer than a client waits: nobody is
    # left to read `ready`, so nothing is written for it.
    answers = _too_late(sockets)
    opening = [socket for socket, answer in zip(sockets, answers, strict=True) if answer is None]
    if not opening:
        return answers
    refused, events, routes = await database_sync_to_async(fanout.call_collecting)(
        presence.sockets_opened,
        openings=[(socket.user, socket.channel_name) for socket in opening],
        process=socket_registry().origin,
        max_sockets=settings.CHAT_MAX_SOCKETS_PER_USER,
    )
    # Who came online, to whoever may see them.
    await fanout.publish(events, routes)
    return [
        Refused("too_many_sockets")
        if answer is None and socket.channel_name in refused
        else answer
        for socket, answer in zip(sockets, answers, strict=True)
    ]


async def _ready_together(sockets: list[OpeningSocket]) -> list[dict[str, Any] | Exception]:
    """Read the `ready` frames of the sockets recorded and waiting together."""
    # Past its deadline daphne has given the handshake up: its reads would reach no one, and
    # its presence row goes with the socket's close.
    answers: list[dict[str, Any] | Exception | None] = list(_too_late(sockets))
    waiting = [socket for socket, answer in zip(sockets, answers, strict=True) if answer is None]
    if not waiting:
        return answers
    # A round's frames together on one thread: shared out over several, 20 heavy users'
    # frames cost PostgreSQL 70 % more CPU and came no sooner (docs/performance.md,
    # 2026-12-07 11:20).
    frames = iter(await run_on_read_threads(ready_frames, sockets=waiting))
    return [next(frames) if answer is None else answer for answer in answers]


def _too_late(sockets: list[OpeningSocket]) -> list[Exception | None]:
    """Refuse, as too late, each socket whose handshake has waited past its deadline."""
    now = time.monotonic()
    return [
        Refused("too_late") if now > socket.scope.get("give_up_at", math.inf) else None
        for socket in sockets
    ]


opening_batches = per_event_loop(lambda: BatchedCalls(_open_together, MOST_AT_ONCE))
opening_batches.__doc__ = "Return this event loop's queue of handshakes to record together."
# Rounds on up to half of the read threads, so that a heavy user's reads hold up no one
# else's `ready`, and syncs and pings always find a thread free. On two cores, rounds on all
# four threads made PostgreSQL's work per `ready` 40 % dearer and the slowest ones later
# (docs/performance.md, 2026-12-07 11:20).
ready_batches = per_event_loop(
    lambda: BatchedCalls(
        _ready_together,
        MOST_AT_ONCE,
        rounds_at_once=max(1, settings.CHAT_SOCKET_READ_THREADS // 2),
    )
)
ready_batches.__doc__ = "Return this event loop's queue of recorded sockets awaiting `ready`."


def ready_frames(*, sockets: list[OpeningSocket]) -> list[dict[str, Any]]:
    """Return each recorded socket's `ready`: its user, last stamp and who is online."""
    users = {socket.user.pk for socket in sockets}
    last_seqs = selectors.last_seqs_of(user_ids=users)
    online = presence.online_peers_of(user_ids=users)
    return [
        {
            "type": "ready",
            "user": user_data(socket.user),
            "last_seq": last_seqs[socket.user.pk],
            "online": online[socket.user.pk],
        }
        for socket in sockets
    ]
