"""The socket: /ws/chat/ carries all of one user's conversations."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError

from messaging import fanout, presence, selectors, services
from messaging.heartbeat import heartbeat
from messaging.protocol import (
    ChatError,
    DeleteFrame,
    EditFrame,
    ErrorCode,
    PingFrame,
    ReadFrame,
    SendFrame,
    SyncFrame,
    TypingFrame,
    encode,
    message_data,
    parse_frame,
    user_data,
)
from messaging.ratelimit import limiter, parse_rules

log = logging.getLogger(__name__)

CLOSE_ABUSE = 1008


class ChatConsumer(AsyncWebsocketConsumer):
    """Parse frames, make one hop to the database, answer; never close on a client mistake."""

    async def dispatch(self, message):
        # Channels closes stale database connections before every handler; our only
        # database access is database_sync_to_async, which already does so around each
        # call, so the extra hop to the database thread per frame and per push is skipped.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    # Connection

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close()
            return
        self.user = user
        self.rejections: deque[float] = deque()
        self.groups = [fanout.user_group(user.pk)]
        session = self.scope.get("session")
        if self.scope.get("auth_method") == "session" and session and session.session_key:
            self.groups.append(fanout.session_group(session.session_key))
        try:
            for group in self.groups:
                await self.channel_layer.group_add(group, self.channel_name)
            with fanout.collecting() as events:
                ready = await database_sync_to_async(self._open)()
        except Exception as exc:
            log.warning("websocket refused for %s: %s", user.pk, type(exc).__name__)
            await self.close()
            return
        await self.accept()
        await self.send_frame(ready)
        heartbeat().add(self.channel_name, user.pk)
        await fanout.publish(events)

    def _open(self) -> dict[str, Any]:
        presence.socket_opened(user=self.user, channel_name=self.channel_name)
        return {
            "type": "ready",
            "user": user_data(self.user),
            "last_seq": selectors.last_seq_for_user(user=self.user),
            "online": presence.online_peers(user=self.user),
        }

    async def disconnect(self, code) -> None:
        if not hasattr(self, "user"):
            return
        heartbeat().discard(self.channel_name)
        for group in self.groups:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as exc:
                log.warning("group_discard failed: %s", type(exc).__name__)
        try:
            _, events = await self._db(
                presence.socket_closed, user=self.user, channel_name=self.channel_name
            )
        except ChatError:
            return  # The heartbeat sweep of another socket announces the user offline.
        await fanout.publish(events)

    # Frames from the client

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            if text_data is None:
                raise ChatError(ErrorCode.BAD_JSON, "frames must be JSON text, not binary")
            frame = parse_frame(text_data, max_chars=settings.CHAT_MAX_FRAME_CHARS)
            await self.HANDLERS[type(frame)](self, frame)
        except ChatError as error:
            await self.refuse(error)
        except Exception:
            log.exception("frame handling failed")
            await self.send_frame(
                ChatError(ErrorCode.UNAVAILABLE, "server error; retry later").as_frame()
            )

    async def _db(self, function, **kwargs):
        """Run a service or selector on the database thread, then publish what it committed."""
        with fanout.collecting() as events:
            try:
                result = await database_sync_to_async(function)(**kwargs)
            except (OperationalError, InterfaceError) as exc:
                log.warning("database unavailable: %s", str(exc).split("\n")[0][:200])
                raise ChatError(
                    ErrorCode.UNAVAILABLE, "the database did not answer; nothing was stored"
                ) from None
        return result, events

    async def _check_rate(self, action: str, rules: str, client_id: str | None = None) -> None:
        wait = await limiter().retry_after(action, self.user.pk, parse_rules(rules))
        if wait is not None:
            raise ChatError(
                ErrorCode.RATE_LIMITED,
                f"too many {action} frames; wait {wait} s",
                client_id=client_id,
                retry_after=wait,
            )

    async def on_send(self, frame: SendFrame) -> None:
        try:
            await self._check_rate("send", settings.CHAT_SEND_RATE, frame.client_id)
            result, events = await self._db(
                services.message_send,
                sender=self.user,
                body=frame.body,
                client_id=frame.client_id,
                to=frame.to,
                conversation_id=frame.conversation,
            )
        except ChatError as error:
            error.client_id = frame.client_id
            raise
        await self.send_frame(
            {
                "type": "message.ack",
                "client_id": frame.client_id,
                "message": message_data(result.message),
            }
        )
        await fanout.publish(events)

    async def on_sync(self, frame: SyncFrame) -> None:
        (messages, more), _ = await self._db(
            selectors.messages_after,
            user=self.user,
            after=frame.after,
            limit=settings.CHAT_SYNC_PAGE,
        )
        await self.send_frame(
            {
                "type": "sync.result",
                "messages": [message_data(message) for message in messages],
                "more": more,
            }
        )

    async def on_read(self, frame: ReadFrame) -> None:
        _, events = await self._db(
            services.conversation_mark_read,
            user=self.user,
            conversation_id=frame.conversation,
            up_to=frame.up_to,
        )
        await fanout.publish(events)

    async def on_typing(self, frame: TypingFrame) -> None:
        await self._check_rate("typing", settings.CHAT_TYPING_RATE)
        events, _ = await self._db(
            services.typing_events, user=self.user, conversation_id=frame.conversation
        )
        await fanout.publish(events)

    async def on_edit(self, frame: EditFrame) -> None:
        _, events = await self._db(
            services.message_edit, editor=self.user, message_id=frame.id, body=frame.body
        )
        await fanout.publish(events)

    async def on_delete(self, frame: DeleteFrame) -> None:
        _, events = await self._db(services.message_delete, actor=self.user, message_id=frame.id)
        await fanout.publish(events)

    async def on_ping(self, frame: PingFrame) -> None:
        last_seq, _ = await self._db(selectors.last_seq_for_user, user=self.user)
        await self.send_frame({"type": "pong", "last_seq": last_seq})

    HANDLERS = {
        SendFrame: on_send,
        SyncFrame: on_sync,
        ReadFrame: on_read,
        TypingFrame: on_typing,
        EditFrame: on_edit,
        DeleteFrame: on_delete,
        PingFrame: on_ping,
    }

    async def refuse(self, error: ChatError) -> None:
        """Answer a refused frame; close 1008 only when a client keeps flooding."""
        await self.send_frame(error.as_frame())
        if error.code != ErrorCode.RATE_LIMITED:
            return
        now = time.monotonic()
        self.rejections.append(now)
        while self.rejections and self.rejections[0] < now - 60:
            self.rejections.popleft()
        if len(self.rejections) > settings.CHAT_ABUSE_CLOSE_AFTER:
            log.warning("closing socket of user %s for flooding", self.user.pk)
            await self.close(code=CLOSE_ABUSE)

    # Events from the channel layer

    async def chat_frame(self, event: dict[str, Any]) -> None:
        await self.send_frame(event["frame"])

    async def chat_close(self, event: dict[str, Any]) -> None:
        await self.close(code=event["code"])

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=encode(frame))
