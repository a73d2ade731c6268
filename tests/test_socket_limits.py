"""One socket cannot hurt the service: limits on every frame, waiting frames, sync pages,
a failing handshake, and logins that ended while their close was lost."""

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session

from messaging.delivery import heartbeat
from messaging.delivery.registry import socket_registry
from messaging.domain import selectors
from messaging.domain.logins import SocketLogin, logins_ended
from messaging.domain.tokens import token_issue
from messaging.models import AuthToken
from tests.conftest import open_socket
from tests.helpers import send_frame
from tests.test_socket_sessions import cookie_headers

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


@pytest.fixture(autouse=True)
def _own_rate_counters(settings):
    # Counters are per user id; ids repeat between tests, so each test counts on its own.
    settings.CHAT_RATE_LIMIT_PREFIX = f"test-limits-{uuid.uuid4().hex[:8]}"


async def output(client, timeout: float = 3) -> dict:
    """Return the next ASGI message the application sent to this socket."""
    return await asyncio.wait_for(client.communicator.output_queue.get(), timeout)


async def frames_until_close(client, timeout: float = 5) -> tuple[list[dict], int]:
    """Read what the socket sends until it closes; return the frames and the close code."""
    frames = []
    while True:
        message = await output(client, timeout)
        if message["type"] == "websocket.close":
            return frames, message.get("code")
        frames.append(json.loads(message["text"]))


async def start_chat(connect, alice, bob):
    a, b = await connect(alice), await connect(bob)
    sent = await a.request(send_frame("hello", "c-1", to="bob"), "message.ack")
    await b.recv_type("message.new")
    await a.recv_type("message.new")
    return a, b, sent["message"]


@pytest.mark.parametrize(
    ("setting", "frame"),
    [
        ("CHAT_SYNC_RATE", {"type": "sync", "after": 0}),
        ("CHAT_PING_RATE", {"type": "ping"}),
        ("CHAT_READ_RATE", {"type": "read", "conversation": 0, "up_to": 1}),
        ("CHAT_EDIT_RATE", {"type": "message.edit", "id": 0, "body": "changed"}),
        ("CHAT_EDIT_RATE", {"type": "message.delete", "id": 0}),
    ],
)
async def test_every_frame_type_is_limited_per_user(connect, alice, bob, settings, setting, frame):
    a, _, message = await start_chat(connect, alice, bob)
    setattr(settings, setting, "2/60s")
    frame = {
        key: (message["conversation"] if key == "conversation" else value)
        for key, value in frame.items()
    }
    if "id" in frame:
        frame["id"] = message["id"]
    if "up_to" in frame:
        frame["up_to"] = message["id"]
    second_socket = await connect(alice)
    await a.send(frame)
    await a.send(frame)
    await asyncio.sleep(0.3)  # both counted before the other socket's
    await second_socket.send(frame)  # the third of the user's, across both sockets
    error = await second_socket.recv_type("error")
    assert error["code"] == "rate_limited"
    assert error["retry_after"] > 0


async def test_handshakes_past_their_rule_are_refused(alice, settings):
    settings.CHAT_CONNECT_RATE = "2/60s"
    key = await database_sync_to_async(token_issue)(user=alice)
    headers = [(b"authorization", f"Bearer {key}".encode())]
    opened = []
    for _ in range(3):
        connected, _, client = await open_socket(headers)
        opened.append(connected)
        if connected:
            await client.close()
    assert opened == [True, True, False]


async def test_refusals_of_any_kind_count_toward_the_1008_close(connect, alice, settings):
    settings.CHAT_ABUSE_CLOSE_AFTER = 5
    client = await connect(alice)
    for _ in range(10):
        await client.send_text("{not json")
    frames, code = await frames_until_close(client)
    assert code == 1008
    assert [frame["code"] for frame in frames] == ["bad_json"] * 6


