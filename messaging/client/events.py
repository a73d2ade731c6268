"""What the server pushes, handed on in `seq` order with every gap synced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .frames import CLOSE_SESSION_ENDED, PUSH_TYPES


@dataclass
class _Closed:
    """Put in the inbox when a connection ends, so that readers of the inbox learn it."""

    connection: ClientConnection
    error: ConnectionClosed


class Events:
    """ChatClient's inbox: the frames no request waited for, and the iteration over them.

    A part of ChatClient, which sets up the state read here.
    """

    async def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """Return the next frame that no request of this client was waiting for, as sent.

        No gap is filled here (see `events()`); raise `ConnectionClosed` once the socket
        is closed and every frame before the close was returned.
        """
        frame = await self._take(timeout, wake_for_backlog=False)
        assert frame is not None
        return frame

    async def _take(self, timeout: float | None, *, wake_for_backlog: bool) -> dict | None:
        # None: changes came into the backlog meanwhile (a catch_up of another task).
        while True:
            item = await self._next_in_inbox(timeout, wake_for_backlog)
            if item is None:
                return None
            if isinstance(item, _Closed):
                if item.connection is not self._ws:
                    continue  # the end of an earlier connection: this one is open
                self._inbox.appendleft(item)  # every later call learns it too
                raise item.error
            return item

    async def events(self, *, reconnect: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Yield what the server pushes, with message changes in `seq` order and none missed.

        A push whose `prev_seq` is above `last_seq` follows a lost one: the gap is synced
        first and its changes yielded as `message.synced` frames (the push itself in its
        place), and so are the changes missed before a pong the server sends unasked (its
        channel layer came back). With `reconnect`, a lost socket is reopened and synced
        from `last_seq` (not after the server ended the session: 4401); otherwise the
        iteration ends when the socket closes normally and raises `ConnectionClosed` when it
        is lost.
        """
        while True:
            if self._backlog:
                yield self._backlog.popleft()
                continue
            if self._pushes_dropped:
                self._pushes_dropped = False
                await self.catch_up()
                continue
            try:
                frame = await self._take(None, wake_for_backlog=True)
                if frame is None:
                    continue
            except ConnectionClosed as closed:
                if self._closing:
                    return
                if reconnect and self.close_code != CLOSE_SESSION_ENDED:
                    await self.reconnect()
                    continue
                if closed.rcvd is not None and closed.rcvd.code in (1000, 1001):
                    return
                raise
            if frame["type"] == "pong" and frame.get("last_seq", 0) > self.last_seq:
                # Unasked: the server's channel layer came back, and pushes may have been
                # lost meanwhile. Sync; the changes come out as `message.synced`.
                await self._catch_up(None, 10)
                continue
            if frame["type"] in PUSH_TYPES:
                seq = frame["message"]["seq"]
                if seq <= self.last_seq:
                    continue  # a sync handed this change on already
                if frame.get("prev_seq", 0) > self.last_seq:
                    await self._catch_up(frame, 10)
                    continue
                self.last_seq = seq
            yield frame

    async def _next_in_inbox(
        self, timeout: float | None, wake_for_backlog: bool
    ) -> dict[str, Any] | _Closed | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._inbox:
            if wake_for_backlog and self._backlog:
                return None
            self._inbox_changed.clear()
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            await asyncio.wait_for(self._inbox_changed.wait(), left)
        return self._inbox.popleft()

    def _to_inbox(self, item: dict[str, Any] | _Closed) -> None:
        if self.max_events is not None and not isinstance(item, _Closed):
            if self.max_events == 0:
                return
            while len(self._inbox) >= self.max_events:
                dropped = self._inbox.popleft()
                if isinstance(dropped, dict) and dropped.get("type") in PUSH_TYPES:
                    self._pushes_dropped = True
        self._inbox.append(item)
        self._inbox_changed.set()
