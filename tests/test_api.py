"""The JSON API: tokens, registration, conversations, history paging, people, health."""

import pytest
from django.test import Client

from messaging.domain import message_changes, reading, services
from messaging.domain.tokens import token_issue
from tests.factories import PASSWORD
from tests.helpers import post_json

pytestmark = pytest.mark.django_db


def bearer(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token_issue(user=user)}"}


def send(sender, body, to, n=[0]):  # noqa: B006 - a counter shared by the tests
    n[0] += 1
    return services.message_send(sender=sender, body=body, client_id=f"c{n[0]}", to=to).message


def test_register_returns_a_working_token(client):
    response = post_json(client, "/api/auth/register/", {"username": "erin", "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert body["user"]["username"] == "erin"
    me = client.get("/api/conversations/", HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert me.status_code == 200
    assert me.json() == {"conversations": [], "has_more": False, "next_cursor": None}


def test_register_reports_field_errors(client, alice):
    response = post_json(client, "/api/auth/register/", {"username": "alice", "password": "1"})
    assert response.status_code == 400
    body = response.json()
    assert body["detail"]
    assert "username" in body["errors"] and "password" in body["errors"]


@pytest.mark.parametrize("payload", ["[]", "not json", '{"username": 5, "password": "x"}', ""])
def test_register_rejects_malformed_bodies_with_400(client, payload):
    response = client.post("/api/auth/register/", payload, content_type="application/json")
    assert response.status_code == 400
    assert "errors" in response.json()


def test_register_is_refused_when_registration_is_closed(client, settings):
    settings.CHAT_REGISTRATION_OPEN = False
    response = post_json(client, "/api/auth/register/", {"username": "erin", "password": PASSWORD})
    assert response.status_code == 403


def test_token_for_good_credentials_only(client, alice):
    good = post_json(client, "/api/auth/token/", {"username": "alice", "password": PASSWORD})
    assert good.status_code == 200
    assert good.json()["user"] == {"id": alice.pk, "username": "alice"}
    bad = post_json(client, "/api/auth/token/", {"username": "alice", "password": "wrong"})
    assert bad.status_code == 400
    assert bad.json()["errors"] == {}


def test_tokens_are_stored_hashed(alice):
    from messaging.models import AuthToken

    key = token_issue(user=alice)
    stored = AuthToken.objects.get(user=alice)
    assert key not in (stored.key_hash, stored.prefix + "x")
    assert stored.key_hash == AuthToken.hash_key(key)


def test_api_without_credentials_is_401(client):
    for path in ("/api/conversations/", "/api/users/?q=a", "/api/conversations/1/messages/"):
        response = client.get(path)
        assert response.status_code == 401
        assert response.json()["detail"]


def test_bad_token_is_401(client):
    response = client.get("/api/conversations/", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401


def test_session_post_needs_csrf(alice, bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = post_json(client, "/api/conversations/", {"members": ["bob"]})
    assert response.status_code == 403
    client.get("/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = post_json(
        client, "/api/conversations/", {"members": ["bob"]}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201


def test_bearer_post_needs_no_csrf(alice, bob):
    client = Client(enforce_csrf_checks=True)
    response = post_json(client, "/api/conversations/", {"members": ["bob"]}, **bearer(alice))
    assert response.status_code == 201


def test_create_direct_conversation_then_find_it(client, alice, bob):
    made = post_json(client, "/api/conversations/", {"members": ["bob"]}, **bearer(alice))
    assert made.status_code == 201
    conversation = made.json()
    assert conversation["kind"] == "direct"
    assert {m["username"] for m in conversation["members"]} == {"alice", "bob"}
    assert conversation["last_message"] is None and conversation["unread"] == 0
    found = post_json(client, "/api/conversations/", {"members": ["alice"]}, **bearer(bob))
    assert found.status_code == 200
    assert found.json()["id"] == conversation["id"]


def test_a_deactivated_member_is_marked_in_the_conversation_list(client, alice, bob, carol):
    send(alice, "hi bob", "bob")
    send(alice, "hi carol", "carol")
    bob.is_active = False
    bob.save(update_fields=["is_active"])
    listed = client.get("/api/conversations/", **bearer(alice)).json()["conversations"]
    members = {
        member["username"]: member for conversation in listed for member in conversation["members"]
    }
    assert members["bob"] == {"id": bob.pk, "username": "bob", "active": False}
    # Everyone else keeps the protocol's usual shape.
    assert members["carol"] == {"id": carol.pk, "username": "carol"}
    assert members["alice"] == {"id": alice.pk, "username": "alice"}


def test_create_conversation_with_unknown_member_is_400(client, alice):
    response = post_json(client, "/api/conversations/", {"members": ["ghost"]}, **bearer(alice))
    assert response.status_code == 400
    assert "members" in response.json()["errors"]


@pytest.mark.parametrize("members", [[], "bob", [5], None])
def test_create_conversation_with_bad_members_is_400(client, alice, bob, members):
    response = post_json(client, "/api/conversations/", {"members": members}, **bearer(alice))
    assert response.status_code == 400


def test_inbox_orders_by_last_activity_with_unread_counts(client, alice, bob, carol):
    send(bob, "from bob 1", "alice")
    send(bob, "from bob 2", "alice")
    last = send(carol, "from carol", "alice")
    send(alice, "mine do not count", "carol")
    response = client.get("/api/conversations/", **bearer(alice))
    conversations = response.json()["conversations"]
    assert [c["last_message"]["body"] for c in conversations] == [
        "mine do not count",
        "from bob 2",
    ]
    assert [c["unread"] for c in conversations] == [1, 2]
    reading.conversation_mark_read(user=alice, conversation_id=last.conversation_id, up_to=last.id)
    conversations = client.get("/api/conversations/", **bearer(alice)).json()["conversations"]
    assert [c["unread"] for c in conversations] == [0, 2]


def test_unread_skips_deleted_messages(client, alice, bob):
    kept = send(bob, "kept", "alice")
    gone = send(bob, "gone", "alice")
    message_changes.message_delete(actor=bob, message_id=gone.id)
    conversations = client.get("/api/conversations/", **bearer(alice)).json()["conversations"]
    assert conversations[0]["unread"] == 1
    assert kept.id


def test_history_pages_back_in_ascending_order(client, alice, bob):
    sent = [send(alice, f"m{n}", "bob") for n in range(7)]
    url = f"/api/conversations/{sent[0].conversation_id}/messages/"
    newest = client.get(url + "?limit=3", **bearer(bob)).json()
    assert [m["body"] for m in newest["messages"]] == ["m4", "m5", "m6"]
    assert newest["has_more"] is True
    older = client.get(url + f"?limit=3&before={sent[4].id}", **bearer(bob)).json()
    assert [m["body"] for m in older["messages"]] == ["m1", "m2", "m3"]
    oldest = client.get(url + f"?limit=3&before={sent[1].id}", **bearer(bob)).json()
    assert [m["body"] for m in oldest["messages"]] == ["m0"]
    assert oldest["has_more"] is False


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=x", "before=abc", "before=-1"])
def test_history_with_bad_paging_is_400(client, alice, bob, query):
    message = send(alice, "hi", "bob")
    url = f"/api/conversations/{message.conversation_id}/messages/?{query}"
    assert client.get(url, **bearer(alice)).status_code == 400


def test_a_non_member_gets_404_never_content(client, alice, bob, carol):
    message = send(alice, "secret", "bob")
    url = f"/api/conversations/{message.conversation_id}/"
    for path in (url, url + "messages/"):
        response = client.get(path, **bearer(carol))
        assert response.status_code == 404
        assert "secret" not in response.content.decode()


def test_users_by_prefix_excludes_the_caller_and_inactive(client, alice, bob, make_user):
    make_user(username="bobby")
    make_user(username="bobo", is_active=False)
    found = client.get("/api/users/?q=bo", **bearer(alice)).json()["users"]
    assert [u["username"] for u in found] == ["bob", "bobby"]
    assert client.get("/api/users/?q=al", **bearer(alice)).json()["users"] == []


def test_people_are_found_by_any_part_of_their_name_those_it_starts_first(
    client, alice, bob, make_user
):
    for name in ("obi", "rob", "jacob", "ob_one", "zed"):
        make_user(username=name)
    found = client.get("/api/users/?q=ob", **bearer(alice)).json()["users"]
    assert [u["username"] for u in found] == ["ob_one", "obi", "bob", "jacob", "rob"]
    # One letter is in most names: it matches their starts only.
    found = client.get("/api/users/?q=z", **bearer(alice)).json()["users"]
    assert [u["username"] for u in found] == ["zed"]
    found = client.get("/api/users/?q=o", **bearer(alice)).json()["users"]
    assert [u["username"] for u in found] == ["ob_one", "obi"]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_finding_people_by_part_of_a_name_is_served_by_indexes_on_postgresql(alice):
    from django.db import connection

    from messaging.domain import selectors

    if connection.vendor != "postgresql":
        pytest.skip("the indexes are PostgreSQL's")
    plans = []
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        for lookup in ("username__istartswith", "username__icontains"):
            query = selectors.User.objects.filter(**{lookup: "ali"}).query
            sql, params = query.sql_with_params()
            cursor.execute("EXPLAIN " + sql, params)
            plans.append(" ".join(row[0] for row in cursor.fetchall()))
        cursor.execute("RESET enable_seqscan")
    assert "messaging_username_prefix" in plans[0], plans[0]
    assert "messaging_username_trigrams" in plans[1], plans[1]


def test_healthz_reports_database_and_channel_layer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "channel_layer": "ok", "jobs": "ok"},
    }


def test_healthz_is_not_fooled_by_one_probe_the_layer_lost(client, monkeypatch):
    from messaging.ops import health

    layer = health.get_channel_layer()
    lost = []

    class LosingLayer:
        """The layer as it is, except that its first message goes nowhere."""

        new_channel = staticmethod(layer.new_channel)
        receive = staticmethod(layer.receive)

        @staticmethod
        async def send(channel, message):
            if not lost:
                lost.append(message)
                return
            await layer.send(channel, message)

    monkeypatch.setattr(health, "get_channel_layer", LosingLayer)
    response = client.get("/healthz")
    assert len(lost) == 1
    assert response.status_code == 200
    assert response.json()["checks"]["channel_layer"] == "ok"


def test_history_pages_forward_with_after(client, alice, bob):
    sent = [send(alice, f"f{n}", "bob") for n in range(5)]
    url = f"/api/conversations/{sent[0].conversation_id}/messages/"
    page = client.get(url + f"?after={sent[1].id}&limit=2", **bearer(bob)).json()
    assert [m["body"] for m in page["messages"]] == ["f2", "f3"] and page["has_more"]
    rest = client.get(url + f"?after={sent[3].id}&limit=2", **bearer(bob)).json()
    assert [m["body"] for m in rest["messages"]] == ["f4"] and not rest["has_more"]
    both = client.get(url + f"?after=1&before={sent[3].id}", **bearer(bob))
    assert both.status_code == 400


@pytest.mark.parametrize(
    "path, payload",
    [
        ("/api/auth/token/", '{"username": "al\\ud800", "password": "x"}'),
        ("/api/auth/register/", '{"username": "x\\ud800", "password": "long enough pass 1"}'),
        ("/api/conversations/", '{"members": ["bob\\u0000"]}'),
        ("/api/blocks/", '{"username": "\\udfff"}'),
    ],
)
def test_text_no_database_can_hold_is_a_400(client, alice, bob, path, payload):
    response = client.post(path, payload, content_type="application/json", **bearer(alice))
    assert response.status_code == 400
    assert response.json()["detail"]
