"""A socket's reads (sync, ping) run beside the one thread of the sockets' other database work."""

import asyncio
import threading
import time

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings

from messaging.domain import selectors, services
from messaging.realtime import frame_handlers
from tests.helpers import calls_of

pytestmark = pytest.mark.django_db(transaction=True)

# How long the test keeps the sockets' database thread busy.
BUSY_S = 1.5


async def busy_database_thread(started: threading.Event) -> None:
    def hold() -> None:
        started.set()
        time.sleep(BUSY_S)

    await database_sync_to_async(hold)()


async def timed_sync(socket) -> float:
    began = time.monotonic()
    await socket.request({"type": "sync", "after": 0}, "sync.result", timeout=BUSY_S * 3)
    return time.monotonic() - began


async def test_sync_and_ping_do_not_wait_for_the_database_thread(connect, alice):
    socket = await connect(alice)
    started = threading.Event()
    holder = asyncio.ensure_future(busy_database_thread(started))
    await asyncio.to_thread(started.wait, 5)
    assert await timed_sync(socket) < BUSY_S / 2
    began = time.monotonic()
    await socket.request({"type": "ping"}, "pong", timeout=BUSY_S * 3)
    assert time.monotonic() - began < BUSY_S / 2
    await holder


async def test_with_no_read_threads_they_run_on_the_database_thread(connect, alice):
    with override_settings(CHAT_SOCKET_READ_THREADS=0):
        socket = await connect(alice)
        started = threading.Event()
        holder = asyncio.ensure_future(busy_database_thread(started))
        await asyncio.to_thread(started.wait, 5)
        assert await timed_sync(socket) > BUSY_S / 2
        await holder


async def test_many_syncs_at_once_share_the_read_threads(connect, alice, monkeypatch):
    threads: set[str] = set()

    def recorded(**kwargs):
        threads.add(threading.current_thread().name)
        time.sleep(0.2)  # Long enough that the syncs overlap.
        return [], False

    monkeypatch.setattr(selectors, "messages_after", recorded)
    sockets = [await connect(alice) for _ in range(6)]
    began = time.monotonic()
    await asyncio.gather(*(timed_sync(socket) for socket in sockets))
    # Four threads (the default): two rounds of 0.2 s, not six.
    assert time.monotonic() - began < 6 * 0.2
    assert threads and all(name.startswith("chat-socket-reads") for name in threads)
    assert len(threads) <= frame_handlers.socket_read_threads()._max_workers


async def test_pings_at_the_same_time_are_answered_from_one_read_each_with_its_own_stamp(
    connect, make_user, monkeypatch
):
    # Every idle tab pings every 15 s: a process with thousands answers hundreds a second.
    people = [await database_sync_to_async(make_user)(username=f"p{n}") for n in range(12)]
    pairs = list(zip(people[::2], people[1::2], strict=True))
    for count, (first, second) in enumerate(pairs):
        for n in range(count):
            await database_sync_to_async(services.message_send)(
                sender=first, body="hi", client_id=f"c{n}", to=second.username
            )
    sockets = [await connect(person) for person in people]
    reads = calls_of(monkeypatch, selectors, "last_seqs_of")
    pongs = await asyncio.gather(*(socket.request({"type": "ping"}, "pong") for socket in sockets))

    expected = [stamp for stamp, _ in enumerate(pairs) for _ in range(2)]
    assert [pong["last_seq"] for pong in pongs] == expected
    assert len(reads) < len(sockets) / 2, reads
