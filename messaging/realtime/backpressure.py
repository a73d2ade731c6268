"""Bound the frames a socket's client may have waiting to be handled.

daphne queues every frame a client writes for the application, without limit: a client
that writes faster than its frames are answered (20 sockets flooding `sync`) grew a process
by 70 MB a second. This middleware takes the frames off daphne's queue as they arrive and
keeps them in one of its own, counted in frames and bytes; a socket whose waiting frames
pass CHAT_SOCKET_WAITING_FRAMES or CHAT_SOCKET_WAITING_BYTES is closed with 1008 and its
waiting frames are dropped unanswered. Its client reconnects and syncs: nothing stored is
lost, and the user's handshakes on this process are refused for a while (see
SocketRegistry.abuse_closed). The other direction, bytes written to a client that does not read
them, is bounded in chatsite/daphne_patches.py, where daphne's transport is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from django.conf import settings

from messaging import metrics
from messaging.delivery.registry import socket_registry

log = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008


def _size(message: dict[str, Any]) -> int:
    return len(message.get("text") or message.get("bytes") or "")


class _WaitingFrames:
    """One socket's frames read from the server and not yet taken by the application."""

    def __init__(self, *, max_frames: int, max_bytes: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.bytes = 0
        self.overflowed = False

    def put(self, message: dict[str, Any]) -> bool:
        """Hold a message for the application; return False when it overflows the bound."""
        if message["type"] == "websocket.disconnect":
            # The client is gone: answering what it left waiting would be work for no one.
            self._drop_waiting()
        elif message["type"] == "websocket.receive":
            if self.overflowed:
                return True  # Dropped: the socket is closing.
            size = _size(message)
            if self.queue.qsize() + 1 > self.max_frames or self.bytes + size > self.max_bytes:
                self.overflowed = True
                self._drop_waiting()
                return False
            self.bytes += size
        self.queue.put_nowait(message)
        return True

    async def take(self) -> dict[str, Any]:
        message = await self.queue.get()
        self.bytes -= _size(message) if message["type"] == "websocket.receive" else 0
        return message

    def _drop_waiting(self) -> None:
        kept = []
        while not self.queue.empty():
            message = self.queue.get_nowait()
            if message["type"] != "websocket.receive":
                kept.append(message)  # connect and disconnect still reach the application
        for message in kept:
            self.queue.put_nowait(message)
        self.bytes = 0


class WaitingFramesLimit:
    """ASGI middleware: close (1008) a socket whose client writes faster than it is answered."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        waiting = _WaitingFrames(
            max_frames=settings.CHAT_SOCKET_WAITING_FRAMES,
            max_bytes=settings.CHAT_SOCKET_WAITING_BYTES,
        )

        async def read_from_server() -> None:
            while True:
                try:
                    message = await receive()
                except Exception:
                    # The server failed under this socket: let the application end.
                    log.exception("socket reader failed")
                    waiting.put({"type": "websocket.disconnect", "code": 1011})
                    return
                if not waiting.put(message):
                    metrics.SOCKETS_CLOSED_FOR_ABUSE.labels("waiting_frames").inc()
                    log.warning(
                        "socket closed: more than %d frames or %d bytes waiting to be handled",
                        waiting.max_frames,
                        waiting.max_bytes,
                        extra={"client": _client(scope)},
                    )
                    await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION})
                    user = scope.get("user")
                    if user is not None and user.is_authenticated:
                        socket_registry().abuse_closed(user.pk)
                if message["type"] == "websocket.disconnect":
                    return

        reader = asyncio.ensure_future(read_from_server())
        try:
            return await self.inner(scope, waiting.take, send)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


def _client(scope) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"
