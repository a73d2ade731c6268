"""Privacy: presence, typing and reading reach only those a person showed themselves to;
settings; edits across a block; senders deactivated while their socket stays open."""

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from messaging.domain import blocks, groups, reading, services
from messaging.models import Conversation, Message
from messaging.protocol import ChatError
from messaging.sending.batch import SendRequest, messages_send_many
from tests.helpers import api, send_frame

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


def call(user, method: str, path: str, data=None):
    client = api(user)
    if data is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, json.dumps(data), content_type="application/json")


acall = database_sync_to_async(call)


async def drain(socket) -> list[str]:
    """Receive the frames a socket has waiting; return their types."""
    types = []
    while not await socket.nothing():
        types.append((await socket.recv())["type"])
    return types


def me(user) -> dict:
    return {"id": user.pk, "username": user.username}


async def exchange(sender_socket, conversation: int, body: str, *everyone) -> dict:
    """Send a message and let every socket take its copy; return the ack."""
    ack = await sender_socket.request(
        send_frame(body, f"c-{body}", conversation=conversation), "message.ack"
    )
    for socket in everyone:
        await socket.recv_type("message.new")
    return ack["message"]


async def test_a_stranger_who_opens_a_direct_conversation_learns_nothing_until_answered(
    connect, alice, bob
):
    bob_socket = await connect(bob)
    alice_socket = await connect(alice)
    assert alice_socket.ready["online"] == []
    opened = await acall(alice, "post", "/api/conversations/", {"members": ["bob"]})
    assert opened.status_code == 201
    conversation = opened.json()["id"]
    # Alice opened it: Bob sees her online at once, she sees nothing of him.
    assert await bob_socket.recv_type("presence") == {
        "type": "presence",
        "user": me(alice),
        "online": True,
    }
    assert (await connect(alice)).ready["online"] == []
    await bob_socket.send({"type": "typing", "conversation": conversation})
    assert await alice_socket.nothing()

    message = await exchange(alice_socket, conversation, "hi bob", alice_socket, bob_socket)
    await bob_socket.send({"type": "read", "conversation": conversation, "up_to": message["id"]})
    assert (await bob_socket.recv_type("read"))["user"] == me(bob)
    assert await alice_socket.nothing(), "no receipt before Bob answers"
    pointers = (await acall(alice, "get", f"/api/conversations/{conversation}/")).json()
    assert pointers["read_pointers"] == {str(alice.pk): 0}

    second_alice_socket = await connect(alice)
    assert second_alice_socket.ready["online"] == []
    await exchange(bob_socket, conversation, "hi alice", bob_socket)
    # Bob answered: every socket of Alice's is told at once that he is online.
    for socket in (alice_socket, second_alice_socket):
        shown = await socket.recv_type("presence")
        assert shown == {"type": "presence", "user": me(bob), "online": True}
    await bob_socket.send({"type": "typing", "conversation": conversation})
    assert (await alice_socket.recv_type("typing"))["user"] == me(bob)
    pointers = (await acall(alice, "get", f"/api/conversations/{conversation}/")).json()
    assert pointers["read_pointers"] == {str(alice.pk): 0, str(bob.pk): message["id"]}
    assert (await connect(alice)).ready["online"] == [me(bob)]


async def test_a_group_shows_only_its_creator_and_who_wrote_or_added_people(
    connect, alice, bob, carol, make_user
):
    dave = await database_sync_to_async(make_user)(username="dave")
    sockets = {user.username: await connect(user) for user in (alice, bob, carol, dave)}
    group = await database_sync_to_async(services.conversation_create_group)(
        creator=alice, others=[bob, carol]
    )
    for name in ("bob", "carol"):
        assert (await sockets[name].recv_type("presence"))["user"] == me(alice)
    assert "presence" not in await drain(sockets["alice"]), "nothing of the people she added"

    await exchange(sockets["bob"], group.pk, "hello", *(sockets[n] for n in ("alice", "bob")))
    for name in ("alice", "carol"):
        assert await sockets[name].recv_type("presence") == {
            "type": "presence",
            "user": me(bob),
            "online": True,
        }
    assert (await connect(alice)).ready["online"] == [me(bob)]
    assert (await connect(bob)).ready["online"] == [me(alice)]

    # Carol never wrote: adding Dave shows her, and Dave sees at once who showed themselves.
    await database_sync_to_async(groups.group_add)(
        actor=carol, conversation_id=group.pk, usernames=["dave"]
    )
    seen_by_dave = set()
    for _ in range(3):
        frame = await sockets["dave"].recv_type("presence")
        assert frame["online"] is True
        seen_by_dave.add(frame["user"]["username"])
    assert seen_by_dave == {"alice", "bob", "carol"}
    assert (await sockets["alice"].recv_type("presence"))["user"] == me(carol)
    assert "presence" not in await drain(sockets["carol"]), "Dave has not written"
    await drain(sockets["alice"])
    await sockets["dave"].send({"type": "typing", "conversation": group.pk})
    assert await sockets["alice"].nothing()


