"""Limits of the HTTP side: every endpoint per user, the unauthenticated ones per address
(an IPv6 /64) and in total, JSON bodies only as JSON, and a /healthz that callers share."""

import asyncio
import json
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import AsyncRequestFactory, Client

from messaging.domain import blocks, services
from messaging.domain.tokens import token_issue
from messaging.ops import health
from messaging.web.http import client_key
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture(autouse=True)
def _own_counters(settings):
    """Start each test from zero, also on a Redis that earlier tests counted in."""
    settings.CHAT_RATE_LIMIT_PREFIX = f"test-http-{uuid.uuid4().hex[:12]}"


def api_client(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=user)}")


def call(client: Client, method: str, path: str, data=None, **extra):
    body = json.dumps(data) if data is not None else None
    return getattr(client, method)(path, body, content_type="application/json", **extra)


def assert_refused(response) -> None:
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) >= 1
    body = response.json()
    assert body["detail"] and body["retry_after"] > 0


@pytest.fixture
def group(alice, bob, carol, make_user):
    """A group of alice's with dave in it to remove, and frank and erin beside."""
    dave = make_user(username="dave")
    make_user(username="erin")
    make_user(username="frank")
    conversation = services.conversation_create_group(creator=alice, others=[bob, carol, dave])
    return conversation.pk


@pytest.fixture
def message(alice, bob):
    return services.message_send(sender=alice, body="hi bob", client_id="m-1", to="bob").message


# Each kind of endpoint's setting and a request of that kind.
ENDPOINTS = [
    ("CHAT_API_READ_RATE", "get", "/api/conversations/", None),
    ("CHAT_API_READ_RATE", "get", "/api/conversations/{group}/", None),
    ("CHAT_API_READ_RATE", "get", "/api/conversations/{group}/messages/", None),
    ("CHAT_API_READ_RATE", "get", "/api/blocks/", None),
    ("CHAT_SEARCH_RATE", "get", "/api/search/?q=hello", None),
    ("CHAT_USER_LOOKUP_RATE", "get", "/api/users/?q=b", None),
    ("CHAT_GROUP_CHANGE_RATE", "post", "/api/conversations/", {"members": ["bob", "carol"]}),
    ("CHAT_GROUP_CHANGE_RATE", "patch", "/api/conversations/{group}/", {"title": "renamed"}),
    (
        "CHAT_GROUP_CHANGE_RATE",
        "post",
        "/api/conversations/{group}/members/",
        {"members": ["dave"]},
    ),
    ("CHAT_GROUP_CHANGE_RATE", "delete", "/api/conversations/{group}/members/dave/", None),
    ("CHAT_API_WRITE_RATE", "post", "/api/blocks/", {"username": "carol"}),
    ("CHAT_API_WRITE_RATE", "delete", "/api/blocks/erin/", None),
    ("CHAT_API_WRITE_RATE", "post", "/api/messages/{message}/report/", {"reason": "spam"}),
]


@pytest.mark.parametrize("setting, method, path, data", ENDPOINTS)
def test_every_endpoint_is_limited_per_user(
    settings, alice, bob, group, message, setting, method, path, data
):
    # An hour's window: the counters are fixed windows, and three calls that straddle the
    # start of a new one would be counted apart.
    setattr(settings, setting, "2/3600s")
    path = path.format(group=group, message=message.pk)
    caller = alice if "report" not in path else bob
    if path.endswith("/blocks/erin/"):
        blocks.block_create(blocker=alice, username="erin")  # to lift
    client = api_client(caller)
    # Within the rule (a second DELETE finds nothing to delete: 404, not 429).
    assert call(client, method, path, data).status_code < 400
    assert call(client, method, path, data).status_code in (200, 201, 204, 404)
    assert_refused(call(client, method, path, data))
    # Another person's requests are their own.
    other = api_client(bob if caller == alice else alice)
    assert call(other, "get", "/api/users/?q=c").status_code == 200


def test_reads_and_writes_of_one_endpoint_count_apart(settings, alice, group):
    settings.CHAT_GROUP_CHANGE_RATE = "1/60s"
    client = api_client(alice)
    path = f"/api/conversations/{group}/"
    assert call(client, "patch", path, {"title": "one"}).status_code == 200
    assert_refused(call(client, "patch", path, {"title": "two"}))
    assert call(client, "get", path).json()["title"] == "one"


