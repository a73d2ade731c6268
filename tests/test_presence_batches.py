"""Handshakes waiting at the same time are opened in one database call, each with its own
`ready` (its last stamp, who it may see online) and refusal, as if opened one by one; sockets
closing at the same time are cleaned up in one call, whoever has none left announced
offline to whoever may see them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async

from messaging.domain import blocks, presence, services
from messaging.models import SocketPresence
from messaging.realtime import opening_batch
from messaging.realtime.closing_batch import closing_batches
from messaging.realtime.opening_batch import Refused, opening_batches
from tests.helpers import calls_of

pytestmark = pytest.mark.django_db(transaction=True)


def socket(user, name: str, *, left: bool = False):
    return SimpleNamespace(user=user, channel_name=name, scope={}, client_left=lambda: left)


async def test_handshakes_waiting_together_are_opened_in_one_call_each_with_its_ready(
    alice, bob, carol, make_user, settings, monkeypatch
):
    dave = await database_sync_to_async(make_user)(username="dave")
    # Alice and Bob showed themselves to each other; Carol wrote to Alice, and to Dave
    # before she blocked him: he would see her but for the block.
    send = database_sync_to_async(services.message_send)
    await send(sender=alice, body="hi bob", client_id="1", to="bob")
    to_alice = (await send(sender=bob, body="hi alice", client_id="2", to="alice")).message
    to_dave = (await send(sender=carol, body="hi dave", client_id="3", to="dave")).message
    last = (await send(sender=carol, body="hi alice", client_id="4", to="alice")).message
    await database_sync_to_async(blocks.block_create)(blocker=carol, username="dave")
    settings.CHAT_MAX_SOCKETS_PER_USER = 1
    calls = []
    real = opening_batch.open_sockets

    def counted(**kwargs):
        calls.append(len(kwargs["sockets"]))
        return real(**kwargs)

    monkeypatch.setattr(opening_batch, "open_sockets", counted)
    batches = opening_batches()
    opening = [
        socket(alice, "a1"),
        socket(bob, "b1"),
        socket(alice, "a2"),  # over Alice's cap of one
        socket(carol, "c1"),
        socket(dave, "d1"),
    ]
    answers = await asyncio.gather(*(batches.call(s) for s in opening), return_exceptions=True)

    assert calls == [5], "one database call for the five"
    alice_ready, bob_ready, refused, carol_ready, dave_ready = answers
    assert isinstance(refused, Refused) and refused.reason == "too_many_sockets"
    assert alice_ready["user"] == {"id": alice.pk, "username": "alice"}
    assert alice_ready["last_seq"] == last.seq
    assert bob_ready["last_seq"] == to_alice.seq, "the stamp of his own conversation"
    assert dave_ready["last_seq"] == to_dave.seq
    # Each sees who opened with them, as far as each was shown to them.
    assert [u["username"] for u in alice_ready["online"]] == ["bob", "carol"]
    assert [u["username"] for u in bob_ready["online"]] == ["alice"]
    assert carol_ready["online"] == [], "Alice has not written to her"
    assert dave_ready["online"] == []
    rows = await database_sync_to_async(
        lambda: sorted(SocketPresence.objects.values_list("channel_name", flat=True))
    )()
    assert rows == ["a1", "b1", "c1", "d1"]


async def test_a_handshake_past_its_deadline_is_refused_without_writing(alice, bob):
    late = socket(alice, "late")
    late.scope["give_up_at"] = 0.0
    answers = await asyncio.gather(
        opening_batches().call(late),
        opening_batches().call(socket(bob, "on-time")),
        return_exceptions=True,
    )
    assert isinstance(answers[0], Refused) and answers[0].reason == "too_late"
    assert answers[1]["type"] == "ready"
    names = await database_sync_to_async(
        lambda: list(SocketPresence.objects.values_list("channel_name", flat=True))
    )()
    assert names == ["on-time"]


async def test_sockets_closing_together_are_cleaned_up_in_one_call(
    connect, alice, bob, carol, monkeypatch
):
    send = database_sync_to_async(services.message_send)
    await send(sender=alice, body="hi bob", client_id="1", to="bob")
    await send(sender=carol, body="hi bob", client_id="2", to="bob")
    bob_socket = await connect(bob)
    opened = [socket(alice, "a1"), socket(alice, "a2"), socket(carol, "c1")]
    await asyncio.gather(*(opening_batches().call(s) for s in opened))
    shown = [await bob_socket.recv_type("presence") for _ in range(2)]
    assert {frame["user"]["username"] for frame in shown} == {"alice", "carol"}
    rounds = calls_of(monkeypatch, presence, "sockets_closed")
    # Alice closes one of her two sockets, Carol her only one.
    await asyncio.gather(
        closing_batches().call((alice, "a1")), closing_batches().call((carol, "c1"))
    )
    assert [len(call["closings"]) for call in rounds] == [2]
    gone = await bob_socket.recv()
    assert gone["type"] == "presence" and gone["online"] is False
    assert gone["user"]["username"] == "carol"
    assert await bob_socket.nothing(), "Alice still has a socket: no word of her"
    rows = await database_sync_to_async(
        lambda: list(SocketPresence.objects.values_list("channel_name", flat=True))
    )()
    assert "a2" in rows and "a1" not in rows and "c1" not in rows and len(rows) == 2
