"""A Python client of the chat's WebSocket protocol, for bots, scripts, tests and benchmarks.

    from messaging.client import ChatClient

    async with ChatClient("wss://chat.example/ws/chat/", token) as chat:
        await chat.send("hello", to="bob")
        async for event in chat.events(reconnect=True):
            if event["type"] == "message.new":
                print(event["message"]["sender"]["username"], event["message"]["body"])

It needs only the `websockets` library: it imports nothing of Django or of the server, so
a script can copy this one file. The frames are those of docs/protocol.md.

What it does for its user, so that a bot never misses a message nor sees one twice:
- `send` gives every message a client id and waits for its `message.ack`; a refusal raises
  `ChatError`. Sending again with the same client id never stores the message twice.
- `events()` hands on what the server pushes, in `seq` order: when a push's `prev_seq` shows
  that an earlier push was lost, it first syncs the gap and hands on the missed changes.
- `reconnect()` reopens the socket with backoff and syncs from the last seen `seq`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Self

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

# Close codes after which reconnecting cannot help: the session or token was ended.
CLOSE_SESSION_ENDED = 4401
PUSH_TYPES = ("message.new", "message.updated")
# A change that a sync found, handed on by `events()` in place of a push that was lost (or
# that came while the client was away): the message as it is now, new, edited or deleted.
SYNCED = "message.synced"


class ChatError(Exception):
    """A frame the server refused with an `error` frame."""

    def __init__(
        self,
        code: str,
        detail: str = "",
        retry_after: float | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        self.client_id = client_id

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ChatError:
        """Build the exception an `error` frame describes."""
        return cls(
            frame.get("code", "error"),
            frame.get("detail", ""),
            frame.get("retry_after"),
            frame.get("client_id"),
        )


@dataclass(eq=False)
class _Request:
    """A frame waiting for its answer; the server answers one socket's frames in order."""

    answer: str  # the type of the frame that answers it
    future: asyncio.Future
    # Edits and deletes are answered by the update of that message that they made.
    made_it: Callable[[dict[str, Any]], bool] | None = None
    passed: bool = False  # a later request was answered: this one was not refused


@dataclass
class _Closed:
    """Put in the inbox when a connection ends, so that readers of the inbox learn it."""

    connection: ClientConnection
    error: ConnectionClosed


