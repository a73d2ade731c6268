"""Change stamps, sync, edits, deletes, read pointers, typing and ping over the socket."""

import pytest
from channels.db import database_sync_to_async

from messaging.models import Membership
from tests.helpers import send_frame

pytestmark = pytest.mark.django_db(transaction=True)


async def start_chat(alice_socket, bob_socket, body="hello", *, first=True):
    """Alice writes to Bob; return the message as pushed.

    Her first message shows her to Bob: he is told at once that she is online.
    """
    await alice_socket.request(send_frame(body, f"c-{body}", to="bob"), "message.ack")
    await alice_socket.recv_type("message.new")
    message = (await bob_socket.recv_type("message.new"))["message"]
    if first:
        shown = await bob_socket.recv_type("presence")
        assert shown["user"]["username"] == "alice" and shown["online"] is True
    return message


async def test_ready_reports_last_seq_and_online_peers(connect, alice, bob, carol):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    message = await start_chat(alice_socket, bob_socket)
    late = await connect(bob)
    assert late.ready["user"] == {"id": bob.pk, "username": "bob"}
    assert late.ready["last_seq"] == message["seq"]
    assert late.ready["online"] == [{"id": alice.pk, "username": "alice"}]
    stranger = await connect(carol)
    assert stranger.ready["last_seq"] == 0
    assert stranger.ready["online"] == []


async def test_creates_edits_and_deletes_get_larger_stamps_chained_by_prev_seq(
    connect, alice, bob
):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    first = await start_chat(alice_socket, bob_socket, "one")
    await alice_socket.send(send_frame("two", "c-two", to="bob"))
    second = await bob_socket.recv_type("message.new")
    assert second["prev_seq"] == first["seq"]
    assert second["message"]["seq"] > first["seq"]

    await alice_socket.send({"type": "message.edit", "id": first["id"], "body": "one!"})
    edited = await bob_socket.recv_type("message.updated")
    assert edited["prev_seq"] == second["message"]["seq"]
    assert edited["message"]["id"] == first["id"]
    assert edited["message"]["body"] == "one!"
    assert edited["message"]["edited_at"] is not None
    assert edited["message"]["seq"] > second["message"]["seq"]

    await alice_socket.send({"type": "message.delete", "id": first["id"]})
    deleted = await bob_socket.recv_type("message.updated")
    assert deleted["prev_seq"] == edited["message"]["seq"]
    assert deleted["message"]["id"] == first["id"]
    assert deleted["message"]["deleted"] is True
    assert deleted["message"]["body"] == ""
    assert deleted["message"]["seq"] > edited["message"]["seq"]

    pong = await bob_socket.request({"type": "ping"}, "pong")
    assert pong["last_seq"] == deleted["message"]["seq"]


