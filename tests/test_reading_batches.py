"""`read` and `typing` frames arriving together: one round for all, each answered as if alone."""

import asyncio

import pytest
from channels.db import database_sync_to_async

from messaging.domain import reading
from messaging.domain.reading import ReadMark, TypingSignal
from messaging.models import Membership
from messaging.protocol import ChatError
from messaging.realtime import reading_batches
from tests.helpers import send_frame

pytestmark = pytest.mark.django_db(transaction=True)


async def talk(writer_socket, reader_socket, to: str, client_id: str) -> dict:
    """Send a message and return it as its recipient was told of it."""
    await writer_socket.request(send_frame("hi", client_id, to=to), "message.ack")
    return (await reader_socket.recv_type("message.new"))["message"]


async def three_talking(connect, alice, bob, carol):
    """Bob and Carol each wrote to Alice and she answered; return sockets and her answers."""
    sockets = {user.username: await connect(user) for user in (alice, bob, carol)}
    for name in ("bob", "carol"):
        # Each shows himself or herself to Alice by writing first (the privacy rule).
        await talk(sockets[name], sockets["alice"], "alice", f"from-{name}")
    answers = {
        name: await talk(sockets["alice"], sockets[name], name, f"to-{name}")
        for name in ("bob", "carol")
    }
    return sockets, answers


def counting_rounds(monkeypatch, name: str) -> list[int]:
    """Record the size of each round the batch runs."""
    rounds: list[int] = []
    real = getattr(reading_batches, name)

    async def counted(requests):
        rounds.append(len(requests))
        return await real(requests)

    monkeypatch.setattr(reading_batches, name, counted)
    return rounds


async def test_reads_waiting_together_move_every_pointer_in_one_round_and_tell_the_writer(
    connect, alice, bob, carol, monkeypatch
):
    sockets, answers = await three_talking(connect, alice, bob, carol)
    rounds = counting_rounds(monkeypatch, "_marks_together")
    to_bob, to_carol = answers["bob"], answers["carol"]
    marks = reading_batches.read_marks()
    results = await asyncio.gather(
        marks.call(ReadMark(bob, to_bob["conversation"], to_bob["id"])),
        marks.call(ReadMark(carol, to_carol["conversation"], to_carol["id"])),
        # Carol's message is not in Bob's conversation: this one alone is refused.
        marks.call(ReadMark(bob, to_bob["conversation"], to_carol["id"])),
        marks.call(ReadMark(carol, to_bob["conversation"], to_bob["id"])),
        return_exceptions=True,
    )
    assert rounds == [4], "one round for the four reads"
    assert results[:2] == [True, True]
    assert isinstance(results[2], ChatError) and results[2].detail == "no such message"
    assert isinstance(results[3], ChatError) and results[3].detail == "no such conversation"

    told = [await sockets["alice"].recv_type("read") for _ in range(2)]
    assert sorted((frame["user"]["username"], frame["up_to"]) for frame in told) == [
        ("bob", to_bob["id"]),
        ("carol", to_carol["id"]),
    ]
    assert (await sockets["bob"].recv_type("read"))["up_to"] == to_bob["id"]
    assert (await sockets["carol"].recv_type("read"))["up_to"] == to_carol["id"]
    pointers = await database_sync_to_async(
        lambda: dict(
            Membership.objects.filter(user__in=[bob, carol])
            .exclude(conversation_id=to_bob["conversation"], user=carol)
            .values_list("user__username", "last_read_message_id")
        )
    )()
    assert pointers == {"bob": to_bob["id"], "carol": to_carol["id"]}


