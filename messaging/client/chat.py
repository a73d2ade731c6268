"""The client itself: one socket of one user, made of its connection, requests and events."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Self

from websockets.asyncio.client import ClientConnection

from .connection import Connection
from .events import Events, _Closed
from .requests import Requests, _Request


class ChatClient(Connection, Requests, Events):
    """One socket of one user to /ws/chat/, authenticated by a bearer token."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        last_seq: int | None = None,
        headers: dict[str, str] | None = None,
        max_events: int | None = 10_000,
        on_frame: Callable[[dict[str, Any]], None] | None = None,
        **connect_options: Any,
    ) -> None:
        """Prepare a client; nothing is opened before `connect()`.

        `last_seq`: resume from this stamp (0: from the beginning), the changes since then
        coming out of `events()` after connecting; by default only what happens from now on.
        `headers`: more handshake headers (a session cookie and its Origin, say).
        `max_events`: how many frames wait for `events()` before the oldest are dropped
        (dropped pushes are synced again); None keeps them all, 0 keeps none.
        `on_frame`: called with every frame as it arrives, before the client handles it.
        `connect_options`: passed on to `websockets.connect` (`ssl`, `open_timeout`, ...).
        """
        self.url = url
        self.token = token
        self.headers = dict(headers or {})
        self.connect_options = connect_options
        self.max_events = max_events
        self.on_frame = on_frame
        self.user: dict[str, Any] | None = None
        self.online: list[dict[str, Any]] = []
        self.ready: dict[str, Any] | None = None
        # The largest `seq` handed on (or queued to be): the cursor of `sync`.
        self.last_seq = last_seq or 0
        self._resuming = last_seq is not None
        self.close_code: int | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._ready: asyncio.Future | None = None
        self._acks: dict[str, asyncio.Future] = {}
        self._requests: deque[_Request] = deque()
        self._inbox: deque[dict[str, Any] | _Closed] = deque()
        self._inbox_changed = asyncio.Event()
        self._backlog: deque[dict[str, Any]] = deque()
        self._pushes_dropped = False
        self._catching_up = asyncio.Lock()
        self._held_until = 0.0
        self._released = asyncio.Event()
        self._closing = False

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
