"""Opening the socket (with backoff), reading it, and what ends when it closes."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Self

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .events import _Closed
from .frames import ChatError
from .requests import _quiet


class Connection:
    """ChatClient's socket: connecting, reconnecting, reading and closing.

    A part of ChatClient, which sets up the state read here.
    """

    @property
    def ws(self) -> ClientConnection | None:
        """The open connection, if any (for what this client does not cover)."""
        return self._ws

    async def connect(self, *, retry_for: float = 0, ready_timeout: float = 10) -> Self:
        """Open the socket and wait for `ready`; keep `user`, `online` and `last_seq`.

        A refused or failed handshake is retried with backoff for `retry_for` seconds
        (a server restarting, or refusing while it lost Redis), then raised; a busy server's
        `busy` answer (ChatError, code "busy") is retried after the `retry_after` it names.
        When resuming (`last_seq` given, or any connection before this one), the changes
        since `last_seq` are synced (if `ready` has a later stamp) and come out of `events()`.
        """
        deadline = time.monotonic() + retry_for
        attempt = 0
        while True:
            try:
                await self._open(ready_timeout)
                break
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed, ChatError) as e:
                if isinstance(e, ChatError) and e.code != "busy":
                    raise
                pause = self._backoff(attempt)
                if isinstance(e, ChatError):
                    # A busy server names this client's turn; a second of jitter on top.
                    pause = max(pause, (e.retry_after or 0) + random.random())
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                attempt += 1
        # Nothing changed since `last_seq` when `ready` says so: no sync to ask for.
        if self._resuming and self.ready["last_seq"] > self.last_seq:
            await self.catch_up()
        self._resuming = True
        return self

    async def reconnect(self, *, url: str | None = None, retry_for: float = 60) -> Self:
        """Close the socket if open, open it again (to `url` if given) and sync what was missed."""
        if self._ws is not None:
            await self._shut()
        if url is not None:
            self.url = url
        self._resuming = True
        return await self.connect(retry_for=retry_for)

    def adopt(self, connection: ClientConnection) -> None:
        """Read an already open connection as this client's (one opened by other means)."""
        self._ws = connection
        self.close_code = None
        self._closing = False
        self._ready = asyncio.get_running_loop().create_future()
        self._ready.add_done_callback(_quiet)
        self._reader = asyncio.create_task(self._read(connection))

    async def _open(self, ready_timeout: float) -> None:
        headers = dict(self.headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        options = {"open_timeout": 10, "max_size": 2**22, **self.connect_options}
        connection = await ws_connect(self.url, additional_headers=headers, **options)
        self.adopt(connection)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), ready_timeout)
        except BaseException:
            await self._shut()
            raise

    @staticmethod
    def _backoff(attempt: int) -> float:
        # Exponential with jitter, so that the clients of a restarted server do not all
        # come back in the same instant.
        return min(5.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.5)

    async def close(self) -> None:
        """Close the socket and wait until it is closed."""
        self._closing = True
        await self._shut()

    async def _shut(self) -> None:
        connection, reader = self._ws, self._reader
        if connection is not None:
            await connection.close()
        if reader is not None:
            await asyncio.gather(reader, return_exceptions=True)

    async def wait_closed(self, timeout: float | None = None) -> int:
        """Wait until the server closes the socket; return its close code (1006 if none)."""
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code if self.close_code is not None else 1006

    def hold_reading(self, seconds: float) -> None:
        """Stop reading the socket for a while, as a client that falls behind does.

        The server then buffers for this socket and applies its own bounds; for tests.
        Zero seconds reads again at once.
        """
        self._held_until = time.monotonic() + seconds if seconds > 0 else 0.0
        if seconds > 0:
            self._released.clear()
        else:
            self._released.set()

    async def _read(self, connection: ClientConnection) -> None:
        error: ConnectionClosed | None = None
        try:
            async for text in connection:
                if self._held_until:
                    await self._wait_while_held()
                self._receive(json.loads(text))
        except ConnectionClosed as closed:
            error = closed
        else:
            # A normal close ends the iteration without the exception: fetch it.
            await connection.wait_closed()
            error = connection.protocol.close_exc
        finally:
            # Cancelled, or a frame that is not JSON: as good as a lost connection.
            self._ended(connection, error or ConnectionClosed(None, None))

    async def _wait_while_held(self) -> None:
        left = self._held_until - time.monotonic()
        self._held_until = 0.0
        if left > 0:
            try:
                await asyncio.wait_for(self._released.wait(), left)
            except TimeoutError:
                pass

    def _ended(self, connection: ClientConnection, error: ConnectionClosed) -> None:
        if connection is not self._ws:
            return
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        received = error.rcvd
        self.close_code = received.code if received is not None else 1006
        for future in self._acks.values():
            if not future.done():
                future.set_exception(error)
        self._acks.clear()
        for request in self._requests:
            if not request.future.done():
                request.future.set_exception(error)
        self._requests.clear()
        self._inbox.append(_Closed(connection, error))
        self._inbox_changed.set()
