"""Bound the frames a socket's client may have waiting to be handled.

daphne queues every frame a client writes for the application, without limit: a client
that writes faster than its frames are answered (20 sockets flooding `sync`) grew a process
by 70 MB a second. Under daphne, a socket's queue is a WaitingFrames (chatsite/daphne_patches.py)
that counts its frames and bytes as daphne puts them; under another server this middleware
copies the frames from the server's queue into one. A socket whose waiting frames pass
CHAT_SOCKET_WAITING_FRAMES or CHAT_SOCKET_WAITING_BYTES is closed with 1008 and its
waiting frames are dropped unanswered. Its client reconnects and syncs: nothing stored is
lost, and the user's handshakes on this process are refused for a while (see
SocketRegistry.abuse_closed). The other direction, bytes written to a client that does not read
them, is bounded in chatsite/daphne_patches.py, where daphne's transport is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from django.conf import settings

from messaging import metrics
from messaging.delivery.registry import socket_registry

log = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008


def _size(message: dict[str, Any]) -> int:
    return len(message.get("text") or message.get("bytes") or "")


class WaitingFrames:
    """One socket's frames read from the server and not yet taken by the application.

    A deque made when a frame waits and a future made when the application waits, instead
    of an asyncio.Queue: a queue allocates four deques up front, about 2.5 KB that every
    idle socket held for nothing. Unbounded until limit() is called.
    """

    __slots__ = (
        "bytes",
        "client_left",
        "frames",
        "max_bytes",
        "max_frames",
        "on_overflow",
        "overflowed",
        "taker",
    )

    def __init__(self) -> None:
        self.frames: deque[dict[str, Any]] | None = None
        self.taker: asyncio.Future | None = None
        self.max_frames = 0
        self.max_bytes = 0
        self.on_overflow: Callable[[], None] | None = None
        self.bytes = 0
        self.overflowed = False
        # The server has told of the client's going (see messaging/realtime/abandoned.py).
        self.client_left = False

    def limit(self, *, max_frames: int, max_bytes: int, on_overflow: Callable[[], None]) -> None:
        """Bound the frames waiting; call `on_overflow` once when a frame passes the bound."""
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.on_overflow = on_overflow

    def waiting(self) -> int:
        """Return how many messages wait for the application."""
        return len(self.frames) if self.frames else 0

    def put_nowait(self, message: dict[str, Any]) -> None:
        """Hold a message for the application (what daphne calls on its queue)."""
        if not self.put(message) and self.on_overflow is not None:
            self.on_overflow()

    def put(self, message: dict[str, Any]) -> bool:
        """Hold a message for the application; return False when it overflows the bound."""
        if message["type"] == "websocket.disconnect":
            # The client is gone: answering what it left waiting would be work for no one.
            self.client_left = True
            self._drop_waiting()
        elif message["type"] == "websocket.receive":
            if self.overflowed:
                return True  # Dropped: the socket is closing.
            size = _size(message)
            if self.max_frames and (
                self.waiting() + 1 > self.max_frames or self.bytes + size > self.max_bytes
            ):
                self.overflowed = True
                self._drop_waiting()
                return False
            self.bytes += size
        if self.frames is None:
            self.frames = deque()
        self.frames.append(message)
        if self.taker is not None and not self.taker.done():
            self.taker.set_result(None)  # The application waits for it.
        return True

    async def get(self) -> dict[str, Any]:
        """Take the next message (the application's `receive`)."""
        while not self.frames:
            self.taker = asyncio.get_running_loop().create_future()
            try:
                await self.taker
            finally:
                self.taker = None
        message = self.frames.popleft()
        if not self.frames:
            self.frames = None  # An idle socket keeps no deque.
        self.bytes -= _size(message) if message["type"] == "websocket.receive" else 0
        return message

    def _drop_waiting(self) -> None:
        if self.frames:
            # connect and disconnect still reach the application
            kept = [m for m in self.frames if m["type"] != "websocket.receive"]
            self.frames = deque(kept) if kept else None
        self.bytes = 0


class WaitingFramesLimit:
    """ASGI middleware: close (1008) a socket whose client writes faster than it is answered."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        queue = getattr(receive, "__self__", None)
        waiting = queue if isinstance(queue, WaitingFrames) else WaitingFrames()

        def overflowed() -> None:
            metrics.SOCKETS_CLOSED_FOR_ABUSE.labels("waiting_frames").inc()
            log.warning(
                "socket closed: more than %d frames or %d bytes waiting to be handled",
                waiting.max_frames,
                waiting.max_bytes,
                extra={"client": _client(scope)},
            )
            registry = socket_registry()
            user = scope.get("user")
            if user is not None and user.is_authenticated:
                registry.abuse_closed(user.pk)
            # Called from daphne's put, outside any task of this socket.
            registry.run_apart(send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION}))

        waiting.limit(
            max_frames=settings.CHAT_SOCKET_WAITING_FRAMES,
            max_bytes=settings.CHAT_SOCKET_WAITING_BYTES,
            on_overflow=overflowed,
        )
        if waiting is queue:
            # daphne's own queue (chatsite/daphne_patches.py): bounded as daphne fills it.
            return await self.inner(scope, receive, send)
        reader = asyncio.ensure_future(_copy_frames(receive, waiting))
        try:
            return await self.inner(scope, waiting.get, send)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def _copy_frames(receive, waiting: WaitingFrames) -> None:
    """Take the frames off another server's queue as they arrive, into `waiting`."""
    while True:
        try:
            message = await receive()
        except Exception:
            # The server failed under this socket: let the application end.
            log.exception("socket reader failed")
            waiting.put({"type": "websocket.disconnect", "code": 1011})
            return
        waiting.put_nowait(message)
        if message["type"] == "websocket.disconnect":
            return


def _client(scope) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"
