"""Blocks: over HTTP and over the socket, including a block made while both are connected."""

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from messaging.domain import blocks, services
from tests.helpers import api, post_json, send_frame

pytestmark = pytest.mark.django_db(transaction=True)


def test_block_list_add_and_remove(alice, bob, carol):
    client = api(alice)
    assert client.get("/api/blocks/").json() == {"blocks": []}
    made = post_json(client, "/api/blocks/", {"username": "bob"})
    assert made.status_code == 201 and made.json() == {"id": bob.pk, "username": "bob"}
    assert post_json(client, "/api/blocks/", {"username": "bob"}).status_code == 201
    post_json(client, "/api/blocks/", {"username": "carol"})
    assert [u["username"] for u in client.get("/api/blocks/").json()["blocks"]] == [
        "bob",
        "carol",
    ]
    assert client.delete("/api/blocks/bob/").status_code == 204
    assert client.delete("/api/blocks/bob/").status_code == 404
    assert [u["username"] for u in client.get("/api/blocks/").json()["blocks"]] == ["carol"]


@pytest.mark.parametrize(
    "payload, status",
    [
        ({"username": "ghost"}, 404),
        ({"username": "alice"}, 400),
        ({}, 400),
        ({"username": 3}, 400),
    ],
)
def test_bad_blocks_are_refused(alice, payload, status):
    response = post_json(api(alice), "/api/blocks/", payload)
    assert response.status_code == status
    assert response.json()["detail"]


def test_blocks_need_credentials(client):
    assert client.get("/api/blocks/").status_code == 401


@pytest.mark.parametrize(
    "blocker_is_sender", [True, False], ids=["blocker sends", "blocked sends"]
)
def test_no_new_conversation_with_a_blocker_either_way(alice, bob, blocker_is_sender):
    blocker, blocked = (alice, bob) if blocker_is_sender else (bob, alice)
    blocks.block_create(blocker=blocker, username=blocked.username)
    response = post_json(api(alice), "/api/conversations/", {"members": ["bob"]})
    assert response.status_code == 403 and response.json()["code"] == "cannot_send"
    page = Client()
    page.force_login(alice)
    assert page.get("/dm/bob/").status_code == 403


def test_history_stays_after_a_block(alice, bob):
    message = services.message_send(sender=alice, body="before", client_id="c", to="bob").message
    blocks.block_create(blocker=bob, username="alice")
    history = api(alice).get(f"/api/conversations/{message.conversation_id}/messages/").json()
    assert [m["body"] for m in history["messages"]] == ["before"]


async def test_a_block_while_both_are_connected_stops_messages_typing_receipts_presence(
    connect, alice, bob
):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    first = await alice_socket.request(send_frame("hello", "c-1", to="bob"), "message.ack")
    conversation = first["message"]["conversation"]
    await bob_socket.recv_type("message.new")
    await alice_socket.recv_type("message.new")

    await database_sync_to_async(blocks.block_create)(blocker=bob, username="alice")

    for sender, to, client_id in ((alice_socket, "bob", "c-2"), (bob_socket, "alice", "b-1")):
        error = await sender.request(send_frame("still there?", client_id, to=to), "error")
        assert error["code"] == "cannot_send" and error["client_id"] == client_id
    await alice_socket.send({"type": "typing", "conversation": conversation})
    await alice_socket.send(
        {"type": "read", "conversation": conversation, "up_to": first["message"]["id"]}
    )
    assert (await alice_socket.recv_type("read"))["user"]["username"] == "alice"
    assert await bob_socket.nothing(), "no typing and no read receipt reach the blocker"

    await alice_socket.close()
    assert await bob_socket.nothing(), "no presence either"
    again = await connect(alice)
    assert again.ready["online"] == []
    assert await bob_socket.nothing()


async def test_a_block_does_not_stop_a_group(connect, alice, bob, carol):
    group = await database_sync_to_async(services.conversation_create_group)(
        creator=alice, others=[bob, carol], title="trio"
    )
    await database_sync_to_async(blocks.block_create)(blocker=bob, username="alice")
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    ack = await alice_socket.request(
        send_frame("group hello", "g-1", conversation=group.pk), "message.ack"
    )
    pushed = await bob_socket.recv_type("message.new")
    assert pushed["message"]["id"] == ack["message"]["id"]
