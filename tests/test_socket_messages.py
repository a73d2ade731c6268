"""message.send, ack, message.new, retries, conflicts, over the real ASGI stack."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from messaging.models import Conversation, Message
from tests.helpers import send_frame

pytestmark = pytest.mark.django_db(transaction=True)


async def test_send_is_acked_and_pushed_to_every_socket_of_both_people(connect, alice, bob, carol):
    alice_tab1 = await connect(alice)
    alice_tab2 = await connect(alice)
    bob_socket = await connect(bob)
    carol_socket = await connect(carol)

    await alice_tab1.send(send_frame("hi bob", "c-1", to="bob"))
    ack = await alice_tab1.recv()
    assert ack["type"] == "message.ack"
    assert ack["client_id"] == "c-1"
    message = ack["message"]
    assert message["body"] == "hi bob"
    assert message["sender"] == {"id": alice.pk, "username": "alice"}
    assert message["deleted"] is False and message["edited_at"] is None
    assert message["created_at"].endswith("Z")

    for socket in (alice_tab1, alice_tab2, bob_socket):
        pushed = await socket.recv_type("message.new")
        assert pushed["message"] == message
        assert pushed["prev_seq"] == 0
    assert await carol_socket.nothing()


async def test_message_is_stored_before_the_ack(connect, alice, bob):
    alice_socket = await connect(alice)
    ack = await alice_socket.request(send_frame("stored?", "c-1", to="bob"), "message.ack")
    stored = await database_sync_to_async(Message.objects.get)(pk=ack["message"]["id"])
    assert stored.body == "stored?"


async def test_send_by_conversation_id_reaches_the_other_member(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    first = await alice_socket.request(send_frame("one", "c-1", to="bob"), "message.ack")
    conversation = first["message"]["conversation"]
    await alice_socket.recv_type("message.new")
    await bob_socket.recv_type("message.new")

    reply = await bob_socket.request(
        send_frame("two", "b-1", conversation=conversation), "message.ack"
    )
    assert reply["message"]["conversation"] == conversation
    pushed = await alice_socket.recv_type("message.new")
    assert pushed["message"]["body"] == "two"


async def test_one_direct_conversation_per_pair_whoever_starts(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    a = await alice_socket.request(send_frame("hi", "a-1", to="bob"), "message.ack")
    b = await bob_socket.request(send_frame("hey", "b-1", to="alice"), "message.ack")
    assert a["message"]["conversation"] == b["message"]["conversation"]
    assert await database_sync_to_async(Conversation.objects.count)() == 1


async def test_retry_with_same_client_id_is_acked_again_and_stores_nothing(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    first = await alice_socket.request(send_frame("once", "same", to="bob"), "message.ack")
    await bob_socket.recv_type("message.new")
    # Her first message shows alice to bob (PROTOCOL.md, Privacy): that is told once.
    assert (await bob_socket.recv_type("presence"))["user"]["username"] == "alice"

    again = await alice_socket.request(send_frame("once", "same", to="bob"), "message.ack")
    assert again["message"] == first["message"]
    assert await bob_socket.nothing(), "a retry must not announce the message again"
    assert await database_sync_to_async(Message.objects.count)() == 1


async def test_concurrent_duplicates_store_one_message(connect, alice, bob):
    sockets = [await connect(alice) for _ in range(4)]
    frame = send_frame("race", "dup", to="bob")
    await asyncio.gather(*(socket.send(frame) for socket in sockets))
    acks = [await socket.recv_type("message.ack") for socket in sockets]
    assert len({ack["message"]["id"] for ack in acks}) == 1
    assert await database_sync_to_async(Message.objects.count)() == 1


async def test_same_client_id_with_another_body_is_a_conflict(connect, alice, bob):
    alice_socket = await connect(alice)
    await alice_socket.request(send_frame("first", "cid", to="bob"), "message.ack")
    error = await alice_socket.request(send_frame("second", "cid", to="bob"), "error")
    assert error["code"] == "conflict"
    assert error["client_id"] == "cid"
    assert await database_sync_to_async(Message.objects.count)() == 1


async def test_same_client_id_to_another_person_is_a_conflict(connect, alice, bob, carol):
    alice_socket = await connect(alice)
    await alice_socket.request(send_frame("same", "cid", to="bob"), "message.ack")
    error = await alice_socket.request(send_frame("same", "cid", to="carol"), "error")
    assert error["code"] == "conflict"


async def test_client_ids_are_per_sender(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    a = await alice_socket.request(send_frame("from alice", "shared", to="bob"), "message.ack")
    b = await bob_socket.request(send_frame("from bob", "shared", to="alice"), "message.ack")
    assert a["message"]["id"] != b["message"]["id"]


async def test_message_ids_grow_within_a_conversation(connect, alice, bob):
    alice_socket = await connect(alice)
    ids = []
    for n in range(5):
        ack = await alice_socket.request(send_frame(f"m{n}", f"c{n}", to="bob"), "message.ack")
        ids.append(ack["message"]["id"])
    assert ids == sorted(ids) and len(set(ids)) == 5


async def test_sending_to_a_deactivated_user_is_cannot_send(connect, alice, make_user):
    gone = await database_sync_to_async(make_user)(username="gone", is_active=False)
    alice_socket = await connect(alice)
    error = await alice_socket.request(send_frame("hello?", "c-1", to=gone.username), "error")
    assert error["code"] == "cannot_send"
    assert error["client_id"] == "c-1"
    assert await database_sync_to_async(Message.objects.count)() == 0


async def test_unknown_recipient_or_conversation_is_not_found(connect, alice):
    alice_socket = await connect(alice)
    error = await alice_socket.request(send_frame("x", "c-1", to="nobody"), "error")
    assert error["code"] == "not_found" and error["client_id"] == "c-1"
    error = await alice_socket.request(send_frame("x", "c-2", conversation=999999), "error")
    assert error["code"] == "not_found" and error["client_id"] == "c-2"


async def test_sending_to_yourself_is_bad_frame(connect, alice):
    alice_socket = await connect(alice)
    error = await alice_socket.request(send_frame("me", "c-1", to="alice"), "error")
    assert error["code"] == "bad_frame"


async def test_a_retry_after_an_edit_is_still_the_same_message(connect, alice, bob):
    alice_socket = await connect(alice)
    first = await alice_socket.request(send_frame("draft", "c-1", to="bob"), "message.ack")
    await alice_socket.send(
        {"type": "message.edit", "id": first["message"]["id"], "body": "final"}
    )
    await alice_socket.recv_type("message.updated")
    retry = await alice_socket.request(send_frame("draft", "c-1", to="bob"), "message.ack")
    assert retry["message"]["id"] == first["message"]["id"]
    assert retry["message"]["body"] == "final", "acked with the message as it is now"
    error = await alice_socket.request(send_frame("final", "c-1", to="bob"), "error")
    assert error["code"] == "conflict", "the body first sent is what counts"