def test_the_token_endpoint_is_limited_per_address(settings, alice):
    settings.CHAT_LOGIN_RATE = "2/60s"
    guesser = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(2):
        call(guesser, "post", "/api/auth/token/", {"username": "alice", "password": "nope"})
    refused = call(
        guesser, "post", "/api/auth/token/", {"username": "alice", "password": PASSWORD}
    )
    assert_refused(refused)
    owner = Client(REMOTE_ADDR="198.51.100.8")
    ok = call(owner, "post", "/api/auth/token/", {"username": "alice", "password": PASSWORD})
    assert ok.status_code == 200


def test_one_ipv6_network_counts_as_one_address(settings, alice):
    settings.CHAT_LOGIN_RATE = "2/60s"
    credentials = {"username": "alice", "password": PASSWORD}
    for address in ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"):
        client = Client(REMOTE_ADDR=address)
        assert call(client, "post", "/api/auth/token/", credentials).status_code == 200
    # A third address of the same /64 is the same subscriber.
    assert_refused(
        call(Client(REMOTE_ADDR="2001:db8:1:2::abcd"), "post", "/api/auth/token/", credentials)
    )
    # The next /64 is someone else.
    other = Client(REMOTE_ADDR="2001:db8:1:3::1")
    assert call(other, "post", "/api/auth/token/", credentials).status_code == 200


@pytest.mark.parametrize(
    "address, key",
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:aa:bb:cc:dd:ee:ff", "2001:db8:aa:bb::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("unknown", "unknown"),
    ],
)
def test_client_key_is_the_ipv4_address_or_the_ipv6_network(rf, address, key):
    assert client_key(rf.get("/", REMOTE_ADDR=address)) == key


def test_sign_ups_per_ipv6_network_are_limited(settings):
    settings.CHAT_REGISTER_RATE = "1/86400s"
    made = call(
        Client(REMOTE_ADDR="2001:db8:5:6::1"),
        "post",
        "/api/auth/register/",
        {"username": "first", "password": PASSWORD},
    )
    assert made.status_code == 201
    refused = call(
        Client(REMOTE_ADDR="2001:db8:5:6::2"),
        "post",
        "/api/auth/register/",
        {"username": "second", "password": PASSWORD},
    )
    assert_refused(refused)
    assert not User.objects.filter(username="second").exists()


def test_the_total_limit_refuses_every_address_once_spent(settings, alice):
    settings.CHAT_LOGIN_RATE = "1/60s"
    settings.CHAT_LOGIN_TOTAL_RATE = "2/60s"
    credentials = {"username": "alice", "password": PASSWORD}

    def token_from(address: str):
        return call(Client(REMOTE_ADDR=address), "post", "/api/auth/token/", credentials)

    assert token_from("192.0.2.1").status_code == 200
    # Refused for its own address: that does not spend what the others share.
    assert_refused(token_from("192.0.2.1"))
    assert token_from("192.0.2.2").status_code == 200
    refused = token_from("192.0.2.3")
    assert_refused(refused)
    assert "this server" in refused.json()["detail"]


def test_the_login_form_is_limited_per_address_and_in_total(settings, alice):
    settings.CHAT_LOGIN_RATE = "1/60s"
    settings.CHAT_LOGIN_TOTAL_RATE = "2/60s"
    first = Client(REMOTE_ADDR="192.0.2.10")
    assert first.get("/accounts/login/").status_code == 200
    wrong = first.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200  # the form again, with its error
    page = first.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert page.status_code == 429 and int(page["Retry-After"]) >= 1
    assert b'data-testid="problem"' in page.content
    assert "_auth_user_id" not in first.session
    # The form itself is not counted: only what hashes a password.
    assert first.get("/accounts/login/").status_code == 200

    second = Client(REMOTE_ADDR="192.0.2.11")
    assert (
        second.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code
        == 302
    )
    third = Client(REMOTE_ADDR="192.0.2.12")
    refused = third.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert refused.status_code == 429
    assert "_auth_user_id" not in third.session


