"""The socket: /ws/chat/ carries all of one user's conversations."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import deque
from typing import Any

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.db import InterfaceError, OperationalError
from redis.exceptions import MaxConnectionsError, RedisError

from messaging import metrics
from messaging.delivery import fanout, heartbeat
from messaging.delivery.registry import socket_registry
from messaging.domain import presence, selectors, services
from messaging.domain.events import session_group, token_group, user_group
from messaging.domain.logins import SocketLogin
from messaging.domain.ratelimit import check_rate, rate_limited
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
from messaging.sending import batch as send_batch
from messaging.sending.queue import SendRequest, send_queue

log = logging.getLogger(__name__)

CLOSE_ABUSE = 1008
# 1013, Try Again Later: the server lost its channel layer; reconnect and sync.
CLOSE_LAYER_LOST = 1013
# Seconds to wait before reading again when the Redis connection pool was full.
POOL_BUSY_RETRY = 0.05
# Cleanup of a socket that went away abruptly may not hold its task up longer than this.
CLEANUP_TIMEOUT = 5


def sync_page(messages: list, *, more: bool, max_chars: int) -> tuple[list[dict[str, Any]], bool]:
    """Turn messages into a sync page of at most about max_chars of frame text.

    The first message always goes, whatever its size, so that paging always moves on.
    """
    page: list[dict[str, Any]] = []
    size = 0
    for message in messages:
        data = message_data(message)
        size += len(encode(data))
        if page and size > max_chars:
            return page, True
        page.append(data)
    return page, more


class HandshakeRefused(Exception):
    """A handshake that cannot go on, with the reason counted and logged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChatConsumer(AsyncWebsocketConsumer):
    """Parse frames, make one hop to the database, answer; never close on a client mistake."""

    async def __call__(self, scope, receive, send):
        # As AsyncConsumer.__call__, but a failing channel layer does not crash the
        # consumer with 1011: see _receive_from_layer.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        self.sockets = socket_registry()
        self.layer_lost = self.sockets.layer_lost
        self.closing = False
        self.cleaned_up = False
        self.accepted = False
        # A short id that ties together the log lines of one socket.
        self.socket_id = uuid.uuid4().hex[:8]
        self.opened_at = time.monotonic()
        try:
            await await_many_dispatch([receive, self._receive_from_layer], self.dispatch)
        except StopConsumer:
            pass
        finally:
            # disconnect() does not run when the server drops the connection abruptly;
            # presence must not stay online for a socket that is gone.
            if not self.cleaned_up:
                await asyncio.wait_for(self.cleanup(), CLEANUP_TIMEOUT)

    async def _receive_from_layer(self) -> dict[str, Any]:
        """Receive the next event for this socket; after a layer outage, ask to close.

        While the layer is down the socket stays open (sends are stored and acked); once it
        answers again the socket is closed so that its client rejoins its groups and syncs.
        """
        if not self.layer_lost.is_set():
            receiving = asyncio.ensure_future(self.channel_layer.receive(self.channel_name))
            lost = asyncio.ensure_future(self.layer_lost.wait())
            try:
                await asyncio.wait([receiving, lost], return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost.cancel()
                if not receiving.done():
                    # Let channels-redis finish its own cancellation (it releases a lock
                    # shared by every socket of the process) before this task ends.
                    receiving.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await receiving
            if not receiving.cancelled() and receiving.done():
                failure = receiving.exception()
                if failure is None:
                    return receiving.result()
                metrics.REDIS_ERRORS.inc()
                if isinstance(failure, MaxConnectionsError):
                    # Redis is there, only the pool is busy: read again shortly.
                    await asyncio.sleep(POOL_BUSY_RETRY)
                    return {"type": "chat.noop"}
                self.sockets.layer_failed(failure)
        await self.sockets.layer_ok.wait()
        return {"type": "chat.layer_lost"}

    async def chat_noop(self, event: dict[str, Any]) -> None:
        pass

    async def chat_layer_lost(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_LAYER_LOST)

    async def dispatch(self, message):
        # Channels closes stale database connections before every handler; our only
        # database access is database_sync_to_async, which already does so around each
        # call, so the extra hop to the database thread per frame and per push is skipped.
        if message.get("origin") == self.sockets.origin:
            return  # Fan-out in this process handed it to this socket already.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    # Connection

    async def connect(self) -> None:
        user = self.scope.get("user")
        refusal = await self._handshake_refusal(user)
        if refusal is not None:
            await self.refuse_handshake(refusal)
            return
        self._take(user)
        try:
            opened = await self._join_and_open()
        except HandshakeRefused as refused:
            await self.refuse_handshake(refused.reason)
            return
        await self.accept()
        self.accepted = True
        metrics.OPEN_SOCKETS.inc()
        log.info(
            "socket %s open user=%s via=%s",
            self.socket_id,
            user.pk,
            self.scope.get("auth_method"),
            extra={"socket": self.socket_id, "user": user.pk},
        )
        ready, delivery = opened
        await self.send_frame(ready)
        held, self.held = self.held, None
        for payload in held:
            await self.deliver(payload)
        await self.publish(delivery)

    async def _handshake_refusal(self, user) -> str | None:
        """Say why a handshake is refused before anything is written, or None."""
        if user is None or not user.is_authenticated or not user.is_active:
            return "no_credentials"
        if self.sockets.cooling_down(user.pk):
            return "cooling_down"
        try:
            await check_rate("connect", user.pk, settings.CHAT_CONNECT_RATE)
        except ChatError:
            # Each handshake costs the process a few database writes: a client that
            # reconnects in a loop is refused until its window passes.
            metrics.RATE_LIMITED.labels("connect").inc()
            return "rate_limited"
        return None

    def _take(self, user) -> None:
        """Make this socket the user's: its groups, its login, its place in the registry."""
        self.user = user
        # Whoever is online is whom people write to: their sends by username skip a lookup.
        send_batch.remember_user(user.pk, user.username)
        self.rejections: deque[float] = deque()
        self.refused_until: dict[str, float] = {}
        session = self.scope.get("session")
        by_session = self.scope.get("auth_method") == "session" and session is not None
        token_id = self.scope.get("token_id")
        self.joined_groups = [user_group(user.pk)]
        if by_session and session.session_key:
            self.joined_groups.append(session_group(session.session_key))
        if token_id is not None:
            self.joined_groups.append(token_group(token_id))
        # What the heartbeat re-checks, so that a revocation whose close was lost still
        # closes this socket within one beat.
        self.login = SocketLogin(
            channel_name=self.channel_name,
            user_id=user.pk,
            token_id=token_id,
            session_key=session.session_key if by_session else None,
        )
        # Frames for this socket are held until `ready` has gone out. It is registered
        # before its presence row is written, so that a change committed after that row
        # is visible finds it here (fanout.routes_for).
        self.held: list[dict[str, Any]] | None = []
        self.sockets.add(self)
        heartbeat.keep_beating(self.sockets)

    async def _join_and_open(self) -> tuple[dict[str, Any], fanout.Delivery]:
        """Join the socket's groups and record it; raise HandshakeRefused saying why not."""
        try:
            for group in self.joined_groups:
                async with self.sockets.group_calls:
                    await self.channel_layer.group_add(group, self.channel_name)
            ready, events, routes = await database_sync_to_async(fanout.call_collecting)(
                self._open
            )
        except presence.TooManySockets:
            raise HandshakeRefused("too_many_sockets") from None
        except (OperationalError, InterfaceError):
            metrics.DATABASE_ERRORS.inc()
            raise HandshakeRefused("database_unavailable") from None
        except MaxConnectionsError:
            # Redis is there, only the pool is busy: this socket's client tries again.
            metrics.REDIS_ERRORS.inc()
            raise HandshakeRefused("channel_layer_busy") from None
        except (RedisError, OSError, TimeoutError) as exc:
            metrics.REDIS_ERRORS.inc()
            self.sockets.layer_failed(exc)
            raise HandshakeRefused(f"channel_layer_unavailable ({type(exc).__name__})") from None
        except Exception:
            # A bug in this handshake refuses this socket alone; the layer is not to blame,
            # so the other sockets of the process stay open.
            log.exception("socket %s: handshake failed", self.socket_id)
            raise HandshakeRefused("server_error") from None
        return ready, fanout.Delivery(events, routes)

    async def refuse_handshake(self, reason: str) -> None:
        """Refuse the socket before accepting it (HTTP 403), counted and logged."""
        metrics.HANDSHAKES_REFUSED.labels(reason.split(" ")[0]).inc()
        user = getattr(self.scope.get("user"), "pk", None)
        log.info(
            "socket %s refused reason=%s user=%s",
            self.socket_id,
            reason,
            user,
            extra={"socket": self.socket_id, "reason": reason},
        )
        await self.close()

    def _open(self) -> dict[str, Any]:
        presence.socket_opened(
            user=self.user,
            channel_name=self.channel_name,
            process=self.sockets.origin,
            max_sockets=settings.CHAT_MAX_SOCKETS_PER_USER,
        )
        return {
            "type": "ready",
            "user": user_data(self.user),
            "last_seq": selectors.last_seq_for_user(user=self.user),
            "online": presence.online_peers(user=self.user),
        }

    async def close(self, code=None, reason=None) -> None:
        # Frames that arrive while the close handshake runs are not answered.
        self.closing = True
        await super().close(code=code, reason=reason)

    async def disconnect(self, code) -> None:
        await self.cleanup(code)

    async def cleanup(self, code: int | None = None) -> None:
        """Leave the groups and the presence of this socket, once."""
        if self.cleaned_up or not hasattr(self, "user"):
            return
        self.cleaned_up = True
        if self.accepted:
            metrics.OPEN_SOCKETS.dec()
            log.info(
                "socket %s closed user=%s code=%s duration=%.1fs",
                self.socket_id,
                self.user.pk,
                code if code is not None else "lost",
                time.monotonic() - self.opened_at,
                extra={"socket": self.socket_id, "code": code},
            )
        self.sockets.discard(self.channel_name)
        for group in self.joined_groups:
            try:
                async with self.sockets.group_calls:
                    await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as exc:
                log.warning("group_discard failed: %s", type(exc).__name__)
        try:
            _, events = await self._db(
                presence.socket_closed, user=self.user, channel_name=self.channel_name
            )
        except ChatError:
            return  # The heartbeat sweep of another socket announces the user offline.
        await self.publish(events)

    # Frames from the client

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.closing:
            return
        try:
            if text_data is None:
                metrics.FRAMES_IN.labels("invalid").inc()
                raise ChatError(ErrorCode.BAD_JSON, "frames must be JSON text, not binary")
            try:
                frame = parse_frame(text_data, max_chars=settings.CHAT_MAX_FRAME_CHARS)
            except ChatError:
                metrics.FRAMES_IN.labels("invalid").inc()
                raise
            metrics.FRAMES_IN.labels(frame.type).inc()
            await self.HANDLERS[type(frame)](self, frame)
        except ChatError as error:
            await self.refuse(error)
        except Exception:
            log.exception("socket %s: frame handling failed", self.socket_id)
            await self.send_frame(
                ChatError(ErrorCode.UNAVAILABLE, "server error; retry later").as_frame()
            )

    async def _db(self, function, **kwargs) -> tuple[Any, fanout.Delivery]:
        """Run a service or selector on the database thread; return what it committed."""
        try:
            result, events, routes = await database_sync_to_async(fanout.call_collecting)(
                function, **kwargs
            )
        except (OperationalError, InterfaceError) as exc:
            metrics.DATABASE_ERRORS.inc()
            log.warning("database unavailable: %s", str(exc).split("\n")[0][:200])
            raise ChatError(
                ErrorCode.UNAVAILABLE, "the database did not answer; nothing was stored"
            ) from None
        return result, fanout.Delivery(events, routes)

    async def _check_rate(self, action: str, rules: str, client_id: str | None = None) -> None:
        # A socket told to wait is refused here until then, without asking the counters
        # again: the window cannot reopen earlier, and a flood of refused frames would
        # otherwise cost a Redis round trip each.
        now = time.monotonic()
        refused_until = self.refused_until.get(action, 0.0)
        try:
            if now < refused_until:
                raise rate_limited(action, math.ceil((refused_until - now) * 10) / 10)
            await check_rate(action, self.user.pk, rules)
        except ChatError as error:
            self.refused_until[action] = max(refused_until, now + (error.retry_after or 0))
            metrics.RATE_LIMITED.labels(action).inc()
            error.client_id = client_id
            raise

    async def on_send(self, frame: SendFrame) -> None:
        request = SendRequest(
            sender=self.user,
            body=frame.body,
            client_id=frame.client_id,
            to=frame.to,
            conversation_id=frame.conversation,
        )
        try:
            # The queue sends the ack itself, once the batch holding this send committed.
            await send_queue().submit(request, self)
        except ChatError as error:
            error.client_id = frame.client_id
            if error.code == ErrorCode.RATE_LIMITED:
                metrics.RATE_LIMITED.labels("send").inc()
            raise

    async def on_sync(self, frame: SyncFrame) -> None:
        await self._check_rate("sync", settings.CHAT_SYNC_RATE)
        (messages, more), _ = await self._db(
            selectors.messages_after,
            user=self.user,
            after=frame.after,
            limit=settings.CHAT_SYNC_PAGE,
        )
        page, more = sync_page(messages, more=more, max_chars=settings.CHAT_SYNC_MAX_CHARS)
        metrics.SYNCS.inc()
        metrics.SYNC_MESSAGES.inc(len(page))
        await self.send_frame({"type": "sync.result", "messages": page, "more": more})

    async def on_read(self, frame: ReadFrame) -> None:
        await self._check_rate("read", settings.CHAT_READ_RATE)
        _, events = await self._db(
            services.conversation_mark_read,
            user=self.user,
            conversation_id=frame.conversation,
            up_to=frame.up_to,
        )
        await self.publish(events)

    async def on_typing(self, frame: TypingFrame) -> None:
        await self._check_rate("typing", settings.CHAT_TYPING_RATE)
        _, events = await self._db(
            services.conversation_typing, user=self.user, conversation_id=frame.conversation
        )
        await self.publish(events)

    async def on_edit(self, frame: EditFrame) -> None:
        await self._check_rate("edit", settings.CHAT_EDIT_RATE)
        _, events = await self._db(
            services.message_edit, editor=self.user, message_id=frame.id, body=frame.body
        )
        await self.publish(events)

    async def on_delete(self, frame: DeleteFrame) -> None:
        await self._check_rate("edit", settings.CHAT_EDIT_RATE)
        _, events = await self._db(services.message_delete, actor=self.user, message_id=frame.id)
        await self.publish(events)

    async def on_ping(self, frame: PingFrame) -> None:
        await self._check_rate("ping", settings.CHAT_PING_RATE)
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
        """Answer a refused frame; close 1008 only when a client keeps being refused.

        Every refusal counts (a flood of malformed frames or of frames past their rate
        alike), except `unavailable`, which is the server's failure, not the client's.
        """
        await self.send_frame(error.as_frame())
        if error.code == ErrorCode.UNAVAILABLE:
            return
        now = time.monotonic()
        self.rejections.append(now)
        while self.rejections and self.rejections[0] < now - 60:
            self.rejections.popleft()
        if len(self.rejections) > settings.CHAT_ABUSE_CLOSE_AFTER and not self.closing:
            metrics.SOCKETS_CLOSED_FOR_ABUSE.labels("refusals").inc()
            log.warning("closing socket of user %s for flooding", self.user.pk)
            self.sockets.abuse_closed(self.user.pk)
            await self.close(code=CLOSE_ABUSE)

    # Events from the channel layer

    async def chat_frame(self, event: dict[str, Any]) -> None:
        await self.send_frame(event["frame"])

    async def chat_close(self, event: dict[str, Any]) -> None:
        await self.close(code=event["code"])

    async def publish(self, delivery: fanout.Delivery) -> None:
        """Publish committed events; a failure is logged and counted, never the send's.

        A lost Redis is noticed by the reads of the sockets (_receive_from_layer), not here:
        a send can also fail because the connection pool is momentarily full.
        """
        await fanout.publish(delivery.events, delivery.routes)

    async def deliver(self, payload: dict[str, Any]) -> None:
        """Handle an event handed over by fan-out in this process, as if from the layer."""
        if self.held is not None:
            self.held.append(payload)
            return
        try:
            await self.dispatch(payload)
        except Exception:
            # One socket's failure must not stop the fan-out to the others.
            log.exception("socket %s: delivery failed", self.socket_id)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        if self.closing:
            return
        metrics.FRAMES_OUT.labels(frame["type"]).inc()
        try:
            await self.send(text_data=encode(frame))
        except Disconnected:
            # The connection is gone and its disconnect not handled yet; the client syncs.
            self.closing = True