async def test_typing_waiting_together_is_handed_out_in_one_round_and_a_stranger_refused(
    connect, alice, bob, carol, monkeypatch
):
    sockets, answers = await three_talking(connect, alice, bob, carol)
    rounds = counting_rounds(monkeypatch, "_typings_together")
    signals = reading_batches.typing_signals()
    results = await asyncio.gather(
        signals.call(TypingSignal(bob, answers["bob"]["conversation"])),
        signals.call(TypingSignal(carol, answers["carol"]["conversation"])),
        signals.call(TypingSignal(carol, answers["bob"]["conversation"])),
        return_exceptions=True,
    )
    assert rounds == [3]
    assert results[:2] == [None, None]
    assert isinstance(results[2], ChatError) and results[2].detail == "no such conversation"
    typing = [await sockets["alice"].recv_type("typing") for _ in range(2)]
    assert sorted(frame["user"]["username"] for frame in typing) == ["bob", "carol"]
    # Nobody is told of their own typing, nor Bob of Carol's.
    for name in ("bob", "carol"):
        assert "typing" not in await frame_types_until_quiet(sockets[name])


async def frame_types_until_quiet(socket) -> list[str]:
    """Read what the socket is sent until nothing comes for a moment; return the types."""
    types = []
    while not await socket.nothing(0.3):
        types.append((await socket.recv())["type"])
    return types


def test_two_reads_of_one_pointer_in_a_round_move_it_to_the_further_message(alice, bob):
    from messaging.domain.services import message_send

    first = message_send(sender=alice, to=bob.username, body="one", client_id="r-1").message
    second = message_send(sender=alice, to=bob.username, body="two", client_id="r-2").message
    conversation = first.conversation_id
    # The further one moves it; the other, behind it now, moved nothing.
    assert reading.marks_read(
        [ReadMark(bob, conversation, first.pk), ReadMark(bob, conversation, second.pk)]
    ) == [False, True]
    membership = Membership.objects.get(user=bob, conversation_id=conversation)
    assert membership.last_read_message_id == second.pk
    # Behind the pointer now: nothing moves.
    assert reading.marks_read([ReadMark(bob, conversation, first.pk)]) == [False]
    assert Membership.objects.get(pk=membership.pk).last_read_message_id == second.pk


async def test_a_database_that_fails_answers_read_and_typing_unavailable_and_moves_nothing(
    connect, alice, bob, carol, monkeypatch
):
    from django.db import OperationalError

    sockets, answers = await three_talking(connect, alice, bob, carol)
    to_bob = answers["bob"]

    def down(*args, **kwargs):
        raise OperationalError("the server closed the connection unexpectedly")

    monkeypatch.setattr(reading, "marks_read", down)
    monkeypatch.setattr(reading, "typings", down)
    bob_socket = sockets["bob"]
    refused = await bob_socket.request(
        {"type": "read", "conversation": to_bob["conversation"], "up_to": to_bob["id"]}, "error"
    )
    assert refused["code"] == "unavailable"
    refused = await bob_socket.request(
        {"type": "typing", "conversation": to_bob["conversation"]}, "error"
    )
    assert refused["code"] == "unavailable"
    pointer = await database_sync_to_async(
        lambda: Membership.objects.get(user=bob, conversation_id=to_bob["conversation"])
    )()
    assert pointer.last_read_message_id < to_bob["id"]


async def test_a_read_committed_before_the_routes_failed_is_told_and_not_refused(
    connect, alice, bob, carol, monkeypatch
):
    from django.db import OperationalError

    from messaging.delivery import fanout

    sockets, answers = await three_talking(connect, alice, bob, carol)
    to_bob = answers["bob"]

    def lost(events):
        raise OperationalError("the server closed the connection unexpectedly")

    monkeypatch.setattr(fanout, "routes_for", lost)
    await sockets["bob"].send(
        {"type": "read", "conversation": to_bob["conversation"], "up_to": to_bob["id"]}
    )
    # Through the channel layer instead: Alice and Bob's own socket are told, no error.
    assert (await sockets["alice"].recv_type("read"))["up_to"] == to_bob["id"]
    assert "error" not in await frame_types_until_quiet(sockets["bob"])