async def test_show_presence_off_hides_from_ready_and_frames_and_each_change_is_announced(
    connect, alice, bob
):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    await alice_socket.request(send_frame("hi", "a-1", to="bob"), "message.ack")
    assert (await bob_socket.recv_type("presence"))["online"] is True

    hidden = await acall(alice, "patch", "/api/me/settings/", {"show_presence": False})
    assert hidden.status_code == 200 and hidden.json()["show_presence"] is False
    assert await bob_socket.recv_type("presence") == {
        "type": "presence",
        "user": me(alice),
        "online": False,
    }
    assert (await connect(bob)).ready["online"] == []
    await alice_socket.close()
    await connect(alice)
    assert await bob_socket.nothing(), "no presence while she hides it"

    await acall(alice, "patch", "/api/me/settings/", {"show_presence": True})
    assert await bob_socket.recv_type("presence") == {
        "type": "presence",
        "user": me(alice),
        "online": True,
    }
    assert (await connect(bob)).ready["online"] == [me(alice)]


async def test_without_read_receipts_reading_reaches_only_ones_own_sockets(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    first = await alice_socket.request(send_frame("one", "a-1", to="bob"), "message.ack")
    conversation = first["message"]["conversation"]
    await exchange(bob_socket, conversation, "two", alice_socket, bob_socket)
    third = await exchange(alice_socket, conversation, "three", bob_socket)
    await acall(bob, "patch", "/api/me/settings/", {"send_read_receipts": False})
    await drain(alice_socket)

    second_bob_socket = await connect(bob)
    await bob_socket.send({"type": "read", "conversation": conversation, "up_to": third["id"]})
    for socket in (bob_socket, second_bob_socket):
        assert (await socket.recv_type("read"))["up_to"] == third["id"]
    assert await alice_socket.nothing()

    seen_by_alice = (await acall(alice, "get", f"/api/conversations/{conversation}/")).json()
    assert seen_by_alice["read_pointers"] == {str(alice.pk): 0}
    assert seen_by_alice["unread"] == 1
    seen_by_bob = (await acall(bob, "get", f"/api/conversations/{conversation}/")).json()
    assert seen_by_bob["read_pointers"] == {str(alice.pk): 0, str(bob.pk): third["id"]}
    assert seen_by_bob["unread"] == 0
    inbox = (await acall(bob, "get", "/api/conversations/")).json()["conversations"]
    assert [c["unread"] for c in inbox] == [0]

    # Alice still sends hers.
    await alice_socket.send({"type": "read", "conversation": conversation, "up_to": third["id"]})
    assert (await bob_socket.recv_type("read"))["user"] == me(alice)


def test_read_pointers_are_hidden_across_a_block(alice, bob):
    sent = services.message_send(sender=alice, body="hi", client_id="a-1", to="bob").message
    services.message_send(
        sender=bob, body="hi", client_id="b-1", conversation_id=sent.conversation_id
    )
    reading.conversation_mark_read(user=bob, conversation_id=sent.conversation_id, up_to=sent.pk)
    path = f"/api/conversations/{sent.conversation_id}/"
    assert str(bob.pk) in call(alice, "get", path).json()["read_pointers"]
    blocks.block_create(blocker=alice, username="bob")
    assert call(alice, "get", path).json()["read_pointers"] == {str(alice.pk): 0}
    assert call(bob, "get", path).json()["read_pointers"] == {str(bob.pk): sent.pk}


DEFAULTS = {
    "show_presence": True,
    "send_read_receipts": True,
    "push": True,
    "email": True,
    "email_delay_minutes": 10,
    "previews": True,
}


def test_settings_start_at_the_defaults_and_change_by_any_subset(alice, bob):
    assert call(alice, "get", "/api/me/settings/").json() == DEFAULTS
    changed = call(alice, "patch", "/api/me/settings/", {"push": False, "email_delay_minutes": 60})
    assert changed.status_code == 200
    assert changed.json() == {**DEFAULTS, "push": False, "email_delay_minutes": 60}
    again = call(alice, "patch", "/api/me/settings/", {"previews": False})
    assert again.json() == {
        **DEFAULTS,
        "push": False,
        "email_delay_minutes": 60,
        "previews": False,
    }
    assert call(alice, "get", "/api/me/settings/").json() == again.json()
    assert call(bob, "get", "/api/me/settings/").json() == DEFAULTS


@pytest.mark.parametrize(
    "change, field",
    [
        ({"push": 1}, "push"),
        ({"show_presence": "yes"}, "show_presence"),
        ({"send_read_receipts": None}, "send_read_receipts"),
        ({"email_delay_minutes": True}, "email_delay_minutes"),
        ({"email_delay_minutes": 10.0}, "email_delay_minutes"),
        ({"email_delay_minutes": 0}, "email_delay_minutes"),
        ({"email_delay_minutes": 1441}, "email_delay_minutes"),
        ({"theme": "dark"}, "theme"),
        ({"email": False, "colour": "red"}, "colour"),
    ],
)
def test_a_bad_setting_is_a_400_naming_it_and_changes_nothing(alice, change, field):
    refused = call(alice, "patch", "/api/me/settings/", change)
    assert refused.status_code == 400
    body = refused.json()
    assert body["detail"] and list(body["errors"]) == [field]
    assert call(alice, "get", "/api/me/settings/").json() == DEFAULTS


def test_settings_need_credentials_and_a_json_object(client, alice):
    assert client.get("/api/me/settings/").status_code == 401
    assert call(alice, "patch", "/api/me/settings/", ["push"]).status_code == 400
    assert call(alice, "post", "/api/me/settings/", {}).status_code == 405


async def test_an_edit_across_a_block_in_a_direct_conversation_is_refused_and_not_pushed(
    connect, alice, bob, carol
):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    ack = await alice_socket.request(send_frame("hello", "a-1", to="bob"), "message.ack")
    message = ack["message"]
    await bob_socket.recv_type("message.new")
    assert (await bob_socket.recv_type("presence"))["online"] is True
    await database_sync_to_async(blocks.block_create)(blocker=bob, username="alice")

    error = await alice_socket.request(
        {"type": "message.edit", "id": message["id"], "body": "you will read this"}, "error"
    )
    assert error["code"] == "cannot_send"
    assert await drain(bob_socket) == ["presence"], "only that Alice is hidden from him now"
    synced = await bob_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert [m["body"] for m in synced["messages"]] == ["hello"]

    # Deleting one's own message stays allowed.
    await alice_socket.send({"type": "message.delete", "id": message["id"]})
    assert (await bob_socket.recv_type("message.updated"))["message"]["deleted"] is True

    # A block does not stop a group: an edit there reaches Bob.
    group = await database_sync_to_async(services.conversation_create_group)(
        creator=carol, others=[alice, bob]
    )
    ack = await alice_socket.request(
        send_frame("all", "a-2", conversation=group.pk), "message.ack"
    )
    await alice_socket.send({"type": "message.edit", "id": ack["message"]["id"], "body": "all!"})
    assert (await bob_socket.recv_type("message.updated"))["message"]["body"] == "all!"


def _deactivate(user) -> None:
    # As if the close of the user's sockets was lost: the socket stays open.
    User.objects.filter(pk=user.pk).update(is_active=False)


async def test_a_deactivated_users_open_socket_can_send_nothing(connect, alice, bob, carol):
    alice_socket = await connect(alice)
    await alice_socket.request(send_frame("before", "a-0", to="bob"), "message.ack")
    conversation = (await alice_socket.recv_type("message.new"))["message"]["conversation"]
    await database_sync_to_async(_deactivate)(alice)

    for frame in (
        send_frame("after", "a-1", conversation=conversation),
        send_frame("after", "a-2", to="bob"),
        send_frame("hello carol", "a-3", to="carol"),
    ):
        error = await alice_socket.request(frame, "error")
        assert error["code"] == "forbidden" and error["client_id"] == frame["client_id"]
    assert await database_sync_to_async(list)(Message.objects.values_list("body", flat=True)) == [
        "before"
    ]
    assert await database_sync_to_async(Conversation.objects.count)() == 1


def test_a_batch_stores_nothing_of_a_deactivated_sender(alice, bob, carol):
    conversation = services.message_send(
        sender=alice, body="before", client_id="a-0", to="bob"
    ).message.conversation_id
    _deactivate(alice)  # `alice` still holds the account as it was, like an open socket

    outcomes, delivery = messages_send_many(
        [
            SendRequest(alice, "after", "a-1", conversation_id=conversation),
            SendRequest(alice, "hello carol", "a-2", to="carol"),
            SendRequest(bob, "still here", "b-1", to="carol"),
        ]
    )
    assert [o.error.code if o.error else None for o in outcomes] == [
        "forbidden",
        "forbidden",
        None,
    ]
    assert sorted(Message.objects.values_list("body", flat=True)) == ["before", "still here"]
    alice_carol = Conversation.direct_key_for(alice.pk, carol.pk)
    assert not Conversation.objects.filter(direct_key=alice_carol).exists()
    assert [payload["frame"]["message"]["body"] for _, payload in delivery.events] == [
        "still here",
        "still here",
    ]
    with pytest.raises(ChatError) as refused:
        services.message_send(sender=alice, body="alone", client_id="a-3", to="bob")
    assert refused.value.code == "forbidden"
    assert not Message.objects.filter(body="alone").exists()
