"""Bearer tokens: named, expiring, capped per person, listed and revoked by their owner."""

import asyncio
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from messaging.domain.tokens import token_create, token_for_key, token_issue
from messaging.models import AuthToken
from tests.conftest import open_socket
from tests.factories import PASSWORD
from tests.helpers import post_json

pytestmark = pytest.mark.django_db


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def works(key: str) -> bool:
    """Tell whether the API lets a client in with this token."""
    response = Client().get("/api/conversations/", **bearer(key))
    assert response.status_code in (200, 401), response.status_code
    return response.status_code == 200


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def expire(key: str) -> None:
    AuthToken.objects.filter(key_hash=AuthToken.hash_key(key)).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


# -- who a token is -------------------------------------------------------------------------


def test_a_token_gives_its_owner_as_stored_and_nobody_once_the_account_is_deactivated(alice):
    User = get_user_model()
    key = token_issue(user=alice)
    User.objects.filter(pk=alice.pk).update(last_login=timezone.now(), first_name="Alice")
    token = token_for_key(key)
    stored = User.objects.get(pk=alice.pk)
    # Every column as the ORM reads it: a datetime with its zone, a boolean as a boolean.
    for field in User._meta.concrete_fields:
        seen, expected = getattr(token.user, field.attname), getattr(stored, field.attname)
        assert (seen, type(seen)) == (expected, type(expected)), field.name
    assert works(key)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert token_for_key(key) is None
    assert not works(key)


# -- expiry --------------------------------------------------------------------------------


def test_a_token_expires_after_the_configured_lifetime(alice, settings):
    settings.CHAT_TOKEN_LIFETIME_DAYS = 7
    before = timezone.now()
    token, _ = token_create(user=alice, name="laptop")
    assert before + timedelta(days=7) <= token.expires_at <= timezone.now() + timedelta(days=7)


def test_the_default_lifetime_is_ninety_days(alice):
    token, _ = token_create(user=alice)
    assert timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)


def test_an_expired_token_is_refused_by_the_api(alice):
    key = token_issue(user=alice)
    assert works(key)
    expire(key)
    response = Client().get("/api/conversations/", **bearer(key))
    assert response.status_code == 401
    assert response.json()["detail"]
    assert not AuthToken.objects.filter(user=alice).exists(), "an expired token is dropped"


@pytest.mark.django_db(transaction=True)
async def test_an_expired_token_is_refused_at_the_socket_handshake(alice):
    key = await database_sync_to_async(token_issue)(user=alice)
    headers = [(b"authorization", f"Bearer {key}".encode())]
    connected, _, client = await open_socket(headers)
    assert connected, "a live token opens a socket"
    await client.close()
    await database_sync_to_async(expire)(key)
    connected, _, _ = await open_socket(headers)
    assert not connected  # daphne answers a refused handshake with HTTP 403


def test_expired_tokens_are_not_listed(alice):
    kept = token_issue(user=alice, name="kept")
    gone = token_issue(user=alice, name="gone")
    expire(gone)
    response = signed_in(alice).get("/api/tokens/")
    assert [token["name"] for token in response.json()["tokens"]] == ["kept"]
    assert works(kept)


# -- the cap per person --------------------------------------------------------------------


def test_one_token_past_the_cap_revokes_the_least_recently_used(alice, bob, settings):
    settings.CHAT_MAX_TOKENS_PER_USER = 3
    now = timezone.now()
    keys = {name: token_issue(user=alice, name=name) for name in ("script", "phone", "laptop")}
    bobs = token_issue(user=bob, name="bob's")
    for name, hours_ago in (("script", 1), ("phone", 3), ("laptop", 2)):
        AuthToken.objects.filter(user=alice, name=name).update(
            last_used_at=now - timedelta(hours=hours_ago)
        )

    newest = token_issue(user=alice, name="server")

    assert not works(keys["phone"]), "the least recently used token is revoked"
    for key in (keys["script"], keys["laptop"], newest, bobs):
        assert works(key)
    assert sorted(AuthToken.objects.filter(user=alice).values_list("name", flat=True)) == [
        "laptop",
        "script",
        "server",
    ]


def test_a_token_never_used_counts_from_its_creation(alice, settings):
    settings.CHAT_MAX_TOKENS_PER_USER = 2
    first = token_issue(user=alice, name="first")
    second = token_issue(user=alice, name="second")
    AuthToken.objects.filter(name="first").update(last_used_at=timezone.now())
    token_issue(user=alice, name="third")
    assert works(first)
    assert not works(second)


# -- the owner's list ----------------------------------------------------------------------


def test_the_list_shows_each_token_without_its_secret(alice, bob):
    key = token_issue(user=alice, name="laptop")
    token_issue(user=bob, name="bob's")
    assert works(key)  # now it has been used
    response = signed_in(alice).get("/api/tokens/")
    assert response.status_code == 200
    (shown,) = response.json()["tokens"]
    stored = AuthToken.objects.get(user=alice)
    assert set(shown) == {"id", "name", "prefix", "created_at", "last_used_at", "expires_at"}
    assert shown["id"] == stored.pk and shown["name"] == "laptop"
    assert shown["prefix"] == key[:8]
    assert shown["last_used_at"] and shown["expires_at"].endswith("Z")
    assert key not in response.content.decode()
    assert stored.key_hash not in response.content.decode()


def test_the_list_needs_credentials(client):
    assert client.get("/api/tokens/").status_code == 401


def test_creating_a_named_token_shows_its_secret_once(alice):
    client = signed_in(alice)
    response = post_json(client, "/api/tokens/", {"name": "  deploy script  "})
    assert response.status_code == 201
    made = response.json()
    assert made["name"] == "deploy script"
    assert made["expires_at"] and made["created_at"] and made["last_used_at"] is None
    assert works(made["token"])
    listed = client.get("/api/tokens/").json()["tokens"]
    assert [token["id"] for token in listed] == [made["id"]]
    assert made["token"] not in json.dumps(listed)


