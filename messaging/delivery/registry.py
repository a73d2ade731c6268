"""This process's open sockets, by channel and by user, and what it knows of the layer.

Fan-out hands a committed change to the sockets of this process found here, without the
channel layer. The registry also watches the layer: when it fails (Redis stopped, or the
primary lost until Sentinel promotes a replica), sockets stay open, so sends are still
stored and acked, while a probe waits for the layer to answer again. Then every socket
that was open during the outage joins its groups again (a Redis that restarted has
forgotten them, a promoted replica may lack the last ones) and tells its client to sync
(realtime/layer_reading.py, chat_layer_back), without closing: no reconnect storm.

While it has sockets, the registry reads the channel layer for all of them at once
(messaging/delivery/layer_reader.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from messaging.delivery.bounded_calls import within
from messaging.delivery.layer import ChatRedisChannelLayer
from messaging.delivery.layer_reader import LayerReader, reader_for
from messaging.singletons import per_event_loop

log = logging.getLogger(__name__)

# Users cooling down after an abuse close that one process remembers at most (a few MB).
COOLING_DOWN_KEPT = 100_000


class SocketRegistry:
    """The sockets open on this event loop, and the state of the channel layer for them."""

    def __init__(self) -> None:
        self.sockets: dict[str, object] = {}
        # Names this registry: in presence (PresenceProcess), and on the events its
        # fan-out also sent through the layer, which its own sockets had directly and skip.
        self.origin = uuid.uuid4().hex
        # The same sockets by user: fan-out hands frames to them without the channel layer.
        self.by_user: dict[int, dict[str, object]] = {}
        # The heartbeat's task while sockets are open (messaging/delivery/heartbeat.py).
        self.heartbeat_task: asyncio.Task | None = None
        # Set when the layer fails; a new one is made when it is back.
        self.layer_lost = asyncio.Event()
        self.layer_ok = asyncio.Event()
        self.layer_ok.set()
        # Futures of the reads of the layer, resolved when it fails.
        self._lost_waiters: set[asyncio.Future] = set()
        # The read of the channel layer for these sockets, while there are any.
        self.reader: LayerReader | None = None
        # Handlers that run apart from the reader (a close, a return after an outage).
        self._apart: set[asyncio.Task] = set()
        # Outages so far: a socket that joined its groups before the latest one joins again.
        self.outages = 0
        # Since when the layer is back, and the sockets that have not joined again yet.
        self._back_at = 0.0
        self._to_rejoin: set[str] = set()
        self._recovery: asyncio.Task | None = None
        # Users whose socket this process closed for abuse, until when their handshakes
        # are refused: a flooder's sockets would otherwise come back at once, each costing
        # a handshake and a burst of frames.
        self._cooling_down: dict[int, float] = {}

    def add(self, consumer) -> None:
        self.sockets[consumer.channel_name] = consumer
        self.by_user.setdefault(consumer.user.pk, {})[consumer.channel_name] = consumer
        if self.reader is None:
            self.reader = reader_for(self, consumer.channel_layer)
        self.reader.watch(consumer.channel_name)

    def discard(self, channel_name: str) -> None:
        self.rejoined(channel_name)  # gone: nothing to wait for
        consumer = self.sockets.pop(channel_name, None)
        if consumer is not None:
            of_user = self.by_user.get(consumer.user.pk, {})
            of_user.pop(channel_name, None)
            if not of_user:
                self.by_user.pop(consumer.user.pk, None)
            if self.reader is not None:
                self.reader.unwatch(channel_name)
        if not self.sockets and self.reader is not None:
            self.reader.stop()
            self.reader = None
        if not self.sockets and self.heartbeat_task is not None:
            self.heartbeat_task.cancel()
            self.heartbeat_task = None

    def run_apart(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a socket's handler as a task of its own, kept until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._apart.add(task)
        task.add_done_callback(self._apart.discard)

    def abuse_closed(self, user_id: int) -> None:
        """Refuse the user's handshakes on this process for CHAT_ABUSE_COOLDOWN_SECONDS."""
        now = time.monotonic()
        if len(self._cooling_down) > COOLING_DOWN_KEPT:
            self._cooling_down = {
                user: until for user, until in self._cooling_down.items() if until > now
            }
        self._cooling_down[user_id] = now + settings.CHAT_ABUSE_COOLDOWN_SECONDS

    def cooling_down(self, user_id: int) -> bool:
        """Tell whether a socket of the user was closed for abuse here a short while ago."""
        return self._cooling_down.get(user_id, 0.0) > time.monotonic()

    def layer_failed(self, exc: BaseException) -> None:
        """Note that the channel layer failed; probe it until it answers again."""
        if not self.layer_ok.is_set():
            return
        log.warning(
            "channel layer lost (%s: %s); sockets stay open until it is back", _name(exc), exc
        )
        self.outages += 1
        self.layer_ok.clear()
        self.layer_lost.set()
        for waiter in self._lost_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._lost_waiters.clear()
        self._recovery = asyncio.get_running_loop().create_task(self._await_layer())

    def when_layer_lost(self) -> asyncio.Future:
        """Return a future resolved when the layer fails (at once if it is lost now).

        Give it back with forget_waiter once it is no longer awaited.
        """
        waiter = asyncio.get_running_loop().create_future()
        if self.layer_lost.is_set():
            waiter.set_result(None)
        else:
            self._lost_waiters.add(waiter)
        return waiter

    def forget_waiter(self, waiter: asyncio.Future) -> None:
        """Stop resolving a future of when_layer_lost."""
        self._lost_waiters.discard(waiter)
        waiter.cancel()

    async def _await_layer(self) -> None:
        while True:
            await asyncio.sleep(settings.CHAT_LAYER_PROBE_SECONDS)
            try:
                # Given up on, not awaited past its bound: a ping on a connection that a
                # switchover closed can outlive its cancellation (bounded_calls.py).
                await within(_probe_layer(), settings.REDIS_SOCKET_TIMEOUT, "a probe of the layer")
            except Exception:
                continue
            break
        # Every connection of this process to the layer starts anew: one kept from before
        # the outage can still lead to a server that stepped down in a Sentinel switchover,
        # where the process's one read would wait for messages sent to the new primary.
        await _drop_layer_connections()
        self._back_at = time.monotonic()
        outlived = {
            name: consumer
            for name, consumer in self.sockets.items()
            if consumer.outages_seen != self.outages
        }
        self._to_rejoin = set(outlived)
        log.warning(
            "channel layer is back; %d sockets join their groups again and are told to sync",
            len(self._to_rejoin),
        )
        self.layer_lost = asyncio.Event()
        self.layer_ok.set()
        for consumer in outlived.values():
            self.run_apart(consumer.deliver({"type": "chat.layer_back"}))

    def rejoined(self, channel_name: str) -> None:
        """Note that a socket joined its groups again after an outage; log when all did."""
        if channel_name not in self._to_rejoin:
            return
        self._to_rejoin.discard(channel_name)
        if not self._to_rejoin:
            log.info(
                "sockets rejoined the channel layer in %.2f s", time.monotonic() - self._back_at
            )


