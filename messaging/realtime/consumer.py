"""The socket: /ws/chat/ carries all of one user's conversations."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from autobahn.exception import Disconnected
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError

from messaging import metrics
from messaging.delivery import fanout
from messaging.delivery.registry import socket_registry
from messaging.protocol import ChatError, ErrorCode, encode, parse_frame
from messaging.realtime.closing_batch import closing_batches
from messaging.realtime.database_thread import on_database_thread
from messaging.realtime.frame_handlers import FrameHandlers
from messaging.realtime.group_batches import leave_groups
from messaging.realtime.layer_reading import LayerReading
from messaging.realtime.opening import Opening
from messaging.realtime.refusals import Refusals

log = logging.getLogger(__name__)

# Cleanup of a socket that went away abruptly may not hold its task up longer than this.
CLEANUP_TIMEOUT = 5


class ChatConsumer(Opening, LayerReading, FrameHandlers, Refusals, AsyncWebsocketConsumer):
    """Parse frames, make one hop to the database, answer; never close on a client mistake.

    The handshake is in opening.py, the return after a layer outage in layer_reading.py,
    the frame handlers in frame_handlers.py and the per-frame limits in refusals.py.
    """

    async def __call__(self, scope, receive, send):
        # As AsyncConsumer.__call__, but the socket reads only its client's frames: what the
        # channel layer has for its channel is handed over (deliver) by this process's one
        # reader of the layer (messaging/delivery/layer_reader.py), and an idle socket holds
        # no read of its own.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        # Read by the handshake's steps for a client that left (messaging/realtime/abandoned.py).
        self.incoming = receive
        self.sockets = socket_registry()
        # The layer outages this socket's groups have outlived (see chat_layer_back).
        self.outages_seen = self.sockets.outages
        self.closing = False
        self.cleaned_up = False
        self.accepted = False
        # A short id that ties together the log lines of one socket.
        self.socket_id = uuid.uuid4().hex[:8]
        self.opened_at = time.monotonic()
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            # disconnect() does not run when the server drops the connection abruptly;
            # presence must not stay online for a socket that is gone.
            if not self.cleaned_up:
                await asyncio.wait_for(self.cleanup(), CLEANUP_TIMEOUT)

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
        try:
            await leave_groups(self.channel_layer, self.channel_name, self.joined_groups)
        except Exception as exc:
            log.warning("group_discard failed: %s", type(exc).__name__)
        if not self.recorded:
            return
        try:
            # With the sockets closing at the same time (messaging/realtime/closing_batch.py).
            await closing_batches().call((self.user, self.channel_name))
        except DatabaseError:
            # Its row stays until this process's heartbeat finds no socket for it.
            metrics.DATABASE_ERRORS.inc()

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
        return await on_database_thread(function, **kwargs)

    # Events from the channel layer

    async def chat_frame(self, event: dict[str, Any]) -> None:
        await self.send_frame(event["frame"])

    async def chat_close(self, event: dict[str, Any]) -> None:
        await self.close(code=event["code"])

    async def publish(self, delivery: fanout.Delivery) -> None:
        """Publish committed events; a failure is logged and counted, never the send's.

        A lost Redis is noticed by the process's read of the layer (layer_reader.py), not
        here: a send can also fail because the connection pool is momentarily full.
        """
        await fanout.publish(delivery.events, delivery.routes)

    async def deliver(self, payload: dict[str, Any]) -> None:
        """Handle an event from the layer's reader or from fan-out in this process."""
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
        metrics.count_frame_out(frame["type"])
        try:
            await self.send(text_data=encode(frame))
        except Disconnected:
            # The connection is gone and its disconnect not handled yet; the client syncs.
            self.closing = True