async def test_sync_returns_each_change_once_as_it_is_now(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    first = await start_chat(alice_socket, bob_socket, "one")
    second = await start_chat(alice_socket, bob_socket, "two", first=False)
    await alice_socket.send({"type": "message.edit", "id": first["id"], "body": "one, edited"})
    await bob_socket.recv_type("message.updated")

    result = await bob_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert [m["id"] for m in result["messages"]] == [second["id"], first["id"]]
    assert result["messages"][1]["body"] == "one, edited"
    assert result["more"] is False

    result = await bob_socket.request({"type": "sync", "after": second["seq"]}, "sync.result")
    assert [m["body"] for m in result["messages"]] == ["one, edited"]


async def test_sync_pages_by_200(connect, alice, bob):
    alice_socket = await connect(alice)
    for n in range(205):
        await alice_socket.request(send_frame(f"m{n}", f"c{n}", to="bob"), "message.ack")
    bob_socket = await connect(bob)
    page = await bob_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert len(page["messages"]) == 200 and page["more"] is True
    seqs = [m["seq"] for m in page["messages"]]
    assert seqs == sorted(seqs)
    rest = await bob_socket.request({"type": "sync", "after": seqs[-1]}, "sync.result")
    assert len(rest["messages"]) == 5 and rest["more"] is False
    assert rest["messages"][-1]["seq"] == bob_socket.ready["last_seq"]


async def test_a_dropped_push_is_noticed_by_prev_seq_and_healed_by_sync(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    first = await start_chat(alice_socket, bob_socket, "one")
    seen = first["seq"]

    # Bob's socket misses the next push (as when the channel layer drops one) ...
    await bob_socket.close()
    await alice_socket.request(send_frame("lost", "c-lost", to="bob"), "message.ack")
    bob_socket = await connect(bob)
    # ... and learns of the gap from the next push's prev_seq.
    await alice_socket.request(send_frame("three", "c-three", to="bob"), "message.ack")
    pushed = await bob_socket.recv_type("message.new")
    assert pushed["prev_seq"] > seen, "the gap must be visible"

    healed = await bob_socket.request({"type": "sync", "after": seen}, "sync.result")
    assert [m["body"] for m in healed["messages"]] == ["lost", "three"]


async def test_sync_and_ping_show_nothing_of_others_conversations(connect, alice, bob, carol):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    await start_chat(alice_socket, bob_socket)
    carol_socket = await connect(carol)
    result = await carol_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert result["messages"] == []
    assert (await carol_socket.request({"type": "ping"}, "pong"))["last_seq"] == 0


async def test_read_moves_the_pointer_forward_only_and_tells_both(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    first = await start_chat(alice_socket, bob_socket, "one")
    second = await start_chat(alice_socket, bob_socket, "two", first=False)
    conversation = first["conversation"]
    # Bob answers: only from then on does Alice see his reading.
    await bob_socket.request(send_frame("hi", "b-hi", conversation=conversation), "message.ack")
    await alice_socket.recv_type("message.new")

    await bob_socket.send({"type": "read", "conversation": conversation, "up_to": second["id"]})
    for socket in (alice_socket, bob_socket):
        receipt = await socket.recv_type("read")
        assert receipt == {
            "type": "read",
            "conversation": conversation,
            "user": {"id": bob.pk, "username": "bob"},
            "up_to": second["id"],
        }
    # An older pointer is accepted, changes nothing and tells no one.
    await bob_socket.send({"type": "read", "conversation": conversation, "up_to": first["id"]})
    assert await alice_socket.nothing()
    pointer = await database_sync_to_async(
        lambda: Membership.objects.get(user=bob, conversation_id=conversation).last_read_message_id
    )()
    assert pointer == second["id"]


async def test_a_read_that_fails_half_way_moves_nothing_and_its_retry_tells_both(
    connect, alice, bob, monkeypatch
):
    """The database fails after the pointer's UPDATE: the move is undone with the frames, so
    that the client's retry moves it and both hear of it (not a pointer moved in silence)."""
    from django.db import OperationalError

    from messaging.domain import reading

    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    message = await start_chat(alice_socket, bob_socket)
    conversation = message["conversation"]
    await bob_socket.request(send_frame("hi", "b-hi", conversation=conversation), "message.ack")
    await alice_socket.recv_type("message.new")
    watchers = reading.visibility.watchers

    def failing(**kwargs):
        monkeypatch.setattr(reading.visibility, "watchers", watchers)
        raise OperationalError("the connection was lost")

    monkeypatch.setattr(reading.visibility, "watchers", failing)
    read = {"type": "read", "conversation": conversation, "up_to": message["id"]}
    error = await bob_socket.request(read, "error")
    assert error["code"] == "unavailable"
    pointer = await database_sync_to_async(
        lambda: Membership.objects.get(user=bob, conversation_id=conversation).last_read_message_id
    )()
    assert pointer < message["id"]
    await bob_socket.send(read)
    for socket in (alice_socket, bob_socket):
        assert (await socket.recv_type("read"))["up_to"] == message["id"]


async def test_read_of_a_message_elsewhere_is_not_found(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    message = await start_chat(alice_socket, bob_socket)
    error = await bob_socket.request(
        {"type": "read", "conversation": message["conversation"], "up_to": message["id"] + 99},
        "error",
    )
    assert error["code"] == "not_found"


async def test_typing_reaches_the_other_member_only(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    message = await start_chat(alice_socket, bob_socket)
    await alice_socket.send({"type": "typing", "conversation": message["conversation"]})
    typing = await bob_socket.recv_type("typing")
    assert typing == {
        "type": "typing",
        "conversation": message["conversation"],
        "user": {"id": alice.pk, "username": "alice"},
    }
    assert await alice_socket.nothing()


async def test_only_the_sender_edits_or_deletes(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    message = await start_chat(alice_socket, bob_socket)
    error = await bob_socket.request(
        {"type": "message.edit", "id": message["id"], "body": "mine now"}, "error"
    )
    assert error["code"] == "forbidden"
    error = await bob_socket.request({"type": "message.delete", "id": message["id"]}, "error")
    assert error["code"] == "forbidden"


async def test_editing_or_deleting_a_deleted_message_is_not_found(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    message = await start_chat(alice_socket, bob_socket)
    await alice_socket.send({"type": "message.delete", "id": message["id"]})
    await alice_socket.recv_type("message.updated")
    for frame in (
        {"type": "message.delete", "id": message["id"]},
        {"type": "message.edit", "id": message["id"], "body": "back"},
    ):
        for socket in (alice_socket, bob_socket):
            error = await socket.request(frame, "error")
            assert error["code"] == "not_found"


async def test_edit_body_rules_match_send(connect, alice, bob):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    message = await start_chat(alice_socket, bob_socket)
    error = await alice_socket.request(
        {"type": "message.edit", "id": message["id"], "body": "  "}, "error"
    )
    assert error["code"] == "empty"
    error = await alice_socket.request(
        {"type": "message.edit", "id": message["id"], "body": "z" * 4001}, "error"
    )
    assert error["code"] == "too_long"


async def test_a_third_person_can_do_nothing_in_a_conversation_of_two(connect, alice, bob, carol):
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    message = await start_chat(alice_socket, bob_socket)
    carol_socket = await connect(carol)
    conversation = message["conversation"]
    for frame in (
        send_frame("let me in", "x-1", conversation=conversation),
        {"type": "read", "conversation": conversation, "up_to": message["id"]},
        {"type": "typing", "conversation": conversation},
        {"type": "message.edit", "id": message["id"], "body": "hacked"},
        {"type": "message.delete", "id": message["id"]},
    ):
        error = await carol_socket.request(frame, "error")
        assert error["code"] == "not_found", frame
    assert await alice_socket.nothing() and await bob_socket.nothing()


async def test_a_deleted_message_keeps_no_text(connect, alice, bob):
    from messaging.models import Message

    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    message = await start_chat(alice_socket, bob_socket, "regrettable")
    await alice_socket.send({"type": "message.delete", "id": message["id"]})
    await bob_socket.recv_type("message.updated")
    stored = await database_sync_to_async(Message.objects.get)(pk=message["id"])
    assert stored.body == ""
    retry = await alice_socket.request(
        send_frame("regrettable", "c-regrettable", to="bob"), "message.ack"
    )
    assert retry["message"]["id"] == message["id"] and retry["message"]["deleted"]
