"""The HTTP side of reaching people away: the push key, subscriptions and the endpoints the
server refuses to post to, mute, the service worker, and the settings page."""

from __future__ import annotations

import socket
import threading

import pytest

from messaging.domain import services
from messaging.jobs import duties, vapid
from messaging.jobs.runner import Runner
from messaging.models import Membership, PushSubscription
from tests.helpers import free_port
from tests.push_service import b64url_decode, new_browser

PUBLIC = "93.184.216.34"

real_getaddrinfo = socket.getaddrinfo


@pytest.fixture
def dns(monkeypatch):
    """Answer chosen host names with chosen addresses; any other name as usual."""
    names: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (address, port or 443),
                )
                for address in names[host]
            ]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def subscription(endpoint: str) -> dict:
    """Return a browser's PushSubscription for an endpoint, with keys of its own."""
    return new_browser(endpoint).subscription()


def post_subscription(client, data):
    return client.post("/api/push/subscriptions/", data, content_type="application/json")


def test_the_push_key_is_the_vapid_public_key(signed_in, settings):
    settings.CHAT_VAPID_PRIVATE_KEY = key = vapid.new_private_key()
    response = signed_in.get("/api/push/key/")
    assert response.status_code == 200
    assert response.json() == {"public_key": vapid.public_key_of(key)}
    assert len(b64url_decode(response.json()["public_key"])) == 65


def test_without_a_vapid_key_in_production_push_is_off_and_says_so(signed_in, settings):
    settings.CHAT_VAPID_PRIVATE_KEY = ""
    settings.DEBUG = False
    response = signed_in.get("/api/push/key/")
    assert response.status_code == 503
    assert "VAPID" in response.json()["detail"]


def test_development_makes_one_key_under_var_and_keeps_it(signed_in, settings, tmp_path):
    settings.CHAT_VAPID_PRIVATE_KEY = ""
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    first = signed_in.get("/api/push/key/").json()["public_key"]
    assert signed_in.get("/api/push/key/").json()["public_key"] == first
    assert (tmp_path / vapid.DEV_KEY_FILE).stat().st_mode & 0o777 == 0o600


def test_a_subscription_is_kept_201_then_known_200_then_forgotten_204(signed_in, alice, dns):
    dns["push.example.net"] = [PUBLIC]
    data = subscription("https://push.example.net/send/abc")
    assert post_subscription(signed_in, data).status_code == 201
    assert post_subscription(signed_in, data).status_code == 200
    assert PushSubscription.objects.filter(user=alice).count() == 1

    gone = signed_in.delete(
        "/api/push/subscriptions/", {"endpoint": data["endpoint"]}, content_type="application/json"
    )
    assert gone.status_code == 204
    assert not PushSubscription.objects.exists()


def test_a_browser_subscribed_by_another_account_moves_to_the_one_signed_in_now(
    client, alice, bob, dns
):
    dns["push.example.net"] = [PUBLIC]
    data = subscription("https://push.example.net/send/shared-laptop")
    client.force_login(alice)
    assert post_subscription(client, data).status_code == 201
    client.force_login(bob)
    assert post_subscription(client, data).status_code == 201
    assert list(PushSubscription.objects.values_list("user__username", flat=True)) == ["bob"]


@pytest.mark.parametrize(
    ("endpoint", "addresses"),
    [
        ("http://push.example.net/x", [PUBLIC]),
        ("https://127.0.0.1/x", []),
        ("https://10.1.2.3/x", []),
        ("https://[::1]/x", []),
        ("https://[::ffff:192.168.0.1]/x", []),
        ("https://169.254.169.254/latest/meta-data/", []),
        ("https://168.63.129.16/x", []),
        ("https://100.64.0.1/x", []),
        ("https://user:secret@push.example.net/x", [PUBLIC]),
        ("https://inside.example.net/x", ["10.0.0.5"]),
        ("https://mixed.example.net/x", [PUBLIC, "192.168.1.1"]),
        ("https://link.example.net/x", ["fe80::1"]),
        ("https://nowhere.invalid/x", None),
        ("not a url", None),
    ],
)
def test_an_endpoint_is_refused_unless_https_on_public_addresses(
    signed_in, dns, endpoint, addresses
):
    if addresses is not None:
        dns["push.example.net"] = [PUBLIC]
        dns[endpoint.split("/")[2].split("@")[-1]] = addresses
    response = post_subscription(signed_in, subscription(endpoint))
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["endpoint"]
    assert not PushSubscription.objects.exists()


