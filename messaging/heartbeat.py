"""This process's open sockets: one heartbeat task keeps their presence alive.

The same registry watches the channel layer. When it fails (Redis stopped), sockets stay
open, so sends are still stored and acked, while a probe waits for the layer to answer
again. Then every socket that was open during the outage is closed with 1013: a Redis that
restarted has forgotten their groups, so their clients reconnect, join again and sync.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from messaging import fanout, loop_lag, presence
from messaging.logins import SocketLogin, logins_ended

log = logging.getLogger(__name__)

# Group joins and leaves of this process's sockets that may wait on Redis at once. Each
# holds a connection of the layer's pool (REDIS_MAX_CONNECTIONS, 500 by default): when
# thousands of sockets close together, the rest wait their turn instead of finding the
# pool empty (5,000 sockets closing at once: 1,044 leaves failed, each leaving a stale
# member in a group until the layer's group expiry).
GROUP_CALLS_AT_ONCE = 100
# Users cooling down after an abuse close that one process remembers at most (a few MB).
COOLING_DOWN_KEPT = 100_000
# The close code of a socket whose session or token ended (PROTOCOL.md).
CLOSE_LOGIN_ENDED = 4401


class Heartbeat:
    """Keep the presence rows of this process's sockets fresh while any is open."""

    def __init__(self) -> None:
        self.sockets: dict[str, object] = {}
        # Names this registry: in presence (PresenceProcess), and on the events its
        # fan-out also sent through the layer, which its own sockets had directly and skip.
        self.origin = uuid.uuid4().hex
        # The same sockets by user: fan-out hands frames to them without the channel layer.
        self.by_user: dict[int, dict[str, object]] = {}
        self._task: asyncio.Task | None = None
        # Beside the heartbeat, while sockets are open: the event loop's stalls on /metrics.
        self._lag_watch: asyncio.Task | None = None
        # Set when the layer fails; sockets opened before then hold this very event.
        self.layer_lost = asyncio.Event()
        self.layer_ok = asyncio.Event()
        self.layer_ok.set()
        self._recovery: asyncio.Task | None = None
        self.group_calls = asyncio.Semaphore(GROUP_CALLS_AT_ONCE)
        # Users whose socket this process closed for abuse, until when their handshakes
        # are refused: a flooder's sockets would otherwise come back at once, each costing
        # a handshake and a burst of frames.
        self._cooling_down: dict[int, float] = {}

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

    def add(self, consumer) -> None:
        self.sockets[consumer.channel_name] = consumer
        self.by_user.setdefault(consumer.user.pk, {})[consumer.channel_name] = consumer
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run())
            if self._lag_watch is not None:
                self._lag_watch.cancel()
            self._lag_watch = loop.create_task(loop_lag.watch())

    def discard(self, channel_name: str) -> None:
        consumer = self.sockets.pop(channel_name, None)
        if consumer is not None:
            of_user = self.by_user.get(consumer.user.pk, {})
            of_user.pop(channel_name, None)
            if not of_user:
                self.by_user.pop(consumer.user.pk, None)
        if not self.sockets and self._task is not None:
            self._task.cancel()
            self._lag_watch.cancel()
            self._task = self._lag_watch = None

    def layer_failed(self, exc: BaseException) -> None:
        """Note that the channel layer failed; probe it until it answers again."""
        if not self.layer_ok.is_set():
            return
        log.warning("channel layer lost (%s); sockets stay open until it is back", _name(exc))
        self.layer_ok.clear()
        self.layer_lost.set()
        self._recovery = asyncio.get_running_loop().create_task(self._await_layer())

    async def _await_layer(self) -> None:
        while True:
            await asyncio.sleep(settings.CHAT_LAYER_PROBE_SECONDS)
            try:
                await asyncio.wait_for(_probe_layer(), settings.REDIS_SOCKET_TIMEOUT)
            except Exception:
                continue
            break
        log.warning("channel layer is back; closing the sockets that were open without it")
        self.layer_lost = asyncio.Event()
        self.layer_ok.set()

    async def _run(self) -> None:
        while self.sockets:
            await asyncio.sleep(settings.CHAT_HEARTBEAT_SECONDS)
            if not self.sockets:
                break
            try:
                await self.beat()
            except Exception:
                log.exception("presence heartbeat failed")

    async def beat(self) -> None:
        """Refresh this process's sockets, sweep those of dead processes, close ended logins."""
        consumers = dict(self.sockets)
        sockets = {name: consumer.user.pk for name, consumer in consumers.items()}
        ended, events, routes = await database_sync_to_async(fanout.call_collecting)(
            _beat,
            process=self.origin,
            sockets=sockets,
            logins=[consumer.login for consumer in consumers.values()],
        )
        await fanout.publish(events, routes)
        for name in ended:
            log.info("closing socket %s: its login ended", name)
            await consumers[name].close(code=CLOSE_LOGIN_ENDED)


def _beat(*, process: str, sockets: dict[str, int], logins: list[SocketLogin]) -> list[str]:
    presence.sockets_heartbeat(process=process, sockets=sockets)
    presence.sweep_expired()
    return logins_ended(logins=logins)


def _name(exc: BaseException) -> str:
    return type(exc).__name__


async def _probe_layer() -> None:
    """Raise unless every Redis server of the channel layer answers."""
    layer = get_channel_layer()
    for index in range(getattr(layer, "ring_size", 0)):
        await layer.connection(index).ping()


_heartbeats: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Heartbeat] = (
    weakref.WeakKeyDictionary()
)


def heartbeat() -> Heartbeat:
    """Return this event loop's registry of sockets."""
    loop = asyncio.get_running_loop()
    if loop not in _heartbeats:
        _heartbeats[loop] = Heartbeat()
        loop.set_exception_handler(_quiet_lost_redis)
    return _heartbeats[loop]


def _quiet_lost_redis(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Log a lost Redis in a background task of channels-redis as one line, not a traceback.

    channels-redis cleans up after cancelled reads in tasks nobody awaits; when Redis goes
    away they fail, and asyncio would print each failure's traceback. The outage itself is
    handled (see Heartbeat.layer_failed); anything else keeps the default handling.
    """
    exception = context.get("exception")
    if isinstance(exception, (RedisConnectionError, RedisTimeoutError)):
        log.warning("channel layer background task failed: %s", _name(exception))
        return
    loop.default_exception_handler(context)
