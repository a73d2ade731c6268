"""One read of the channel layer for all of a process's sockets (delivery/layer_reader.py)."""

import asyncio
from types import SimpleNamespace

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError

from messaging.delivery.layer import ChatRedisChannelLayer
from messaging.delivery.layer_reader import ChannelReaders, ProcessReader
from messaging.delivery.light_queue import LightQueue
from messaging.delivery.registry import socket_registry


class FakeSocket:
    """What the registry and its reader use of a socket; keeps what it is handed."""

    def __init__(self, layer, channel_name: str, user_id: int) -> None:
        self.channel_layer = layer
        self.channel_name = channel_name
        self.user = SimpleNamespace(pk=user_id)
        self.outages_seen = 0
        self.got: asyncio.Queue = asyncio.Queue()
        self.closing = asyncio.Event()

    async def deliver(self, message: dict) -> None:
        if message["type"] == "chat.close":
            await self.closing.wait()  # a close handshake that takes its time
        await self.got.put(message)


async def next_of(socket: FakeSocket) -> dict:
    return await asyncio.wait_for(socket.got.get(), 5)


def frame(n: int) -> dict:
    return {"type": "chat.frame", "frame": {"type": "pong", "last_seq": n}}


def test_messages_for_channels_nobody_reads_go_to_the_collector():
    layer = ChatRedisChannelLayer(hosts=["redis://127.0.0.1:6379/10"], capacity=3)
    buffers = layer.receive_buffer
    buffers.expect("specific.p!probe")
    layer.collect_into("specific.p!reader", wants={"specific.p!socket"}.__contains__)
    buffers["specific.p!socket"].put_nowait({"n": 1})
    buffers["specific.p!probe"].put_nowait({"n": 2})
    # A message that comes before its reader asks (the health probe's) waits for it.
    buffers["specific.p!later"].put_nowait({"n": 3})
    assert "specific.p!socket" not in buffers
    assert buffers["specific.p!reader"].get_nowait() == {
        "channel": "specific.p!socket",
        "message": {"n": 1},
    }
    assert buffers["specific.p!probe"].get_nowait() == {"n": 2}
    assert buffers["specific.p!later"].get_nowait() == {"n": 3}
    # Without a collector, a buffer is made as channels-redis makes it.
    layer.collect_into(None)
    assert isinstance(buffers["specific.p!other"], LightQueue)


async def check_one_reader(layer, reader_class) -> None:
    registry = socket_registry()
    a = FakeSocket(layer, await layer.new_channel(), 1)
    b = FakeSocket(layer, await layer.new_channel(), 2)
    registry.add(a)
    registry.add(b)
    assert isinstance(registry.reader, reader_class)
    await layer.send(a.channel_name, frame(1))
    assert await next_of(a) == frame(1)
    for socket in (a, b):
        await layer.group_add("reader-test", socket.channel_name)
    await layer.group_send("reader-test", frame(2))
    assert await next_of(a) == frame(2) and await next_of(b) == frame(2)

    # A close waits on its handshake apart: the other socket's messages do not wait for it.
    await layer.send(a.channel_name, {"type": "chat.close", "code": 4001})
    await layer.send(b.channel_name, frame(3))
    assert await next_of(b) == frame(3)
    a.closing.set()
    assert await next_of(a) == {"type": "chat.close", "code": 4001}

    # Once the layer is back after an outage, each socket that outlived it is told so.
    registry.layer_failed(RedisConnectionError("gone"))
    assert await next_of(a) == {"type": "chat.layer_back"}
    assert await next_of(b) == {"type": "chat.layer_back"}
    await layer.send(b.channel_name, frame(4))
    assert await next_of(b) == frame(4)

    # A socket gone from the registry is handed nothing; the last one gone stops the reader.
    registry.discard(b.channel_name)
    await layer.send(b.channel_name, frame(5))
    await layer.send(a.channel_name, frame(6))
    assert await next_of(a) == frame(6)
    assert b.got.empty()
    registry.discard(a.channel_name)
    assert registry.reader is None


async def test_the_in_memory_layer_is_read_channel_by_channel(settings):
    settings.CHAT_LAYER_PROBE_SECONDS = 0.05
    await check_one_reader(InMemoryChannelLayer(), ChannelReaders)


@pytest.mark.services
async def test_one_read_of_redis_serves_every_socket_of_the_process(settings):
    settings.CHAT_LAYER_PROBE_SECONDS = 0.05
    layer = get_channel_layer()
    assert isinstance(layer, ChatRedisChannelLayer)
    await check_one_reader(layer, ProcessReader)


@pytest.mark.services
async def test_the_health_probe_reads_beside_the_process_reader():
    from messaging.ops import health

    layer = get_channel_layer()
    registry = socket_registry()
    a = FakeSocket(layer, await layer.new_channel(), 1)
    registry.add(a)
    try:
        for n in range(3):
            await asyncio.wait_for(health._channel_layer(), 5)
            await layer.send(a.channel_name, frame(n))
            assert await next_of(a) == frame(n)
    finally:
        registry.discard(a.channel_name)
