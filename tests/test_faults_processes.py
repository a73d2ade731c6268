"""Faults of server processes and clients, for real: daphne killed, sockets cut mid-send,
sessions ended from another process, and the channel layer sharded over two Redis servers."""

import asyncio
import signal

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client as HttpClient
from websockets.asyncio.client import connect as ws_connect

from messaging.domain import services
from messaging.models import Message
from tests.helpers import send_frame, token_for
from tests.live import Daphne, LiveClient, RedisServer, reconnect, sync_all, wait_closed

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

FAST_PRESENCE = {"CHAT_HEARTBEAT_SECONDS": "0.5", "CHAT_PRESENCE_TTL": "2"}


@pytest.fixture
def two_servers(transactional_db, tmp_path):
    servers = [
        Daphne(env=FAST_PRESENCE, log_path=tmp_path / f"d{n}.log").start() for n in range(2)
    ]
    yield servers
    for server in servers:
        server.stop()
    for n in range(2):
        assert "Traceback" not in (tmp_path / f"d{n}.log").read_text()


async def stored_ids() -> list[int]:
    return await database_sync_to_async(
        lambda: list(Message.objects.order_by("id").values_list("id", flat=True))
    )()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_a_killed_daphne_loses_nothing_and_doubles_nothing(two_servers, alice, bob, sig):
    first, second = two_servers
    alice_token, bob_token = await token_for(alice), await token_for(bob)
    alice_socket = await LiveClient(first.ws_url, alice_token).open()
    bob_socket = await LiveClient(second.ws_url, bob_token).open()
    hello = await alice_socket.request(send_frame("hello", "k-0", to="bob"), "message.ack")
    seen = (await bob_socket.recv_type("message.new"))["message"]["seq"]
    # Bob sends just as his server dies: he cannot know whether it was stored.
    await bob_socket.send(send_frame("did this arrive?", "b-1", to="alice"))

    second.stop(sig)
    for n in range(3):
        await alice_socket.request(
            send_frame(f"while down {n}", f"k-{n + 1}", to="bob"), "message.ack"
        )

    # Bob's client reconnects to the surviving process, retries, and catches up.
    bob_socket = await reconnect(first.ws_url, bob_token)
    retry = await bob_socket.request(
        send_frame("did this arrive?", "b-1", to="alice"), "message.ack"
    )
    changes = await sync_all(bob_socket, after=seen)
    ids = await stored_ids()
    assert [m["id"] for m in changes] == [i for i in ids if i != hello["message"]["id"]]
    assert retry["message"]["id"] in ids
    assert len(ids) == 5, "the retried message is stored once"

    await alice_socket.close()
    await bob_socket.close()


async def test_presence_goes_offline_when_the_process_holding_the_socket_dies(
    two_servers, alice, bob
):
    first, second = two_servers
    alice_socket = await LiveClient(first.ws_url, await token_for(alice)).open()
    ack = await alice_socket.request(send_frame("hi", "p-0", to="bob"), "message.ack")
    # Bob has answered: Alice may see him online.
    await database_sync_to_async(services.message_send)(
        sender=bob, body="hello", client_id="b-0", conversation_id=ack["message"]["conversation"]
    )
    await LiveClient(second.ws_url, await token_for(bob)).open()
    online = await alice_socket.recv_type("presence")
    assert online["online"] is True
    second.stop(signal.SIGKILL)
    offline = await alice_socket.recv_type("presence", timeout=15)
    assert offline == {
        "type": "presence",
        "user": {"id": bob.pk, "username": "bob"},
        "online": False,
    }
    await alice_socket.close()


async def test_a_client_cut_off_mid_send_gets_the_original_ack_on_retry(two_servers, alice, bob):
    first, _ = two_servers
    token = await token_for(alice)
    raw = await ws_connect(first.ws_url, additional_headers={"Authorization": f"Bearer {token}"})
    await raw.recv()
    await raw.send('{"type": "message.send", "to": "bob", "body": "cut", "client_id": "cut-1"}')
    await raw.close()
    client = await LiveClient(first.ws_url, token).open()
    ack = await client.request(send_frame("cut", "cut-1", to="bob"), "message.ack")
    assert ack["message"]["body"] == "cut"
    assert await stored_ids() == [ack["message"]["id"]]
    await client.close()


def _login(user) -> HttpClient:
    client = HttpClient()
    client.force_login(user)
    return client


