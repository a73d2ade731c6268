"""The database work of the handshakes waiting at the same time, done in one call for all.

A handshake's database work (its presence row under its user's lock, the announcement that
its user came online, and its `ready`: the last stamp and who is online) is a dozen
statements, most of their cost the ORM's and the hop to the database thread rather than
PostgreSQL's. When a process restarts, thousands of handshakes queue for that thread at
once. Those waiting together are opened together: one lock of their users, one count, one
insert, one announcement, one read of every `ready`; the cost of a handshake falls with the
number waiting, and a lone one costs what it did.
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
from messaging.singletons import per_event_loop

# Handshakes opened in one call at most: their transaction holds this many users' locks.
MOST_AT_ONCE = 100


class OpeningSocket(Protocol):
    """What the batch reads of a socket being opened (messaging/realtime/opening.py)."""

    user: Any
    channel_name: str
    scope: dict[str, Any]

    def client_left(self) -> bool: ...


# The reason of a socket whose client left before its turn (messaging/realtime/abandoned.py).
CLIENT_LEFT = "client_left"


class Refused(Exception):
    """This socket's handshake cannot go on; `reason` says why, `written` whether its
    presence row may have been written before it was refused."""

    def __init__(self, reason: str, *, written: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.written = written


async def _open_together(sockets: list[OpeningSocket]) -> list[dict[str, Any] | Exception]:
    """Open the sockets waiting together: each one's `ready`, or why it is refused."""
    answers: list[dict[str, Any] | Exception | None] = []
    now = time.monotonic()
    for socket in sockets:
        # Queued behind other sockets' database work for longer than a client waits, or its
        # client already gone: nobody is left to read `ready`, so nothing is written for it.
        if now > socket.scope.get("give_up_at", math.inf):
            answers.append(Refused("too_late", written=False))
        elif socket.client_left():
            answers.append(Refused(CLIENT_LEFT, written=False))
        else:
            answers.append(None)
    opening = [socket for socket, answer in zip(sockets, answers, strict=True) if answer is None]
    if not opening:
        return answers
    readies, events, routes = await database_sync_to_async(fanout.call_collecting)(
        open_sockets,
        sockets=opening,
        process=socket_registry().origin,
        max_sockets=settings.CHAT_MAX_SOCKETS_PER_USER,
    )
    # Who came online, to whoever may see them.
    await fanout.publish(events, routes)
    opened = iter(readies)
    return [answer if answer is not None else _answer(next(opened)) for answer in answers]


def _answer(ready: dict[str, Any] | str) -> dict[str, Any] | Exception:
    return Refused(ready) if isinstance(ready, str) else ready


opening_batches = per_event_loop(lambda: BatchedCalls(_open_together, MOST_AT_ONCE))
opening_batches.__doc__ = "Return this event loop's queue of handshakes to open together."


def open_sockets(
    *, sockets: list[OpeningSocket], process: str, max_sockets: int
) -> list[dict[str, Any] | str]:
    """Record the sockets; return each one's `ready` frame, or why it is refused."""
    refused = presence.sockets_opened(
        openings=[(socket.user, socket.channel_name) for socket in sockets],
        process=process,
        max_sockets=max_sockets,
    )
    opened = {socket.user.pk for socket in sockets if socket.channel_name not in refused}
    last_seqs = selectors.last_seqs_of(user_ids=opened)
    online = presence.online_peers_of(user_ids=opened)
    return [
        "too_many_sockets"
        if socket.channel_name in refused
        else {
            "type": "ready",
            "user": user_data(socket.user),
            "last_seq": last_seqs[socket.user.pk],
            "online": online[socket.user.pk],
        }
        for socket in sockets
    ]