def test_bad_keys_are_refused_by_name(signed_in, dns):
    dns["push.example.net"] = [PUBLIC]
    data = subscription("https://push.example.net/x")
    data["keys"] = {"p256dh": "not-a-key", "auth": "AAAA"}
    response = post_subscription(signed_in, data)
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"keys.p256dh", "keys.auth"}
    bad_json = signed_in.post("/api/push/subscriptions/", "[]", content_type="application/json")
    assert bad_json.status_code == 400


def test_the_allow_list_admits_a_push_service_of_ones_own(signed_in, settings):
    settings.CHAT_PUSH_ENDPOINTS_ALLOWED = ["http://127.0.0.1:8931/"]
    assert (
        post_subscription(signed_in, subscription("http://127.0.0.1:8931/p/1")).status_code == 201
    )
    assert (
        post_subscription(signed_in, subscription("http://127.0.0.1:8932/p/1")).status_code == 400
    )


def test_subscriptions_need_a_login_and_the_csrf_token(client, alice, dns):
    dns["push.example.net"] = [PUBLIC]
    data = subscription("https://push.example.net/x")
    assert post_subscription(client, data).status_code == 401
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert post_subscription(strict, data).status_code == 403


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections made to it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.accepted = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        # A close alone leaves the thread blocked in accept(); a shutdown wakes it.
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


@pytest.mark.django_db(transaction=True)
def test_a_name_that_turns_private_after_subscribing_is_never_posted_to(
    client, alice, bob, dns, settings
):
    settings.CHAT_VAPID_PRIVATE_KEY = vapid.new_private_key()
    listener = Listener()
    endpoint = f"https://rebind.example.net:{listener.port}/push/1"
    dns["rebind.example.net"] = [PUBLIC]
    client.force_login(bob)
    assert post_subscription(client, subscription(endpoint)).status_code == 201
    duties.run_now("push_scan")
    duties.run_due(duties.DUTIES[:1])

    dns["rebind.example.net"] = ["127.0.0.1"]  # The DNS answer changes: now inside.
    services.message_send(sender=alice, body="hi", client_id="rebound", to="bob")
    duties.run_now("push_scan")
    duties.run_due(duties.DUTIES[:1])
    Runner(threads=1).run_until_idle(timeout=30)

    assert listener.accepted == 0
    listener.close()
    # Refused for good, not retried; the subscription stays (the name may come back).
    from django_tasks_db.models import DBTaskResult

    assert list(DBTaskResult.objects.values_list("status", flat=True)) == ["SUCCESSFUL"]
    assert PushSubscription.objects.count() == 1


def test_a_member_mutes_and_unmutes_a_conversation_and_the_inbox_shows_it(client, alice, bob):
    conversation, _ = services.conversation_open_direct(user=alice, other=bob)
    client.force_login(alice)
    url = f"/api/conversations/{conversation.pk}/"
    listed = client.get("/api/conversations/").json()["conversations"]
    assert [entry["muted"] for entry in listed] == [False]

    response = client.patch(url, {"muted": True}, content_type="application/json")
    assert response.status_code == 200 and response.json()["muted"] is True
    assert client.get("/api/conversations/").json()["conversations"][0]["muted"] is True
    # Only for the one who muted it.
    client.force_login(bob)
    assert client.get("/api/conversations/").json()["conversations"][0]["muted"] is False

    client.force_login(alice)
    client.patch(url, {"muted": False}, content_type="application/json")
    assert not Membership.objects.get(user=alice).muted


def test_mute_takes_only_true_or_false_and_only_from_members(client, alice, bob, carol):
    conversation, _ = services.conversation_open_direct(user=alice, other=bob)
    url = f"/api/conversations/{conversation.pk}/"
    client.force_login(alice)
    for bad in (1, "yes", None):
        response = client.patch(url, {"muted": bad}, content_type="application/json")
        assert response.status_code == 400
        assert list(response.json()["errors"]) == ["muted"]
    client.force_login(carol)
    assert client.patch(url, {"muted": True}, content_type="application/json").status_code == 404


def test_the_service_worker_is_served_from_the_root_for_the_whole_site(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Service-Worker-Allowed"] == "/"
    assert "no-cache" in response["Cache-Control"]
    assert "Content-Security-Policy" in response
    body = response.content.decode()
    assert 'addEventListener("push"' in body and 'addEventListener("notificationclick"' in body


def test_the_settings_page_offers_push_email_and_mute_choices(client, alice, settings):
    settings.CHAT_VAPID_PRIVATE_KEY = vapid.new_private_key()
    client.force_login(alice)
    page = client.get("/settings/").content.decode()
    for testid in (
        "push-section",
        "push-device-state",
        "email-section",
        "email-form",
        "muted-section",
    ):
        assert f'data-testid="{testid}"' in page, testid
    assert "messaging/push.js" in page or "messaging/settings.js" in page
