"""One read of the channel layer for all of this process's sockets.

A socket reading its own channel held about 6 KB while idle: its task, the wait around it,
channels-redis's two tasks inside the read and the channel's buffer. channels-redis keeps
every channel of a process in one Redis list anyway, so one task of the registry reads it
(ChatRedisChannelLayer's collector) and hands each message to the registered socket of its
channel, as fan-out in the process does; a message for a channel no longer registered is
dropped (its socket closed; its client syncs when it comes back).

A close (`chat.close`) or a return after an outage (`chat.layer_back`) waits on the
network and the database, so it runs apart instead of holding up the other sockets'
messages. When the layer fails, the reader tells the registry once and waits until it is
back; the registry then has every socket that outlived the outage join its groups again.

With another layer (the in-memory one of a single-process install), which has no read for a
whole process, each registered channel is read on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from redis.exceptions import MaxConnectionsError

from messaging import metrics
from messaging.delivery.layer import ChatRedisChannelLayer

log = logging.getLogger(__name__)

# Seconds to wait before reading again when the Redis connection pool was full.
POOL_BUSY_RETRY = 0.05
# Seconds to wait for a cancelled read of the channel layer to end before cancelling it again.
CANCEL_READ_AGAIN_AFTER = 0.5
# Messages whose handling waits (a close handshake, group joins, a query): run apart.
RUN_APART = frozenset({"chat.close", "chat.layer_back"})


class SocketRegistry(Protocol):
    """What a reader uses of the registry (messaging/delivery/registry.py)."""

    sockets: dict[str, Any]
    layer_ok: asyncio.Event

    def when_layer_lost(self) -> asyncio.Future: ...

    def forget_waiter(self, waiter: asyncio.Future) -> None: ...

    def layer_failed(self, exc: BaseException) -> None: ...

    def run_apart(self, coroutine: Coroutine[Any, Any, None]) -> None: ...


def reader_for(registry: SocketRegistry, layer) -> LayerReader:
    """Return a reader of `layer` for the registry's sockets, started."""
    if isinstance(layer, ChatRedisChannelLayer):
        return ProcessReader(registry, layer)
    return ChannelReaders(registry, layer)


class LayerReader:
    """Hand what the layer has for the registry's sockets to them."""

    def __init__(self, registry: SocketRegistry, layer) -> None:
        self.registry = registry
        self.layer = layer

    def watch(self, channel_name: str) -> None:
        """Start reading for a socket just registered."""

    def unwatch(self, channel_name: str) -> None:
        """Stop reading for a socket that left the registry."""

    def stop(self) -> None:
        """Stop reading (the registry has no socket left)."""

    async def hand_over(self, channel_name: str, message: dict[str, Any]) -> None:
        """Give a message to the socket of its channel, if it is still registered."""
        consumer = self.registry.sockets.get(channel_name)
        if consumer is None:
            return
        if message.get("type") in RUN_APART:
            self.registry.run_apart(consumer.deliver(message))
        else:
            await consumer.deliver(message)

    async def read_once(self, read) -> Any:
        """Await `read()`, given up when the layer is lost; None when nothing was read.

        A failure of the layer is reported to the registry (once for all sockets), which
        probes it until it answers again; a full connection pool is only waited out.
        """
        receiving = asyncio.ensure_future(read())
        lost = self.registry.when_layer_lost()
        try:
            await asyncio.wait([receiving, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.registry.forget_waiter(lost)
            await cancel_read(receiving)
        if receiving.cancelled():
            return None
        failure = receiving.exception()
        if failure is None:
            return receiving.result()
        metrics.REDIS_ERRORS.inc()
        if isinstance(failure, MaxConnectionsError):
            # Redis is there, only the pool is busy: read again shortly.
            await asyncio.sleep(POOL_BUSY_RETRY)
        else:
            self.registry.layer_failed(failure)
        return None


class ProcessReader(LayerReader):
    """One task reading every channel of this process from channels-redis."""

    def __init__(self, registry: SocketRegistry, layer: ChatRedisChannelLayer) -> None:
        super().__init__(registry, layer)
        self.task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        # The read's own cancellation is seen through in _run (cancel_read).
        self.task.cancel()

    async def _run(self) -> None:
        collector = await self.layer.new_channel()
        self.layer.collect_into(collector, wants=self.registry.sockets.__contains__)
        self.layer.failure_listener = self.registry.layer_failed
        try:
            while True:
                await self.registry.layer_ok.wait()
                item = await self.read_once(lambda: self.layer.receive(collector))
                if item is not None:
                    await self.hand_over(item["channel"], item["message"])
        finally:
            # A reader that started since (a socket registered while this one stopped)
            # collects into a channel of its own.
            if self.layer.receive_buffer.collector == collector:
                self.layer.collect_into(None)
                self.layer.failure_listener = None


class ChannelReaders(LayerReader):
    """A task per socket reading its own channel, for layers without a process-wide read."""

    def __init__(self, registry: SocketRegistry, layer) -> None:
        super().__init__(registry, layer)
        self.tasks: dict[str, asyncio.Task] = {}

    def watch(self, channel_name: str) -> None:
        loop = asyncio.get_running_loop()
        self.tasks[channel_name] = loop.create_task(self._read(channel_name))

    def unwatch(self, channel_name: str) -> None:
        task = self.tasks.pop(channel_name, None)
        if task is not None:
            task.cancel()

    def stop(self) -> None:
        for channel_name in list(self.tasks):
            self.unwatch(channel_name)

    async def _read(self, channel_name: str) -> None:
        while channel_name in self.tasks:
            await self.registry.layer_ok.wait()
            message = await self.read_once(lambda: self.layer.receive(channel_name))
            if message is not None:
                await self.hand_over(channel_name, message)


async def cancel_read(receiving: asyncio.Future) -> None:
    """Cancel a read of the channel layer and wait until it has ended.

    channels-redis must finish its own cancellation (it releases a lock shared by every
    read of the process) before the layer is read again. A read may end in Redis's error
    instead (a primary killed under it), or go on as if not cancelled: a cancellation that
    races a dropped connection inside redis-py can be swallowed (seen in a Sentinel
    switchover, the read never healing). So it is asked again until the read has ended;
    its outcome is for the caller to read.
    """
    while not receiving.done():
        receiving.cancel()
        await asyncio.wait([receiving], timeout=CANCEL_READ_AGAIN_AFTER)
