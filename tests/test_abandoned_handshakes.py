"""A handshake whose client left before it was answered (it waited in the listen backlog
past its client's timeout, as in a reconnect storm) is dropped without its work: no
presence row written or deleted, nobody told its user came online or went offline."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from messaging import metrics
from messaging.domain import presence, services
from messaging.domain.tokens import token_issue
from messaging.models import SocketPresence
from messaging.realtime.abandoned import client_left
from messaging.realtime.backpressure import WaitingFrames
from messaging.realtime.opening_batch import CLIENT_LEFT, Refused, opening_batches
from tests.helpers import calls_of

pytestmark = pytest.mark.django_db(transaction=True)


def abandoned(step: str) -> float:
    return metrics.HANDSHAKES_ABANDONED.labels(step)._value.get()


def alice_rows(alice) -> list[str]:
    return sorted(SocketPresence.objects.filter(user=alice).values_list("channel_name", flat=True))


def test_a_queue_knows_its_client_left_once_the_server_says_so():
    frames = WaitingFrames()
    frames.put_nowait({"type": "websocket.connect"})
    assert not client_left(frames.get)
    frames.put_nowait({"type": "websocket.disconnect", "code": 1006})
    assert client_left(frames.get)
    # Under a server whose queue is another kind, no step is skipped.
    assert not client_left(asyncio.Queue().get)


async def test_a_socket_whose_client_left_while_waiting_for_its_turn_writes_nothing(
    connect, alice, bob
):
    send = database_sync_to_async(services.message_send)
    await send(sender=alice, body="hi bob", client_id="1", to="bob")
    await send(sender=bob, body="hi alice", client_id="2", to="alice")
    bob_socket = await connect(bob)
    gone = SimpleNamespace(user=alice, channel_name="gone", scope={}, client_left=lambda: True)
    here = SimpleNamespace(user=alice, channel_name="here", scope={}, client_left=lambda: False)
    answers = await asyncio.gather(
        opening_batches().call(gone), opening_batches().call(here), return_exceptions=True
    )
    assert isinstance(answers[0], Refused) and answers[0].reason == CLIENT_LEFT
    assert not answers[0].written
    assert answers[1]["type"] == "ready"
    assert await database_sync_to_async(alice_rows)(alice) == ["here"]
    assert await bob_socket.recv_type("presence"), "Bob hears of the socket that opened"
    assert await bob_socket.nothing(), "and of nothing else"


async def test_a_handshake_closed_before_its_turn_is_dropped_without_a_word_to_anyone(
    connect, alice, bob, monkeypatch
):
    send = database_sync_to_async(services.message_send)
    await send(sender=alice, body="hi bob", client_id="1", to="bob")
    await send(sender=bob, body="hi alice", client_id="2", to="alice")
    bob_socket = await connect(bob)
    opened = calls_of(monkeypatch, presence, "sockets_opened")
    closed = calls_of(monkeypatch, presence, "sockets_closed")
    before = abandoned("opening")
    from chatsite.asgi import application

    key = await database_sync_to_async(token_issue)(user=alice)
    communicator = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"authorization", f"Bearer {key}".encode())]
    )
    # The request and the client's close, read together: it gave up while it waited.
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(timeout=3)

    assert abandoned("opening") == before + 1
    assert opened == [] and closed == [], "no presence row written, none deleted"
    assert await bob_socket.nothing(), "Bob is told nothing of Alice"
    assert await database_sync_to_async(alice_rows)(alice) == []
    # Alice's next try, still there for its answer, opens as ever.
    alice_socket = await connect(alice)
    assert [u["username"] for u in alice_socket.ready["online"]] == ["bob"]
    shown = await bob_socket.recv_type("presence")
    assert shown["user"]["username"] == "alice" and shown["online"] is True
