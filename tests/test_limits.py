"""Limits: new conversations, sockets per user, sign-ups per address, password guessing,
and the security headers of production settings."""

import json

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from messaging.domain.tokens import token_issue
from messaging.models import Conversation
from tests.conftest import open_socket
from tests.factories import PASSWORD
from tests.helpers import post_json, send_frame

pytestmark = pytest.mark.django_db(transaction=True)


async def test_new_conversations_per_hour_are_limited(connect, alice, make_user, settings):
    settings.CHAT_CONVERSATION_RATE = "2/86400s"
    people = [await database_sync_to_async(make_user)(username=f"p{n}") for n in range(3)]
    socket = await connect(alice)
    for n, person in enumerate(people[:2]):
        await socket.request(send_frame("hi", f"c-{n}", to=person.username), "message.ack")
    error = await socket.request(send_frame("hi", "c-9", to=people[2].username), "error")
    assert error["code"] == "rate_limited" and error["client_id"] == "c-9"
    assert error["retry_after"] > 0
    # Writing in conversations that exist is not limited by this.
    await socket.request(send_frame("again", "c-10", to=people[0].username), "message.ack")
    assert await database_sync_to_async(Conversation.objects.count)() == 2


def test_new_conversations_over_http_share_the_limit(alice, make_user, settings):
    settings.CHAT_CONVERSATION_RATE = "1/86400s"
    make_user(username="p1")
    make_user(username="p2")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=alice)}")
    assert post_json(client, "/api/conversations/", {"members": ["p1"]}).status_code == 201
    refused = post_json(client, "/api/conversations/", {"members": ["p2"]})
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0


async def test_sockets_per_user_are_limited(connect, alice, settings):
    settings.CHAT_MAX_SOCKETS_PER_USER = 2
    await connect(alice)
    await connect(alice)
    key = await database_sync_to_async(token_issue)(user=alice)
    connected, _, _ = await open_socket([(b"authorization", f"Bearer {key}".encode())])
    assert not connected


def test_sign_ups_per_address_are_limited(settings):
    settings.CHAT_REGISTER_RATE = "2/86400s"
    client = Client(REMOTE_ADDR="10.20.30.40")
    for n in range(2):
        made = post_json(
            client, "/api/auth/register/", {"username": f"new{n}", "password": PASSWORD}
        )
        assert made.status_code == 201
    refused = post_json(client, "/api/auth/register/", {"username": "new9", "password": PASSWORD})
    assert refused.status_code == 429
    page = client.post(
        "/accounts/signup/", {"username": "new8", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert page.status_code == 429


def test_password_guessing_locks_the_token_endpoint(alice, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    statuses = [
        post_json(
            client, "/api/auth/token/", {"username": "alice", "password": "nope"}
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [400, 400, 429], "the third failure locks the account out"
    locked = post_json(client, "/api/auth/token/", {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["detail"]


def test_password_guessing_locks_the_login_form(alice, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(3):
        client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    locked = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_is_per_address(alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    guesser = Client(REMOTE_ADDR="10.9.9.9")
    for _ in range(2):
        post_json(guesser, "/api/auth/token/", {"username": "alice", "password": "nope"})
    owner = Client(REMOTE_ADDR="10.1.1.1")
    ok = post_json(owner, "/api/auth/token/", {"username": "alice", "password": PASSWORD})
    assert ok.status_code == 200


def test_pages_carry_the_security_headers(client, alice):
    client.force_login(alice)
    response = client.get("/")
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


async def test_a_frame_far_over_the_limit_is_refused_without_closing(connect, alice, bob):
    socket = await connect(alice)
    await socket.send_text(json.dumps(send_frame("z" * 300_000, "big", to="bob")))
    error = await socket.recv()
    assert error["code"] == "too_long"
    await socket.request({"type": "ping"}, "pong")
