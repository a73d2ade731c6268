"""The Redis channel layer, with light buffers and one read for all of a process's sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from channels_redis.core import RedisChannelLayer
from redis.asyncio import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from messaging.delivery.bounded_calls import within
from messaging.delivery.light_queue import LightQueue
from messaging.delivery.sentinel_pool import WatchedSentinelPool, sentinel_pool

log = logging.getLogger(__name__)

# Seconds a blocking read of the process's messages waits before asking again (5 in
# channels-redis), and how long past that it may go unanswered before its server is taken as
# gone: more than the event loop's worst stalls, since a false alarm makes every socket join
# its groups again and its client sync.
BLOCKED_READ_SECONDS = 2
BLOCKED_READ_GRACE = 3.0


class ChatRedisChannelLayer(RedisChannelLayer):
    """channels-redis's layer, read for a whole process at once, with light buffers.

    channels-redis keeps all of a process's channels in one Redis list, and each reader of
    a channel takes turns reading that list, buffering what it reads for the others. Here
    the sockets do not read: one reader of the process (messaging/delivery/layer_reader.py)
    asks for its own channel, the collector, and every message read for a socket's channel
    is put in the collector's buffer instead, wrapped as {"channel": name, "message":
    message}. A read of another channel (the health probe's) still gets its own messages,
    kept until it asks when they come first, and hands the sockets' to the collector.

    Buffers are LightQueues with the layer's capacity, dropping the oldest as channels-redis
    does: an asyncio.Queue allocates about 2.5 KB when made, a LightQueue nothing while empty.

    A connection lost under a send, a group change or the clean-up after a read is told to
    `failure_listener` (the registry's layer_failed): in a Sentinel switchover the server
    closes every connection, and the one read of the process may have been between two
    commands, its next one reconnecting to the new primary unharmed, while messages sent
    meanwhile were lost. So is a move of the primary that the sentinels name
    (sentinel_pool.py), which may be all a process sees of a switchover.
    And a blocking read that its server leaves unanswered past its own timeout (seen in a
    switchover: a read sent to the primary as it paused its clients and stepped down)
    fails at once instead of after the socket timeout, holding every delivery up meanwhile.
    The clean-up after a read, which the next read of the channel waits for, is given up
    past BLOCKED_READ_GRACE (a message it did not clean up comes once more).
    """

    brpop_timeout = BLOCKED_READ_SECONDS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.receive_buffer = ChannelBuffers(self.capacity)
        self.failure_listener: Callable[[BaseException], None] | None = None
        # Times this process's connections were dropped after an outage (drop_connections).
        self.renewals = 0

    def create_pool(self, index: int) -> ConnectionPool:
        return sentinel_pool(self.hosts[index], self._primary_moved) or super().create_pool(index)

    def _primary_moved(self, address: tuple[str, int]) -> None:
        if self.failure_listener is not None:
            host, port = address
            self.failure_listener(RedisConnectionError(f"the primary moved to {host}:{port}"))

    async def drop_connections(self) -> None:
        """Close this event loop's connections to Redis; the next use connects anew."""
        # channels-redis keeps a client per shard and event loop (RedisLoopLayer); its
        # flush() takes them out one at a time, awaiting each close, so a call could begin
        # on a client about to be closed. All are taken out at once, then counted.
        loop_layer = self._layers.get(asyncio.get_running_loop())
        clients = list(loop_layer._connections.values()) if loop_layer is not None else []
        if loop_layer is not None:
            loop_layer._connections.clear()
        self.renewals += 1
        for client in clients:
            pool = client.connection_pool
            try:
                await client.aclose(close_connection_pool=True)
                if isinstance(pool, WatchedSentinelPool):
                    await pool.close_sentinels()
            except (RedisError, OSError) as exc:
                log.warning("a connection to the layer not closed: %s", type(exc).__name__)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        with self._failures_told():
            await super().send(channel, message)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        with self._failures_told():
            await super().group_send(group, message)

    async def group_add(self, group: str, channel: str) -> None:
        with self._failures_told():
            await super().group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        with self._failures_told():
            await super().group_discard(group, channel)

    async def group_add_many(self, joins: Iterable[tuple[str, str]]) -> None:
        """Add each (group, channel) as group_add does, in one round trip per shard."""
        now = time.time()
        with self._failures_told():
            for index, groups in self._by_shard(joins).items():
                pipeline = self.connection(index).pipeline(transaction=False)
                for key, channels in groups.items():
                    pipeline.zadd(key, dict.fromkeys(channels, now))
                    pipeline.expire(key, self.group_expiry)
                await pipeline.execute()

    async def group_discard_many(self, leaves: Iterable[tuple[str, str]]) -> None:
        """Remove each (group, channel) as group_discard does, in one round trip per shard."""
        with self._failures_told():
            for index, groups in self._by_shard(leaves).items():
                pipeline = self.connection(index).pipeline(transaction=False)
                for key, channels in groups.items():
                    pipeline.zrem(key, *channels)
                await pipeline.execute()

    def _by_shard(self, pairs: Iterable[tuple[str, str]]) -> dict[int, dict[bytes, list[str]]]:
        """Sort (group, channel) pairs by the shard and key of their group."""
        shards: dict[int, dict[bytes, list[str]]] = {}
        for group, channel in pairs:
            self.require_valid_group_name(group)
            self.require_valid_channel_name(channel)
            keys = shards.setdefault(self.consistent_hash(group), {})
            keys.setdefault(self._group_key(group), []).append(channel)
        return shards

    async def _brpop_with_clean(self, index: int, channel: str, timeout: float) -> Any:
        return await within(
            super()._brpop_with_clean(index, channel, timeout),
            timeout + BLOCKED_READ_GRACE,
            "a blocking read of the layer",
        )

    async def _clean_receive_backup(self, index: int, channel: str) -> None:
        # The next read of the channel waits for this one, so it is bounded; given up, it
        # is no outage by itself (the event loop may only be slow), but a connection lost
        # under it is one like any other.
        await within(
            self._clean_up_told(index, channel),
            BLOCKED_READ_GRACE,
            "a clean-up of the layer's backup queue",
        )

    async def _clean_up_told(self, index: int, channel: str) -> None:
        with self._failures_told():
            await super()._clean_receive_backup(index, channel)

    @contextlib.contextmanager
    def _failures_told(self) -> Iterator[None]:
        renewals = self.renewals
        try:
            yield
        except MaxConnectionsError:
            raise  # Redis is there; only the pool is busy.
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # A call begun before the connections were renewed failed with an outage that
            # is over; its change is in the sync every socket was told to do since.
            if self.failure_listener is not None and renewals == self.renewals:
                self.failure_listener(exc)
            raise

    async def receive(self, channel: str) -> dict[str, Any]:
        if "!" in channel:
            # Its buffer exists before anything is read, even if its channel is a socket's.
            self.receive_buffer.expect(channel)
        return await super().receive(channel)

    def collect_into(
        self, channel: str | None, wants: Callable[[str], bool] = lambda name: False
    ) -> None:
        """Put the messages of the channels `wants` names into `channel`'s buffer (None: stop).

        Only while no read of their own waits for them.
        """
        self.receive_buffer.collector = channel
        self.receive_buffer.wants = wants


class ChannelBuffers(dict):
    """channels-redis's buffers by channel name; the collector's channels go to it."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.collector: str | None = None
        self.wants: Callable[[str], bool] = lambda name: False

    def expect(self, channel: str) -> None:
        """Make the buffer of a channel about to be read, unless it has one."""
        if channel not in self:
            self[channel] = LightQueue(self.capacity)

    def __missing__(self, channel: str) -> LightQueue | _ToCollector:
        if self.collector is not None and channel != self.collector and self.wants(channel):
            # Not stored: channels-redis only puts a message in it.
            return _ToCollector(self, channel)
        buffer = self[channel] = LightQueue(self.capacity)
        return buffer


class _ToCollector:
    """Where channels-redis puts a message for a channel that nobody reads."""

    __slots__ = ("buffers", "channel")

    def __init__(self, buffers: ChannelBuffers, channel: str) -> None:
        self.buffers = buffers
        self.channel = channel

    def put_nowait(self, message: dict[str, Any]) -> None:
        collector = self.buffers.collector
        if collector is not None:
            self.buffers[collector].put_nowait({"channel": self.channel, "message": message})

    def empty(self) -> bool:
        return True