async def test_after_an_abuse_close_the_user_waits_before_opening_sockets_again(
    connect, alice, bob, settings
):
    settings.CHAT_ABUSE_CLOSE_AFTER = 2
    settings.CHAT_ABUSE_COOLDOWN_SECONDS = 1
    client = await connect(alice)
    for _ in range(3):
        await client.send_text("{not json")
    _, code = await frames_until_close(client)
    assert code == 1008
    key = await database_sync_to_async(token_issue)(user=alice)
    connected, _, _ = await open_socket([(b"authorization", f"Bearer {key}".encode())])
    assert not connected
    await connect(bob)  # others are not held back
    await asyncio.sleep(1.1)
    await connect(alice)


async def test_a_few_mistakes_never_close_the_socket(connect, alice, settings):
    settings.CHAT_ABUSE_CLOSE_AFTER = 5
    client = await connect(alice)
    for _ in range(5):
        assert (await client.request({"type": "nope"}, "error"))["code"] == "unknown_type"
    assert (await client.request({"type": "ping"}, "pong"))["last_seq"] == 0


async def test_a_client_that_writes_faster_than_it_is_answered_is_closed(
    connect, alice, settings, monkeypatch
):
    settings.CHAT_SOCKET_WAITING_FRAMES = 5
    client = await connect(alice)
    real_last_seqs = selectors.last_seqs_of

    def slow_last_seqs(*, user_ids):
        import time

        time.sleep(0.2)
        return real_last_seqs(user_ids=user_ids)

    monkeypatch.setattr(selectors, "last_seqs_of", slow_last_seqs)
    for _ in range(50):
        await client.send({"type": "ping"})
    frames, code = await frames_until_close(client)
    assert code == 1008
    # The frames waiting when the bound was passed are dropped, not answered.
    assert len([frame for frame in frames if frame["type"] == "pong"]) <= 6


async def test_a_burst_within_the_bound_is_answered_in_full(connect, alice, settings):
    settings.CHAT_SOCKET_WAITING_FRAMES = 50
    client = await connect(alice)
    for _ in range(40):
        await client.send({"type": "ping"})
    for _ in range(40):
        assert (await client.recv())["type"] == "pong"


async def test_a_sync_page_stops_at_about_its_size_in_characters(connect, alice, bob, settings):
    a = await connect(alice)
    for n in range(8):
        await a.request(send_frame("x" * 3000, f"big-{n}", to="bob"), "message.ack")
    settings.CHAT_SYNC_MAX_CHARS = 10_000
    first = await a.request({"type": "sync", "after": 0}, "sync.result")
    assert 1 <= len(first["messages"]) <= 3
    assert first["more"] is True
    assert len(json.dumps(first)) < 10_000 + 4_000
    seen = list(first["messages"])
    while True:
        page = await a.request({"type": "sync", "after": seen[-1]["seq"]}, "sync.result")
        seen.extend(page["messages"])
        if not page["more"]:
            break
    assert [m["client_id"] for m in seen] == [f"big-{n}" for n in range(8)]


async def test_one_message_larger_than_a_page_still_goes(connect, alice, bob, settings):
    a = await connect(alice)
    await a.request(send_frame("y" * 3000, "huge", to="bob"), "message.ack")
    settings.CHAT_SYNC_MAX_CHARS = 100
    page = await a.request({"type": "sync", "after": 0}, "sync.result")
    assert [m["client_id"] for m in page["messages"]] == ["huge"]
    assert page["more"] is False


async def test_a_bug_in_one_handshake_refuses_that_socket_alone(connect, alice, bob, monkeypatch):
    a, b, _ = await start_chat(connect, alice, bob)

    def broken(*, user_ids):
        raise ValueError("a bug")

    monkeypatch.setattr(selectors, "last_seqs_of", broken)
    key = await database_sync_to_async(token_issue)(user=alice)
    connected, _, _ = await open_socket([(b"authorization", f"Bearer {key}".encode())])
    assert not connected
    monkeypatch.undo()
    assert not socket_registry().layer_lost.is_set()
    # The sockets already open are not closed and still chat.
    await b.send(send_frame("still here", "c-2", to="alice"))
    assert (await a.recv_type("message.new"))["message"]["body"] == "still here"


async def beat_and_expect_close(client) -> None:
    await heartbeat.beat(socket_registry())
    _, code = await frames_until_close(client)
    assert code == 4401


