"""Faults injected for real: Redis stopped and restarted under two daphne processes."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from messaging.domain.tokens import token_issue
from messaging.models import Message
from tests.helpers import http_get_json, send_frame
from tests.live import (
    Daphne,
    LiveClient,
    RedisServer,
    reconnect,
    sync_all,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def own_redis():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def servers_on_own_redis(transactional_db, own_redis, tmp_path):
    servers = [
        Daphne(env={"REDIS_URL": own_redis.url}, log_path=tmp_path / f"d{n}.log").start()
        for n in range(2)
    ]
    yield servers
    for server in servers:
        server.stop()
    for n in range(2):
        log = (tmp_path / f"d{n}.log").read_text()
        assert "Traceback" not in log, log


async def test_redis_restart_mid_conversation_loses_nothing(
    servers_on_own_redis, own_redis, alice, bob
):
    first, second = servers_on_own_redis
    alice_token = await database_sync_to_async(token_issue)(user=alice)
    bob_token = await database_sync_to_async(token_issue)(user=bob)
    alice_socket = await LiveClient(first.ws_url, alice_token).open()
    bob_socket = await LiveClient(second.ws_url, bob_token).open()
    before = await alice_socket.request(send_frame("before", "r-0", to="bob"), "message.ack")
    await bob_socket.recv_type("message.new")
    seen_by_bob = before["message"]["seq"]

    own_redis.stop()
    # Sends during the outage are stored and acked; only their fan-out fails.
    during = []
    for n in range(3):
        ack = await alice_socket.request(
            send_frame(f"during {n}", f"r-{n + 1}", to="bob"), "message.ack"
        )
        during.append(ack["message"]["id"])

    own_redis.start()
    # Once the layer answers again, the sockets join their groups again (they died with
    # Redis) and each client is told by a pong that it has changes to sync; none is closed.
    told = await bob_socket.recv_type("pong", timeout=15)
    assert told["last_seq"] > seen_by_bob
    await alice_socket.recv_type("pong", timeout=15)
    after = await alice_socket.request(send_frame("after", "r-9", to="bob"), "message.ack")
    pushed = await bob_socket.recv_type("message.new", timeout=10)
    assert pushed["message"]["id"] == after["message"]["id"]

    caught_up = await sync_all(bob_socket, after=seen_by_bob)
    stored = await database_sync_to_async(
        lambda: list(Message.objects.order_by("id").values_list("id", flat=True))
    )()
    assert [m["id"] for m in caught_up] == stored[1:]
    assert set(during) <= set(stored)
    await alice_socket.close()
    await bob_socket.close()


async def test_redis_down_at_start_up_then_up_without_restarting_daphne(
    transactional_db, own_redis, alice, bob, tmp_path
):
    own_redis.stop()
    first = Daphne(env={"REDIS_URL": own_redis.url}, log_path=tmp_path / "d.log").start()
    try:
        await check_redis_down_then_up(first, own_redis, alice)
    finally:
        first.stop()
    assert "Traceback" not in (tmp_path / "d.log").read_text()


async def check_redis_down_then_up(first, own_redis, alice):
    # Pages and the API still answer; health names the layer.
    status, health = await asyncio.to_thread(http_get_json, first.http_url + "/healthz")
    assert status == 503 and health["status"] == "unavailable"
    assert health["checks"]["database"] == "ok" and health["checks"]["channel_layer"] != "ok"
    status, _ = await asyncio.to_thread(http_get_json, first.http_url + "/api/conversations/")
    assert status == 401
    token = await database_sync_to_async(token_issue)(user=alice)
    with pytest.raises(Exception) as refused:
        await LiveClient(first.ws_url, token).open()
    assert "403" in str(refused.value)

    own_redis.start()
    client = await reconnect(first.ws_url, token)
    ack = await client.request(send_frame("works", "u-1", to="bob"), "message.ack")
    assert ack["message"]["body"] == "works"
    status, health = await asyncio.to_thread(http_get_json, first.http_url + "/healthz")
    assert status == 200 and health["status"] == "ok"
    await client.close()


async def test_a_redis_that_stops_answering_times_out_instead_of_hanging(
    servers_on_own_redis, own_redis, alice, bob
):
    import signal
    import time

    first, _ = servers_on_own_redis
    alice_token = await database_sync_to_async(token_issue)(user=alice)
    alice_socket = await LiveClient(first.ws_url, alice_token).open()
    await alice_socket.request(send_frame("before", "h-0", to="bob"), "message.ack")

    own_redis.process.send_signal(signal.SIGSTOP)  # Redis hangs: no answers, no errors.
    try:
        started = time.monotonic()
        status, health = await asyncio.to_thread(http_get_json, first.http_url + "/healthz")
        assert status == 503 and health["checks"]["channel_layer"] != "ok"
        assert time.monotonic() - started < 8
        ack = await alice_socket.request(
            send_frame("during the hang", "h-1", to="bob"), "message.ack", timeout=30
        )
        assert ack["message"]["body"] == "during the hang"
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    # The socket's read timed out meanwhile: once Redis answers, it joins its groups again
    # and is told to sync, without being closed.
    told = await alice_socket.recv_type("pong", timeout=30)
    assert told["last_seq"] == ack["message"]["seq"]
    await alice_socket.request(send_frame("after", "h-2", to="bob"), "message.ack")
    await alice_socket.close()
