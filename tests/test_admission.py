"""A process works on a bounded number of handshakes at once; it turns the others away as
`busy` with a time to come back, each a later one, so that a reconnect storm drains."""

from __future__ import annotations

import json
import random

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chatsite.asgi import application
from messaging.domain.tokens import token_issue
from messaging.realtime.admission import AdmitHandshakes, HandshakeGate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate(at_once: int = 4, pace_guess: float = 10, clock=None) -> HandshakeGate:
    return HandshakeGate(
        at_once=at_once,
        pace_guess=pace_guess,
        min_wait_s=1,
        max_wait_s=60,
        clock=clock or Clock(),
        rng=random.Random(7),
    )


def test_past_the_bound_a_handshake_gets_no_place_until_one_is_given_back():
    g = gate(at_once=2)
    assert g.enter() and g.enter()
    assert not g.enter()
    g.leave()
    assert g.enter()
    assert g.in_progress == 2


def test_the_turned_away_are_given_later_and_later_turns_at_the_pace_guessed():
    g = gate(pace_guess=10)
    waits = [g.return_in() for _ in range(40)]
    # At 10 a second from the least wait on, rounded up to whole seconds (the client adds up
    # to a second of jitter): ten a second.
    assert waits[0] == 1
    assert waits[1:11] == [2] * 10
    assert waits[11:21] == [3] * 10
    assert waits[31:] == [5] * 9


def test_the_pace_measured_while_saturated_replaces_the_guess():
    clock = Clock()
    g = gate(at_once=4, pace_guess=10, clock=clock)
    for _ in range(4):
        assert g.enter()
    for _ in range(30):  # 50 handshakes a second finished by a saturated process
        clock.now += 0.02
        g.leave()
        assert g.enter()
    assert g.pace() == pytest.approx(50)
    waits = [g.return_in() for _ in range(100)]
    assert waits[-1] == 3, "100 turns at 50 a second end two seconds after the least wait"
    # An idle process's pace says nothing; an old measurement is forgotten.
    clock.now += 60
    assert g.pace() == 10


def test_a_slower_pace_measured_while_turning_a_storm_away_does_not_lower_the_guess():
    clock = Clock()
    g = gate(at_once=4, pace_guess=10, clock=clock)
    for _ in range(4):
        assert g.enter()
    for _ in range(30):  # 2 a second: the process busy answering the storm's first wave
        clock.now += 0.5
        g.leave()
        assert g.enter()
    assert g.pace() == 10


def test_more_than_the_longest_wait_covers_come_back_over_its_second_half():
    g = gate(pace_guess=1)  # 60 turns fill the longest wait
    waits = [g.return_in() for _ in range(200)]
    assert max(waits) <= 60
    late = waits[61:]
    assert all(30 <= w <= 60 for w in late)
    assert len(set(late)) > 10, "spread, not all in the same second"


async def communicate(app) -> tuple[list[dict], int | None]:
    """Open a socket to `app`; return the frames it got and its close code."""
    communicator = WebsocketCommunicator(app, "/ws/chat/")
    connected, _ = await communicator.connect(timeout=5)
    assert connected, "a busy answer is an accepted socket, so that the client can read it"
    frames = []
    while True:
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return frames, output.get("code")
        frames.append(json.loads(output["text"]))


async def test_a_busy_process_answers_busy_with_its_turn_and_closes_1013():
    reached = []

    async def inner(scope, receive, send):
        reached.append(scope)

    admit = AdmitHandshakes(inner, gate(at_once=1))
    admit.gate.enter()  # the one place is taken
    frames, code = await communicate(admit)
    assert code == 1013
    assert frames == [
        {
            "type": "error",
            "code": "busy",
            "detail": "the server is busy: try again after retry_after seconds",
            "retry_after": 1,
        }
    ]
    assert reached == [], "nothing of the handshake ran: no authentication, no database"
    _, _ = await communicate(admit)
    assert admit.gate.in_progress == 1


@pytest.mark.django_db(transaction=True)
async def test_a_place_is_given_back_once_the_socket_is_ready_or_refused(alice):
    admit = application.application_mapping["websocket"]
    assert isinstance(admit, AdmitHandshakes)
    before = admit.gate.in_progress
    key = await database_sync_to_async(token_issue)(user=alice)
    communicator = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"authorization", f"Bearer {key}".encode())]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "ready"
    assert admit.gate.in_progress == before, "an open socket holds no place"
    await communicator.disconnect()

    refused = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"authorization", b"Bearer wrong")]
    )
    connected, _ = await refused.connect(timeout=5)
    assert not connected
    await refused.wait(timeout=2)
    assert admit.gate.in_progress == before, "a refused handshake gives its place back"