async def test_a_deactivation_whose_close_was_lost_closes_the_socket_at_the_next_beat(
    connect, alice
):
    client = await connect(alice)
    # A queryset update sends no signal: as if the close through the layer were dropped.
    await database_sync_to_async(User.objects.filter(pk=alice.pk).update)(is_active=False)
    await beat_and_expect_close(client)


async def test_deleting_a_user_closes_their_sockets(connect, alice):
    client = await connect(alice)
    await database_sync_to_async(User.objects.filter(pk=alice.pk).delete)()
    await beat_and_expect_close(client)


async def test_a_revoked_token_whose_close_was_lost_closes_its_sockets(connect, alice):
    client = await connect(alice)
    await database_sync_to_async(AuthToken.objects.filter(user=alice).delete)()
    await beat_and_expect_close(client)


async def test_an_expired_token_closes_its_sockets(connect, alice):
    from django.utils import timezone

    client = await connect(alice)
    await database_sync_to_async(AuthToken.objects.filter(user=alice).update)(
        expires_at=timezone.now()
    )
    await beat_and_expect_close(client)


async def test_an_ended_session_closes_its_sockets(alice):
    _, headers = await cookie_headers(alice)
    connected, _, client = await open_socket(headers)
    assert connected
    assert (await client.recv())["type"] == "ready"
    await database_sync_to_async(Session.objects.all().delete)()
    await beat_and_expect_close(client)


async def open_by_cookie(user) -> tuple[object, str]:
    """Open a socket with the user's session cookie; return it and the session's key."""
    _, headers = await cookie_headers(user)
    connected, _, client = await open_socket(headers)
    assert connected
    assert (await client.recv())["type"] == "ready"
    cookie = dict(headers)[b"cookie"].decode()
    return client, cookie.removeprefix("sessionid=")


async def test_a_password_changed_after_a_beat_closes_the_session_at_the_next(alice):
    client, _ = await open_by_cookie(alice)
    # The first beat finds the session holding; the next must look again, not remember it.
    await heartbeat.beat(socket_registry())
    assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"

    def change_password_without_a_signal() -> None:
        alice.set_password("an entirely new password")
        User.objects.filter(pk=alice.pk).update(password=alice.password)

    await database_sync_to_async(change_password_without_a_signal)()
    await beat_and_expect_close(client)


async def test_a_session_changed_to_another_user_after_a_beat_closes_at_the_next(alice, bob):
    client, key = await open_by_cookie(alice)
    await heartbeat.beat(socket_registry())
    assert (await client.request({"type": "ping"}, "pong"))["type"] == "pong"
    _, bobs_headers = await cookie_headers(bob)
    bobs_key = dict(bobs_headers)[b"cookie"].decode().removeprefix("sessionid=")

    def give_alices_session_bobs_data() -> None:
        bobs = Session.objects.get(session_key=bobs_key)
        Session.objects.filter(session_key=key).update(session_data=bobs.session_data)

    await database_sync_to_async(give_alices_session_bobs_data)()
    await beat_and_expect_close(client)


async def test_a_session_holds_only_for_the_user_it_names(alice, bob):
    _, key = await open_by_cookie(alice)
    # Another user's socket on the same key (its data rewritten under it): the session
    # holding for Alice says nothing of Bob.
    logins = [
        SocketLogin(channel_name="alices", user_id=alice.pk, session_key=key),
        SocketLogin(channel_name="bobs", user_id=bob.pk, session_key=key),
    ]
    for _ in range(2):  # the first check, and the next that remembers it
        assert await database_sync_to_async(logins_ended)(logins=logins) == ["bobs"]


async def test_a_beat_leaves_valid_logins_open(connect, alice):
    _, headers = await cookie_headers(alice)
    connected, _, by_cookie = await open_socket(headers)
    assert connected
    by_token = await connect(alice)
    await heartbeat.beat(socket_registry())
    assert (await by_token.request({"type": "ping"}, "pong"))["type"] == "pong"
    assert (await by_cookie.request({"type": "ping"}, "pong"))["type"] == "pong"
    await by_cookie.close()