async def test_logout_and_password_change_close_sockets_in_every_process(two_servers, alice):
    first, second = two_servers
    http = await sync_to_async(_login)(alice)
    cookie = f"sessionid={http.cookies['sessionid'].value}"
    browser = LiveClient(second.ws_url, "")
    browser.ws = await ws_connect(
        second.ws_url,
        additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{second.port}"},
    )
    assert (await browser.recv())["type"] == "ready"
    script = await LiveClient(first.ws_url, await token_for(alice)).open()

    started = asyncio.get_running_loop().time()
    await sync_to_async(http.post)("/accounts/logout/")
    assert await wait_closed(browser) == 4401
    assert asyncio.get_running_loop().time() - started < 1.5

    def change_password():
        alice.set_password("another long passphrase")
        alice.save()

    await database_sync_to_async(change_password)()
    assert await wait_closed(script) == 4401
    with pytest.raises(Exception, match="403"):
        await LiveClient(first.ws_url, script.token).open()


def users_on_both_shards(make_user) -> tuple:
    """Make two users whose groups live on different shards of a two-server layer."""
    from channels_redis.utils import _consistent_hash

    by_shard = {}
    for n in range(50):
        user = make_user(username=f"shard{n}")
        by_shard.setdefault(_consistent_hash(f"user.{user.pk}", 2), user)
        if len(by_shard) == 2:
            return by_shard[0], by_shard[1]
    raise AssertionError("no users on both shards")


async def test_the_layer_sharded_over_two_redis_servers_delivers(
    transactional_db, make_user, tmp_path
):
    sender, recipient = await database_sync_to_async(users_on_both_shards)(make_user)
    shards = [RedisServer().start(), RedisServer().start()]
    redis_url = ",".join(shard.url for shard in shards)
    servers = [
        Daphne(env={"REDIS_URL": redis_url}, log_path=tmp_path / f"s{n}.log").start()
        for n in range(2)
    ]
    try:
        sender_socket = await LiveClient(servers[0].ws_url, await token_for(sender)).open()
        recipient_socket = await LiveClient(servers[1].ws_url, await token_for(recipient)).open()
        from redis import Redis

        for index, user in enumerate((sender, recipient)):
            prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
            group_key = f"{prefix}:group:user.{user.pk}"
            assert Redis.from_url(shards[index].url).exists(group_key)
        for n in range(5):
            frame = send_frame(f"m{n}", f"s-{n}", to=recipient.username)
            ack = await sender_socket.request(frame, "message.ack")
            for client in (sender_socket, recipient_socket):
                pushed = await client.recv_type("message.new")
                assert pushed["message"]["id"] == ack["message"]["id"]
        await sender_socket.close()
        await recipient_socket.close()
    finally:
        for server in servers:
            server.stop()
        for shard in shards:
            shard.stop()


async def test_a_stuck_socket_whose_channel_fills_up_catches_up_by_sync(
    transactional_db, alice, bob, carol, tmp_path
):
    env = {"CHANNEL_CAPACITY": "10"}
    first, second = (Daphne(env=env, log_path=tmp_path / f"c{n}.log").start() for n in range(2))
    try:
        alice_socket = await LiveClient(first.ws_url, await token_for(alice)).open()
        carol_socket = await LiveClient(first.ws_url, await token_for(carol)).open()
        bob_socket = await LiveClient(second.ws_url, await token_for(bob)).open()
        await alice_socket.request(send_frame("hi carol", "f-c", to="carol"), "message.ack")
        await carol_socket.recv_type("message.new")
        first_push = await bob_socket.request(send_frame("hi", "f-0", to="alice"), "message.new")
        seen = first_push["message"]["seq"]

        # Bob's process stalls: his channel fills up and the layer drops what does not fit.
        second.process.send_signal(signal.SIGSTOP)
        try:
            for n in range(30):
                await alice_socket.request(
                    send_frame(f"burst {n}", f"f-{n + 1}", to="bob"), "message.ack"
                )
            # Everyone else is unaffected.
            ack = await alice_socket.request(
                send_frame("still here", "f-99", to="carol"), "message.ack"
            )
            pushed = await carol_socket.recv_type("message.new")
            assert pushed["message"]["id"] == ack["message"]["id"]
        finally:
            second.process.send_signal(signal.SIGCONT)

        received = []
        while True:
            try:
                frame = await bob_socket.recv_type("message.new", timeout=2)
            except TimeoutError:
                break
            received.append(frame)
        assert 0 < len(received) < 30, "some pushes were dropped, some delivered"
        pong = await bob_socket.request({"type": "ping"}, "pong")
        assert pong["last_seq"] > max(frame["message"]["seq"] for frame in received), (
            "the pong tells Bob he is behind"
        )
        changes = await sync_all(bob_socket, after=seen)
        assert [m["body"] for m in changes] == [f"burst {n}" for n in range(30)]
        for client in (alice_socket, carol_socket, bob_socket):
            await client.close()
    finally:
        first.stop()
        second.stop()
    for n in range(2):
        assert "Traceback" not in (tmp_path / f"c{n}.log").read_text()