class ChatClient:
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

    # --- connecting

    @property
    def ws(self) -> ClientConnection | None:
        """The open connection, if any (for what this client does not cover)."""
        return self._ws

    async def connect(self, *, retry_for: float = 0, ready_timeout: float = 10) -> Self:
        """Open the socket and wait for `ready`; keep `user`, `online` and `last_seq`.

        A refused or failed handshake is retried with backoff for `retry_for` seconds
        (a server restarting, or refusing while it lost Redis), then raised. When resuming
        (`last_seq` given, or any connection before this one), the changes since `last_seq`
        are synced and come out of `events()`.
        """
        deadline = time.monotonic() + retry_for
        attempt = 0
        while True:
            try:
                await self._open(ready_timeout)
                break
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed):
                pause = self._backoff(attempt)
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)
                attempt += 1
        if self._resuming:
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

    # --- requests

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send one frame as it is; its answers come out of `receive()` unless awaited here."""
        if self._ws is None:
            raise ConnectionError("not connected")
        await self._ws.send(json.dumps(frame))

    async def send(
        self,
        body: str,
        *,
        to: str | None = None,
        conversation: int | None = None,
        client_id: str | None = None,
        timeout: float = 10,
    ) -> dict[str, Any]:
        """Send a message to a person (`to`, a username) or a conversation; return it as stored.

        Raise `ChatError` when the server refuses it (`retry_after` set when rate limited),
        `TimeoutError` or `ConnectionClosed` when no answer came: then whether it was stored
        is unknown, and sending again with the same `client_id` stores it at most once.
        """
        if (to is None) == (conversation is None):
            raise ValueError("give either `to` or `conversation`")
        client_id = client_id or str(uuid.uuid4())
        frame: dict[str, Any] = {"type": "message.send", "body": body, "client_id": client_id}
        if to is not None:
            frame["to"] = to
        else:
            frame["conversation"] = conversation
        future = self._acks.get(client_id)
        if future is None or future.done():
            future = self._acks[client_id] = asyncio.get_running_loop().create_future()
            # Nobody may await it any more when the socket closes: keep its error quiet.
            future.add_done_callback(_quiet)
        try:
            await self.send_frame(frame)
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            if self._acks.get(client_id) is future and future.done():
                del self._acks[client_id]

    async def _request(
        self,
        frame: dict[str, Any],
        answer: str,
        timeout: float,
        made_it: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(_quiet)
        request = _Request(answer, future, made_it)
        self._requests.append(request)
        try:
            await self.send_frame(frame)
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            if request in self._requests:
                self._requests.remove(request)

    async def sync(self, after: int = 0, *, timeout: float = 10) -> list[dict[str, Any]]:
        """Return every change to the user's messages with `seq` above `after`, ascending.

        Pages through `sync.result` while `more`. It does not move `last_seq` nor feed
        `events()`; `catch_up()` does.
        """
        changes: list[dict[str, Any]] = []
        while True:
            result = await self._request({"type": "sync", "after": after}, "sync.result", timeout)
            changes.extend(result["messages"])
            if result["messages"]:
                after = result["messages"][-1]["seq"]
            if not result["more"]:
                return changes

    async def catch_up(self, *, timeout: float = 10) -> int:
        """Sync from `last_seq`; the changes come out of `events()`. Return how many."""
        return await self._catch_up(None, timeout)

    async def _catch_up(self, push: dict[str, Any] | None, timeout: float) -> int:
        # One at a time: two overlapping syncs from the same cursor would hand on twice.
        async with self._catching_up:
            count = 0
            for message in await self.sync(self.last_seq, timeout=timeout):
                if message["seq"] <= self.last_seq:
                    continue
                if push is not None and push["message"]["seq"] == message["seq"]:
                    # The push that showed the gap: hand it on as the server sent it.
                    self._backlog.append(push)
                else:
                    self._backlog.append({"type": SYNCED, "message": message})
                self.last_seq = message["seq"]
                count += 1
            if count:
                self._inbox_changed.set()  # wake `events()` if it waits for frames
            return count

    async def ping(self, *, timeout: float = 10) -> int:
        """Ask for the largest `seq` of the user's conversations (above `last_seq`: missed)."""
        return (await self._request({"type": "ping"}, "pong", timeout))["last_seq"]

    async def edit(self, message_id: int, body: str, *, timeout: float = 10) -> dict[str, Any]:
        """Change the body of one's own message; return the message as changed."""
        frame = {"type": "message.edit", "id": message_id, "body": body}

        def made_it(message: dict[str, Any]) -> bool:
            return self._mine(message, message_id) and message["body"] == body

        return (await self._request(frame, "message.updated", timeout, made_it))["message"]

    async def delete(self, message_id: int, *, timeout: float = 10) -> dict[str, Any]:
        """Delete one's own message; return it as deleted."""
        frame = {"type": "message.delete", "id": message_id}

        def made_it(message: dict[str, Any]) -> bool:
            return self._mine(message, message_id) and message["deleted"]

        return (await self._request(frame, "message.updated", timeout, made_it))["message"]

    def _mine(self, message: dict[str, Any], message_id: int) -> bool:
        # Only the sender may change a message: an update of it made by anyone else (or
        # that was on its way before) is not this request's answer.
        user_id = self.user["id"] if self.user else None
        return message["id"] == message_id and message["sender"]["id"] == user_id

    async def read(self, conversation: int, up_to: int) -> None:
        """Tell the members that the user read the conversation up to a message id.

        Nothing answers success; a refusal comes out of `events()` as an `error`.
        """
        await self.send_frame({"type": "read", "conversation": conversation, "up_to": up_to})

    async def typing(self, conversation: int) -> None:
        """Tell the other members that the user is typing (nothing is stored)."""
        await self.send_frame({"type": "typing", "conversation": conversation})

    # --- what the server sends

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
        place). With `reconnect`, a lost socket is reopened and synced from `last_seq`
        (not after the server ended the session: 4401); otherwise the iteration ends when
        the socket closes normally and raises `ConnectionClosed` when it is lost.
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

    def _receive(self, frame: dict[str, Any]) -> None:
        """Answer the requests waiting for this frame; pass on the rest."""
        if self.on_frame is not None:
            self.on_frame(frame)
        kind = frame.get("type")
        if kind == "message.ack" or (kind == "error" and "client_id" in frame):
            future = self._acks.pop(frame["client_id"], None)
            if future is not None and not future.done():
                if kind == "error":
                    future.set_exception(ChatError.from_frame(frame))
                else:
                    future.set_result(frame["message"])
                return
        elif kind == "error":
            # Not a send's: the refusal of the oldest request not known to have passed.
            for request in self._requests:
                if not request.passed and not request.future.done():
                    request.future.set_exception(ChatError.from_frame(frame))
                    self._requests.remove(request)
                    return
        elif kind in ("sync.result", "pong", "message.updated"):
            if self._answer(kind, frame) and kind != "message.updated":
                return  # an update is a push too: events() hands it on as well
        elif kind == "ready":
            self.ready = frame
            self.user = frame["user"]
            self.online = list(frame.get("online", []))
            if not self._resuming:
                self.last_seq = frame["last_seq"]
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(frame)
        elif kind == "presence":
            others = [u for u in self.online if u["id"] != frame["user"]["id"]]
            self.online = [*others, frame["user"]] if frame["online"] else others
        self._to_inbox(frame)

    def _answer(self, kind: str, frame: dict[str, Any]) -> bool:
        for index, request in enumerate(self._requests):
            if request.answer != kind:
                continue
            if request.made_it is None or request.made_it(frame["message"]):
                if not request.future.done():
                    request.future.set_result(frame)
                del self._requests[index]
                # The server answers in order: what was asked before this was not refused
                # (an edit still waits for its update, but no error of a later frame is its).
                for earlier in list(self._requests)[:index]:
                    earlier.passed = True
                return True
        return False

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


def _quiet(future: asyncio.Future) -> None:
    # Retrieve the exception so that asyncio does not log it as never retrieved.
    if not future.cancelled():
        future.exception()
