"""Frames the client sends, and the answers that it matches to them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .frames import SYNCED, ChatError


@dataclass(eq=False)
class _Request:
    """A frame waiting for its answer; the server answers one socket's frames in order."""

    answer: str  # the type of the frame that answers it
    future: asyncio.Future
    # Edits and deletes are answered by the update of that message that they made.
    made_it: Callable[[dict[str, Any]], bool] | None = None
    passed: bool = False  # a later request was answered: this one was not refused


class Requests:
    """ChatClient's requests: each frame it sends, and the answer or refusal it waits for.

    A part of ChatClient, which sets up the state read here.
    """

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

    def _receive(self, frame: dict[str, Any]) -> None:
        """Answer the requests waiting for this frame; pass on the rest."""
        if self.on_frame is not None:
            self.on_frame(frame)
        kind = frame.get("type")
        opening = self._ready is not None and not self._ready.done()
        if kind == "error" and frame.get("code") == "busy" and opening:
            # The handshake is turned away (a close with 1013 follows): `connect` waits
            # the `retry_after` it names before trying again.
            self._ready.set_exception(ChatError.from_frame(frame))
            return
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


def _quiet(future: asyncio.Future) -> None:
    # Retrieve the exception so that asyncio does not log it as never retrieved.
    if not future.cancelled():
        future.exception()
