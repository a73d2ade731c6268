"""Handshakes, session ends, presence, rate limits and database outages on the socket."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import OperationalError
from django.test import Client as HttpClient

from messaging.delivery import heartbeat
from messaging.delivery.registry import socket_registry
from messaging.models import Message, PresenceProcess, SocketPresence
from messaging.sending import queue as sending
from tests.conftest import open_socket
from tests.factories import PASSWORD
from tests.helpers import send_frame

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in_http_client(user) -> HttpClient:
    client = HttpClient()
    client.force_login(user)
    return client


async def cookie_headers(user, origin: str | None = "http://testserver"):
    http = await sync_to_async(logged_in_http_client)(user)
    cookie = f"sessionid={http.cookies['sessionid'].value}"
    headers = [(b"cookie", cookie.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return http, headers


async def test_session_cookie_from_our_origin_connects(alice):
    _, headers = await cookie_headers(alice)
    connected, _, client = await open_socket(headers)
    assert connected
    ready = await client.recv()
    assert ready["type"] == "ready" and ready["user"]["username"] == "alice"
    await client.close()


@pytest.mark.parametrize(
    "origin", [None, "http://evil.example", "null", "https://testserver.evil.example"]
)
async def test_session_cookie_without_our_origin_is_refused(alice, origin):
    _, headers = await cookie_headers(alice, origin=origin)
    connected, _, _ = await open_socket(headers)
    assert not connected


async def test_no_credentials_is_refused(db):
    connected, _, _ = await open_socket([(b"origin", b"http://testserver")])
    assert not connected


@pytest.mark.parametrize("value", ["Bearer nope", "Bearer ", "Basic YWxpY2U6eA==", "Token x"])
async def test_bad_authorization_is_refused_even_with_a_good_cookie(alice, value):
    _, headers = await cookie_headers(alice)
    connected, _, _ = await open_socket([*headers, (b"authorization", value.encode())])
    assert not connected


async def test_token_of_a_deactivated_user_is_refused(connect, make_user):
    from messaging.domain.tokens import token_issue

    user = await database_sync_to_async(make_user)(username="dave")
    key = await database_sync_to_async(token_issue)(user=user)
    user.is_active = False
    await database_sync_to_async(user.save)()
    connected, _, _ = await open_socket([(b"authorization", f"Bearer {key}".encode())])
    assert not connected


async def test_other_socket_paths_are_refused(alice):
    _, headers = await cookie_headers(alice)
    connected, _, _ = await open_socket(headers, path="/ws/other/")
    assert not connected


async def test_logout_closes_that_sessions_sockets_with_4401(alice, connect):
    http, headers = await cookie_headers(alice)
    connected, _, browser = await open_socket(headers)
    assert connected
    await browser.recv()
    token_socket = await connect(alice)
    response = await sync_to_async(http.post)("/accounts/logout/")
    assert response.status_code == 302
    closed = await browser.communicator.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4401}
    assert await token_socket.nothing(), "other sessions stay open"
    await browser.close()


async def test_password_change_closes_every_socket_and_revokes_tokens(alice, connect):
    first = await connect(alice)
    second = await connect(alice)

    def change_password():
        alice.set_password("a brand new passphrase")
        alice.save()

    await database_sync_to_async(change_password)()
    for socket in (first, second):
        closed = await socket.communicator.receive_output(timeout=3)
        assert closed == {"type": "websocket.close", "code": 4401}
    from messaging.models import AuthToken

    assert await database_sync_to_async(AuthToken.objects.filter(user=alice).count)() == 0


async def test_deactivation_closes_every_socket(alice, connect):
    socket = await connect(alice)

    def deactivate():
        alice.is_active = False
        alice.save()

    await database_sync_to_async(deactivate)()
    closed = await socket.communicator.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4401}


async def start_chat(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    await alice_socket.request(send_frame("hi", "c-hi", to="bob"), "message.ack")
    await bob_socket.recv_type("message.new")
    await alice_socket.recv_type("message.new")
    # Alice showed herself by writing: Bob is told at once that she is online.
    shown = await bob_socket.recv_type("presence")
    assert shown["user"]["username"] == "alice" and shown["online"] is True
    return alice_socket, bob_socket


async def test_presence_on_first_socket_open_and_last_close(connect, alice, bob):
    alice_socket, bob_socket = await start_chat(connect, alice, bob)
    await alice_socket.close()
    offline = await bob_socket.recv_type("presence")
    assert offline == {
        "type": "presence",
        "user": {"id": alice.pk, "username": "alice"},
        "online": False,
    }
    first = await connect(alice)
    online = await bob_socket.recv_type("presence")
    assert online["online"] is True and online["user"]["username"] == "alice"
    await connect(alice)
    assert await bob_socket.nothing(), "a second socket is no news"
    await first.close()
    assert await bob_socket.nothing(), "alice is still online on her other socket"


async def test_sockets_of_a_dead_process_expire_and_are_announced_offline(
    connect, alice, bob, settings
):
    _, bob_socket = await start_chat(connect, alice, bob)
    # Alice's socket is now one of a process that died long ago.
    alice_sockets = SocketPresence.objects.filter(user=alice)
    for name in await database_sync_to_async(list)(
        alice_sockets.values_list("channel_name", flat=True)
    ):
        socket_registry().discard(name)
    await database_sync_to_async(PresenceProcess.objects.create)(
        id="dead", heartbeat_at="2000-01-01T00:00:00Z"
    )
    await database_sync_to_async(alice_sockets.update)(process="dead")
    await heartbeat.beat(socket_registry())
    assert not await database_sync_to_async(PresenceProcess.objects.filter(id="dead").exists)()
    offline = await bob_socket.recv_type("presence")
    assert offline["user"]["username"] == "alice" and offline["online"] is False


async def test_a_socket_whose_clean_up_never_ran_is_removed_by_the_next_heartbeat(
    connect, alice, bob
):
    _, bob_socket = await start_chat(connect, alice, bob)
    # The process forgot alice's socket (its clean-up was killed), but its row is there.
    for name in await database_sync_to_async(list)(
        SocketPresence.objects.filter(user=alice).values_list("channel_name", flat=True)
    ):
        socket_registry().discard(name)
    await heartbeat.beat(socket_registry())
    offline = await bob_socket.recv_type("presence")
    assert offline["user"]["username"] == "alice" and offline["online"] is False
    assert not await database_sync_to_async(SocketPresence.objects.filter(user=alice).exists)()


async def test_sends_over_the_rate_limit_are_refused_with_retry_after(
    connect, alice, bob, settings
):
    settings.CHAT_SEND_RATE = "3/86400s"
    socket = await connect(alice)
    for n in range(3):
        await socket.request(send_frame(f"m{n}", f"c{n}", to="bob"), "message.ack")
    error = await socket.request(send_frame("too many", "c-over", to="bob"), "error")
    assert error["code"] == "rate_limited"
    assert error["client_id"] == "c-over"
    assert 0 < error["retry_after"] <= 86400
    assert await database_sync_to_async(Message.objects.count)() == 3


async def test_the_limit_is_per_user_across_sockets(connect, alice, bob, settings):
    settings.CHAT_SEND_RATE = "2/86400s"
    first = await connect(alice)
    second = await connect(alice)
    await first.request(send_frame("a", "c-a", to="bob"), "message.ack")
    await second.request(send_frame("b", "c-b", to="bob"), "message.ack")
    error = await first.request(send_frame("c", "c-c", to="bob"), "error")
    assert error["code"] == "rate_limited"


async def test_flooding_far_past_the_limit_closes_with_1008(connect, alice, bob, settings):
    settings.CHAT_SEND_RATE = "1/86400s"
    settings.CHAT_ABUSE_CLOSE_AFTER = 5
    socket = await connect(alice)
    for n in range(7):
        await socket.send(send_frame(f"m{n}", f"c{n}", to="bob"))
    codes = []
    while True:
        output = await socket.communicator.receive_output(timeout=3)
        if output["type"] == "websocket.close":
            assert output["code"] == 1008
            break
        codes.append(output)
    assert len(codes) >= 6
    # Frames still in flight after the close are not answered, and the socket's presence
    # goes with it.
    await socket.send({"type": "ping"})
    assert await socket.nothing()
    await socket.close()
    assert await database_sync_to_async(SocketPresence.objects.filter(user=alice).count)() == 0


async def test_database_outage_answers_unavailable_and_the_retry_stores_once(
    connect, alice, bob, monkeypatch
):
    socket = await connect(alice)

    def failing_send(requests):
        raise OperationalError("connection refused")

    monkeypatch.setattr(sending, "messages_send_many", failing_send)
    error = await socket.request(send_frame("later", "c-1", to="bob"), "error")
    assert error["code"] == "unavailable" and error["client_id"] == "c-1"
    assert await database_sync_to_async(Message.objects.count)() == 0

    monkeypatch.undo()
    await socket.request(send_frame("later", "c-1", to="bob"), "message.ack")
    await socket.request(send_frame("later", "c-1", to="bob"), "message.ack")
    assert await database_sync_to_async(Message.objects.count)() == 1


async def test_a_failed_fan_out_still_acks_the_sender(connect, alice, bob, monkeypatch):
    from channels.layers import get_channel_layer

    socket = await connect(alice)
    layer = get_channel_layer()

    async def broken_group_send(group, message):
        raise ConnectionError("layer down")

    monkeypatch.setattr(layer, "group_send", broken_group_send)
    ack = await socket.request(send_frame("stored anyway", "c-1", to="bob"), "message.ack")
    assert ack["message"]["body"] == "stored anyway"
    await asyncio.sleep(0)
    assert await database_sync_to_async(Message.objects.count)() == 1


async def test_a_password_rehash_at_login_ends_no_session(alice, connect, settings):
    from django.contrib.auth.hashers import make_password

    socket = await connect(alice)
    # An older hash of the same password: the next login upgrades it in place.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]

    def login_with_an_old_hash():
        from messaging.models import AuthToken

        alice.password = make_password(PASSWORD, hasher="md5")
        alice.save()
        client = HttpClient()
        assert (
            client.post(
                "/accounts/login/", {"username": "alice", "password": PASSWORD}
            ).status_code
            == 302
        )
        alice.refresh_from_db()
        assert alice.password.startswith("pbkdf2_"), "the hash was upgraded"
        return AuthToken.objects.filter(user=alice).count()

    assert await database_sync_to_async(login_with_an_old_hash)() == 1
    assert await socket.nothing(), "the socket stays open"


@pytest.mark.django_db(transaction=True)
async def test_sockets_closing_together_all_leave_their_groups_in_few_calls(connect, make_user):
    """A mass disconnect leaves every group, sent together: the layer's pool is not emptied."""
    from channels.layers import get_channel_layer

    from messaging.domain.events import user_group

    users = [await database_sync_to_async(make_user)(username=f"u{i}") for i in range(12)]
    sockets = [await connect(user) for user in users]
    layer = get_channel_layer()
    batched = hasattr(layer, "group_discard_many")
    calls, left = [0], []
    one_name = "group_discard_many" if batched else "group_discard"
    original = getattr(layer, one_name)

    async def counted(*args):
        calls[0] += 1
        pairs = args[0] if batched else [args]
        await original(*args)
        # Counted once done: the members are checked gone as soon as all have left.
        left.extend(channel for _, channel in pairs)

    setattr(layer, one_name, counted)
    try:
        await asyncio.gather(*(socket.close() for socket in sockets))
        for _ in range(100):
            if len(set(left)) == len(sockets):
                break
            await asyncio.sleep(0.02)
    finally:
        delattr(layer, one_name)
    # Each socket left its user's group and its login's (a token's).
    assert len(set(left)) == len(sockets) and len(left) == 2 * len(sockets)
    if batched:
        # As many Redis round trips as rounds of sockets closing together, not one per group.
        assert calls[0] < len(sockets), calls
        for user in users:
            group = user_group(user.pk)
            redis = layer.connection(layer.consistent_hash(group))
            assert await redis.zrange(layer._group_key(group), 0, -1) == [], "a member stayed"


async def test_a_handshake_that_waited_past_its_deadline_is_refused_and_writes_nothing(
    alice, settings
):
    from messaging.domain.tokens import token_issue

    key = await database_sync_to_async(token_issue)(user=alice)
    headers = [(b"authorization", f"Bearer {key}".encode())]
    # As in a reconnect storm: its turn at the database comes after its client gave up.
    settings.CHAT_HANDSHAKE_DEADLINE = -1
    connected, _, _ = await open_socket(headers)
    assert not connected
    assert not await database_sync_to_async(SocketPresence.objects.exists)()
    settings.CHAT_HANDSHAKE_DEADLINE = 4.5
    connected, _, client = await open_socket(headers)
    assert connected and (await client.recv())["type"] == "ready"
    await client.close()