def _name(exc: BaseException) -> str:
    return type(exc).__name__


async def _probe_layer() -> None:
    """Raise unless every Redis server of the channel layer answers."""
    layer = get_channel_layer()
    for index in range(getattr(layer, "ring_size", 0)):
        await layer.connection(index).ping()


async def _drop_layer_connections() -> None:
    """Close this event loop's connections to the channel layer; the next use reconnects."""
    layer = get_channel_layer()
    if not isinstance(layer, ChatRedisChannelLayer):
        return  # the in-memory layer has no connections
    try:
        await layer.drop_connections()
    except Exception as exc:
        log.warning("channel layer connections not closed: %s", _name(exc))


def _new_registry() -> SocketRegistry:
    asyncio.get_running_loop().set_exception_handler(_quiet_lost_redis)
    return SocketRegistry()


socket_registry = per_event_loop(_new_registry)
socket_registry.__doc__ = "Return this event loop's registry of sockets."


def _quiet_lost_redis(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Log a lost Redis in a background task of channels-redis as one line, not a traceback.

    channels-redis cleans up after cancelled reads in tasks nobody awaits; when Redis goes
    away they fail, and asyncio would print each failure's traceback. The outage itself is
    handled (see SocketRegistry.layer_failed); anything else keeps the default handling.
    """
    exception = context.get("exception")
    if isinstance(exception, (RedisConnectionError, RedisTimeoutError)):
        log.warning("channel layer background task failed: %s", _name(exception))
        return
    loop.default_exception_handler(context)