def test_creating_a_token_with_the_session_needs_csrf(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    refused = post_json(client, "/api/tokens/", {"name": "x"})
    assert refused.status_code == 403
    assert not AuthToken.objects.exists()
    client.get("/settings/")  # sets the CSRF cookie
    made = post_json(
        client, "/api/tokens/", {"name": "x"}, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )
    assert made.status_code == 201


def test_a_token_can_make_another(alice):
    key = token_issue(user=alice)
    response = post_json(Client(enforce_csrf_checks=True), "/api/tokens/", {}, **bearer(key))
    assert response.status_code == 201
    assert response.json()["name"].startswith("API token ")


@pytest.mark.parametrize(
    "name, error",
    [
        ("x" * 101, "At most 100 characters."),
        (7, "Must be a string."),
        (["a"], "Must be a string."),
    ],
)
def test_a_bad_name_is_a_400_naming_the_field(alice, name, error):
    for path, body in (
        ("/api/tokens/", {"name": name}),
        ("/api/auth/token/", {"username": "alice", "password": PASSWORD, "name": name}),
    ):
        response = post_json(signed_in(alice), path, body)
        assert response.status_code == 400, path
        assert response.json()["errors"] == {"name": [error]}, path
    assert not AuthToken.objects.exists()


def test_a_name_of_exactly_100_characters_is_kept(alice):
    response = post_json(signed_in(alice), "/api/tokens/", {"name": "é" * 100})
    assert response.status_code == 201
    assert response.json()["name"] == "é" * 100


def test_the_token_endpoint_takes_a_name_and_names_an_unnamed_token_by_its_day(alice):
    named = post_json(
        Client(),
        "/api/auth/token/",
        {"username": "alice", "password": PASSWORD, "name": "wscat on my laptop"},
    )
    assert named.status_code == 200
    assert set(named.json()) >= {"token", "user", "expires_at"}
    unnamed = post_json(Client(), "/api/auth/token/", {"username": "alice", "password": PASSWORD})
    today = timezone.now().strftime("%Y-%m-%d")
    names = sorted(AuthToken.objects.filter(user=alice).values_list("name", flat=True))
    assert names == [f"API token {today}", "wscat on my laptop"]
    assert works(named.json()["token"]) and works(unnamed.json()["token"])


# -- revoking ------------------------------------------------------------------------------


def test_revoking_a_token_stops_it_at_once(alice):
    key = token_issue(user=alice, name="old")
    other = token_issue(user=alice, name="other")
    assert works(key)
    token_id = AuthToken.objects.get(name="old").pk
    response = signed_in(alice).delete(f"/api/tokens/{token_id}/")
    assert response.status_code == 204
    assert not works(key)
    assert works(other)
    assert signed_in(alice).delete(f"/api/tokens/{token_id}/").status_code == 404


def test_someone_elses_token_is_a_404_and_keeps_working(alice, bob):
    bobs = token_issue(user=bob, name="bob's")
    token_id = AuthToken.objects.get(user=bob).pk
    response = signed_in(alice).delete(f"/api/tokens/{token_id}/")
    assert response.status_code == 404
    assert response.json()["detail"]
    assert works(bobs)


def test_a_token_can_revoke_itself(alice):
    key = token_issue(user=alice)
    token_id = AuthToken.objects.get(user=alice).pk
    response = Client(enforce_csrf_checks=True).delete(f"/api/tokens/{token_id}/", **bearer(key))
    assert response.status_code == 204
    assert not works(key)


@pytest.mark.django_db(transaction=True)
async def test_revoking_a_token_closes_its_sockets_with_4401(alice):
    revoked_key = await database_sync_to_async(token_issue)(user=alice, name="revoked")
    kept_key = await database_sync_to_async(token_issue)(user=alice, name="kept")
    sockets = {}
    for name, key in (("revoked", revoked_key), ("kept", kept_key)):
        connected, _, client = await open_socket([(b"authorization", f"Bearer {key}".encode())])
        assert connected
        assert (await client.recv())["type"] == "ready"
        sockets[name] = client

    def revoke() -> int:
        token_id = AuthToken.objects.get(name="revoked").pk
        return signed_in(alice).delete(f"/api/tokens/{token_id}/").status_code

    assert await sync_to_async(revoke)() == 204
    closed = await sockets["revoked"].communicator.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4401}
    assert await sockets["kept"].nothing(), "the person's other tokens' sockets stay open"
    await sockets["kept"].close()


@pytest.mark.django_db(transaction=True)
async def test_tokens_of_handshakes_waiting_together_are_read_in_one_call(alice, bob, monkeypatch):
    from messaging.realtime import auth

    keys = [await database_sync_to_async(token_issue)(user=user) for user in (alice, bob, alice)]
    await database_sync_to_async(expire)(keys[2])
    rounds = []
    real = auth._token_logins

    def counted(keys):
        rounds.append(len(keys))
        return real(keys)

    monkeypatch.setattr(auth, "_token_logins", counted)
    logins = auth.token_logins()
    answers = await asyncio.gather(*(logins.call(key) for key in [*keys, "not-a-token", keys[0]]))
    assert rounds == [5], "one read for the five handshakes"
    users = [None if login is None else login[0].username for login in answers]
    assert users == ["alice", "bob", None, None, "alice"]
    assert answers[0][1] == answers[4][1], "the same token twice is the same login"
    # The expired one was revoked (deleted) when presented, as when presented alone.
    expired = AuthToken.objects.filter(key_hash=AuthToken.hash_key(keys[2]))
    assert not await database_sync_to_async(expired.exists)()
