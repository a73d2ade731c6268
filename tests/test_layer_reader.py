"""One read of the channel layer for all of a process's sockets (delivery/layer_reader.py)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
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


@contextlib.asynccontextmanager
async def a_socket_read() -> AsyncIterator[FakeSocket]:
    """A socket in this process's registry, on the settings' layer, handed a first frame."""
    layer = get_channel_layer()
    registry = socket_registry()
    socket = FakeSocket(layer, await layer.new_channel(), 1)
    registry.add(socket)
    try:
        await layer.send(socket.channel_name, frame(1))
        assert await next_of(socket) == frame(1)
        yield socket
    finally:
        registry.discard(socket.channel_name)


class StuckRead:
    """A read of Redis that, once `stuck` is set, is never answered and outlives its cancel.

    As seen in a Sentinel switchover: the server closed the connection under the read, and
    redis-py's call went on past its cancellation.
    """

    def __init__(self, read) -> None:
        self.read = read
        self.stuck = False
        self.released = asyncio.Event()
        self.calls_stuck = 0

    async def __call__(self, layer, *args, **kwargs):
        if not self.stuck:
            return await self.read(layer, *args, **kwargs)
        self.calls_stuck += 1
        while not self.released.is_set():
            try:
                await self.released.wait()
            except asyncio.CancelledError:
                continue  # swallowed, as the read did
        return None


def stuck_in_place(monkeypatch, settings, name: str) -> StuckRead:
    """Put a StuckRead in place of channels-redis's layer call `name`, with short bounds."""
    from channels_redis.core import RedisChannelLayer

    from messaging.delivery import layer as layer_module

    settings.CHAT_LAYER_PROBE_SECONDS = 0.05
    monkeypatch.setattr(layer_module, "BLOCKED_READ_GRACE", 0.5)
    call = StuckRead(getattr(RedisChannelLayer, name))

    async def in_place(layer, *args, **kwargs):
        return await call(layer, *args, **kwargs)

    monkeypatch.setattr(RedisChannelLayer, name, in_place)
    return call


@pytest.mark.services
async def test_a_read_that_outlives_its_cancellation_still_gets_the_sockets_told_to_sync(
    settings, monkeypatch
):
    read = stuck_in_place(monkeypatch, settings, "_brpop_with_clean")
    try:
        async with a_socket_read() as a:
            read.stuck = True
            # The read is given up after its timeout and the grace (2 + 0.5 s), not awaited
            # forever: the layer counts as lost, and once it answers the socket is told so.
            message = await asyncio.wait_for(a.got.get(), 6)
            assert message == {"type": "chat.layer_back"}
            assert read.calls_stuck >= 1
            read.stuck = False
            await a.channel_layer.send(a.channel_name, frame(2))
            assert await next_of(a) == frame(2)
    finally:
        read.released.set()


@pytest.mark.services
async def test_a_connection_lost_under_the_clean_up_after_a_read_gets_the_sockets_told_to_sync(
    settings, monkeypatch
):
    from channels_redis.core import RedisChannelLayer

    settings.CHAT_LAYER_PROBE_SECONDS = 0.05
    clean_up = RedisChannelLayer._clean_receive_backup
    failures = [RedisConnectionError("Connection closed by server.")]

    async def clean_up_once_lost(layer, *args):
        if failures:
            raise failures.pop()
        await clean_up(layer, *args)

    monkeypatch.setattr(RedisChannelLayer, "_clean_receive_backup", clean_up_once_lost)
    # The only sign of a switchover this process had: its first read went through, and the
    # clean-up after it found its connection closed by the server that stepped down.
    async with a_socket_read() as a:
        assert await next_of(a) == {"type": "chat.layer_back"}
        await a.channel_layer.send(a.channel_name, frame(2))
        # The message whose clean-up failed may come once more, as channels-redis hands
        # back what it read without cleaning up; a client drops a push it saw by its seq.
        handed = [await next_of(a)]
        while handed[-1] != frame(2):
            handed.append(await next_of(a))
        assert handed in ([frame(2)], [frame(1), frame(2)])