def test_the_sign_up_form_is_limited_per_address(settings):
    settings.CHAT_LOGIN_RATE = "1/60s"
    client = Client(REMOTE_ADDR="2001:db8:9:9::1")
    form = {"username": "newbie", "password1": "short", "password2": "short"}
    assert client.post("/accounts/signup/", form).status_code == 200  # refused by the form
    good = {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD}
    page = Client(REMOTE_ADDR="2001:db8:9:9::2").post("/accounts/signup/", good)
    assert page.status_code == 429 and int(page["Retry-After"]) >= 1
    assert not User.objects.filter(username="newbie").exists()


def test_the_admin_login_is_limited_per_address(settings, alice):
    settings.CHAT_LOGIN_RATE = "1/60s"
    client = Client(REMOTE_ADDR="192.0.2.20")
    client.post("/admin/login/", {"username": "alice", "password": "nope"})
    refused = client.post("/admin/login/", {"username": "alice", "password": PASSWORD})
    assert refused.status_code == 429


@pytest.mark.parametrize(
    "path, status_as_json",
    [("/api/auth/register/", 201), ("/api/auth/token/", 400)],  # mallory has no account yet
)
def test_a_body_that_is_not_declared_json_is_refused(path, status_as_json):
    credentials = json.dumps({"username": "mallory", "password": PASSWORD})
    # What a form on another site can make a visitor's browser send without asking.
    response = Client().post(path, credentials, content_type="text/plain")
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    assert not User.objects.filter(username="mallory").exists()
    # Declared as JSON, with a charset or without, the same body is read.
    declared = Client().post(path, credentials, content_type="application/json; charset=utf-8")
    assert declared.status_code == status_as_json


def test_an_authenticated_write_with_a_form_body_is_refused(alice):
    client = api_client(alice)
    response = client.post("/api/blocks/", {"username": "bob"})  # multipart form data
    assert response.status_code == 415
    assert client.get("/api/blocks/").json()["blocks"] == []


# --- /healthz -----------------------------------------------------------------------------


@pytest.fixture
def database_checks(monkeypatch):
    """Count the database checks /healthz makes; each takes a moment."""
    health.forget_checks()
    made = []

    def counted():
        made.append(1)
        time.sleep(0.05)

    monkeypatch.setattr(health, "_database", counted)
    yield made
    health.forget_checks()


def test_healthz_checks_once_for_calls_within_its_window(settings, client, database_checks):
    settings.CHAT_HEALTH_CACHE_SECONDS = 60
    answers = [client.get("/healthz") for _ in range(5)]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert len(database_checks) == 1


def test_healthz_checks_again_after_its_window(settings, client, database_checks):
    settings.CHAT_HEALTH_CACHE_SECONDS = 1
    client.get("/healthz")
    client.get("/healthz")
    assert len(database_checks) == 1
    time.sleep(1.1)
    client.get("/healthz")
    assert len(database_checks) == 2


async def test_concurrent_healthz_calls_share_one_check(settings, database_checks):
    settings.CHAT_HEALTH_CACHE_SECONDS = 0  # even without the window
    request = AsyncRequestFactory().get("/healthz")
    answers = await asyncio.gather(*(health.healthz(request) for _ in range(8)))
    assert [answer.status_code for answer in answers] == [200] * 8
    assert len(database_checks) == 1


SECRET_TEXT = (
    'connection to server at "db.internal.example" (10.1.2.3), port 5432 failed: '
    'FATAL: password authentication failed for user "chat" password=hunter2'
)


@pytest.mark.parametrize(
    "failure, reason",
    [
        (OperationalError(SECRET_TEXT), "OperationalError"),
        (OperationalError(SECRET_TEXT + " Connection refused"), "connection refused"),
        (ConnectionRefusedError(111, SECRET_TEXT), "connection refused"),
        (RuntimeError(SECRET_TEXT), "RuntimeError"),
    ],
)
def test_a_failed_check_names_a_short_reason_not_the_exception_text(
    client, monkeypatch, failure, reason
):
    health.forget_checks()

    def failing():
        raise failure

    monkeypatch.setattr(health, "_database", failing)
    response = client.get("/healthz")
    health.forget_checks()
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == reason
    for secret in ("db.internal.example", "10.1.2.3", "hunter2", "authentication"):
        assert secret not in response.content.decode()