async def test_a_clean_up_begun_before_the_layer_came_back_fails_without_a_second_outage(
    monkeypatch,
):
    from channels_redis.core import RedisChannelLayer

    # Each outage makes every socket join its groups again and its client sync: a call
    # that began before the connections were renewed, and fails with them, must not
    # count as another one; a call begun after does.
    began, renewed = asyncio.Event(), asyncio.Event()

    async def clean_up_lost(layer, *args):
        began.set()
        await renewed.wait()
        raise RedisConnectionError("Connection closed by server.")

    monkeypatch.setattr(RedisChannelLayer, "_clean_receive_backup", clean_up_lost)
    layer = ChatRedisChannelLayer(hosts=["redis://127.0.0.1:6379/10"])
    told: list[BaseException] = []
    layer.failure_listener = told.append
    before = asyncio.ensure_future(layer._clean_receive_backup(0, "asgi.specific.p!"))
    await began.wait()
    await layer.drop_connections()
    renewed.set()
    with pytest.raises(RedisConnectionError):
        await before
    assert told == []
    with pytest.raises(RedisConnectionError):
        await layer._clean_receive_backup(0, "asgi.specific.p!")
    assert len(told) == 1


@pytest.mark.services
async def test_a_primary_the_sentinels_move_counts_as_an_outage_even_without_an_error(settings):
    from redis.asyncio import Redis
    from redis.connection import parse_url

    where = parse_url(settings.REDIS_URLS[0])
    layer = ChatRedisChannelLayer(
        hosts=[{"sentinels": [("127.0.0.1", 1)], "master_name": "chat", "db": where["db"]}]
    )
    told: list[BaseException] = []
    layer.failure_listener = told.append
    pool = layer.create_pool(0)
    # The same server under two names stands for the old primary and the new one.
    named = [(where["host"], where["port"]), ("localhost", where["port"])]

    async def discover_master(service_name: str) -> tuple[str, int]:
        return named[0]

    pool.sentinel_manager.discover_master = discover_master
    client = Redis(connection_pool=pool)
    try:
        assert await client.ping()
        assert await client.ping()  # the same primary again is no news
        assert told == []
        # A switchover: the server closes the connections, the next call reconnects to
        # the new primary without an error, and the layer counts it as an outage (its
        # sockets join their groups again and their clients sync).
        named.pop(0)
        await pool.disconnect()
        assert await client.ping()
        assert [str(failure) for failure in told] == [
            f"the primary moved to localhost:{where['port']}"
        ]
    finally:
        await client.aclose()


async def test_a_probe_that_outlives_its_cancellation_does_not_keep_the_layer_lost(
    settings, monkeypatch
):
    from messaging.delivery import registry as registry_module

    settings.CHAT_LAYER_PROBE_SECONDS = 0.05
    settings.REDIS_SOCKET_TIMEOUT = 0.3
    probe = StuckRead(lambda layer: asyncio.sleep(0))
    probe.stuck = True

    async def probe_layer() -> None:
        if probe.calls_stuck == 0:
            await probe(None)  # the first probe is never answered; the next ones are

    monkeypatch.setattr(registry_module, "_probe_layer", probe_layer)
    layer = InMemoryChannelLayer()
    registry = socket_registry()
    a = FakeSocket(layer, await layer.new_channel(), 1)
    registry.add(a)
    try:
        registry.layer_failed(RedisConnectionError("gone"))
        # The first probe is given up after REDIS_SOCKET_TIMEOUT; the next one answers.
        assert await next_of(a) == {"type": "chat.layer_back"}
        assert probe.calls_stuck == 1
    finally:
        probe.released.set()
        registry.discard(a.channel_name)


@pytest.mark.services
async def test_a_clean_up_that_outlives_its_cancellation_holds_up_no_read_and_is_no_outage(
    settings, monkeypatch
):
    clean_up = stuck_in_place(monkeypatch, settings, "_clean_receive_backup")
    clean_up.stuck = True
    try:
        async with a_socket_read() as a:
            while clean_up.calls_stuck == 0:
                await asyncio.sleep(0.01)
            clean_up.stuck = False
            # The next read of the channel waits for that clean-up, given up after 0.5 s.
            await a.channel_layer.send(a.channel_name, frame(2))
            handed = [await next_of(a)]
            while handed[-1] != frame(2):
                handed.append(await next_of(a))
            assert handed in ([frame(2)], [frame(1), frame(2)])
            await asyncio.sleep(0.3)
            assert a.got.empty(), "a slow clean-up made the sockets rejoin and sync"
    finally:
        clean_up.released.set()
