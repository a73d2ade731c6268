"""While every handshake place is taken a process stops taking connections, so that a crowd
opening sockets at once waits in the kernel's queue instead of being turned away `busy`
(messaging/realtime/accept_pause.py)."""

from __future__ import annotations

import asyncio
import re
import urllib.request

import pytest
from channels.db import database_sync_to_async

from messaging.client import ChatClient
from messaging.domain.tokens import token_issue
from messaging.realtime.accept_pause import ListeningPorts
from messaging.realtime.admission import HandshakeGate
from tests.factories import UserFactory
from tests.live import Daphne, serving


class Port:
    """A listening port: whether it takes connections, and how many a turn it may take."""

    def __init__(self) -> None:
        self.reading = True
        self.connected = True
        self.numberAccepts = 100
        self.turns: list[int] = []

    def doRead(self) -> None:
        self.turns.append(self.numberAccepts)
        self.numberAccepts += 20  # as Twisted does after a turn that took all it could

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        assert self.connected, "a port that stopped listening is left alone"
        self.reading = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def paced(at_once: int = 4, longest_pause_s: float = 2.0):
    port, clock = Port(), Clock()
    listening = ListeningPorts(longest_pause_s=longest_pause_s, clock=clock)
    listening.add(port)
    gate = HandshakeGate(
        at_once=at_once, pace_guess=10, min_wait_s=1, max_wait_s=60, listening=listening
    )
    return gate, listening, port, clock


async def test_a_turn_takes_only_what_the_places_and_the_line_have_room_for():
    gate, listening, port, _ = paced(at_once=4)
    port.doRead()
    assert port.turns == [8], "four places and four spots in line"
    taken = [listening.taken() for _ in range(3)]
    port.doRead()
    assert port.turns[-1] == 5, "three taken have not sent their request yet"
    for taken_at in taken:
        listening.heard(taken_at)
        assert gate.enter()
    assert gate.enter()
    port.doRead()
    assert port.turns[-1] == 4, "every place taken: only the line is left"


async def test_connections_that_send_nothing_stop_the_turns_for_a_second_at_most():
    _, listening, port, clock = paced(at_once=2, longest_pause_s=5)
    for _ in range(50):  # an idle crowd, far past the gate's room
        listening.taken()
    port.doRead()
    assert not port.reading and port.turns == [], "no room left for now"
    assert listening._timeout.when() - asyncio.get_running_loop().time() <= 1.0
    clock.now += 1.5
    assert listening.unheard() == 0, "forgotten after a second"
    listening.resume()
    port.doRead()
    assert port.turns == [4]


async def test_a_request_heard_makes_room_and_the_port_takes_connections_again():
    _, listening, port, _ = paced(at_once=2)
    taken = [listening.taken() for _ in range(4)]
    port.doRead()
    assert not port.reading
    listening.heard(taken[0])
    assert port.reading, "room for one again: half the places"


async def test_a_request_heard_after_its_connection_was_forgotten_counts_for_no_other():
    _, listening, _, clock = paced()
    late = listening.taken()
    clock.now += 1.5
    listening.taken()
    listening.heard(late)
    assert listening.unheard() == 1


async def test_with_no_room_the_port_stops_taking_connections_until_half_the_places_are_free():
    gate, _, port, _ = paced(at_once=4)
    for _ in range(4):
        assert gate.enter()
    waiting = [asyncio.ensure_future(gate.wait_for_place(5)) for _ in range(4)]
    await asyncio.sleep(0)
    port.doRead()
    assert not port.reading and len(port.turns) == 0, "no room: nothing taken, port paused"
    gate.leave()  # the first in line gets the place
    assert await waiting[0] is True
    assert not port.reading, "one spot in line is not worth a turn"
    gate.leave()
    gate.leave()
    gate.leave()
    assert all([await w for w in waiting[1:]])
    assert port.reading, "the line is empty: room for half as many as the places"
    assert gate.in_progress == 4


async def test_a_handshake_that_leaves_the_line_makes_room_and_holds_no_spot():
    gate, listening, port, _ = paced(at_once=1)
    assert gate.enter()
    waiting = asyncio.ensure_future(gate.wait_for_place(0.05))
    await asyncio.sleep(0)
    port.doRead()
    assert not port.reading
    assert await waiting is False, "waited no longer than its patience"
    assert port.reading, "its spot in the line is free again"
    assert listening.gate_room() == 1
    waiting = asyncio.ensure_future(gate.wait_for_place(5))
    await asyncio.sleep(0)
    waiting.cancel()  # the client went away
    await asyncio.gather(waiting, return_exceptions=True)
    gate.leave()
    assert gate.in_progress == 0, "a place is not handed to a handshake that went away"


async def test_a_pause_ends_by_itself_and_spares_a_port_that_stopped_listening():
    gate, listening, port, _ = paced(at_once=1, longest_pause_s=0.2)
    stopped = Port()
    listening.add(stopped)
    assert gate.enter()
    waiting = asyncio.ensure_future(gate.wait_for_place(5))
    await asyncio.sleep(0)
    port.doRead()
    assert not port.reading
    stopped.connected = False
    await asyncio.sleep(0.4)
    assert port.reading, "handshakes that hang never stop the process from listening"
    gate.leave()
    assert await waiting is True


def scraped(server: Daphne, name: str) -> float:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(found[1]) if found else 0.0


CROWD = 120
AT_ONCE = 8


@pytest.fixture
def small_gate_server(transactional_db, tmp_path):
    # An endpoint's own backlog, kept: what the kernel holds is a turn or two of the gate.
    options = {"env": {"CHAT_HANDSHAKES_AT_ONCE": str(AT_ONCE)}, "backlog": 2 * AT_ONCE}
    with serving(tmp_path, **options) as server:
        yield server


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
async def test_a_crowd_opening_at_once_waits_its_turn_and_is_hardly_ever_turned_away(
    small_gate_server,
):
    server = small_gate_server

    def tokens() -> list[str]:
        return [token_issue(user=UserFactory()) for _ in range(CROWD)]

    keys = await database_sync_to_async(tokens)()
    clients = [ChatClient(server.ws_url, key) for key in keys]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(client.connect(retry_for=40) for client in clients)), 60
        )
        assert all(client.user is not None for client in clients), "every socket is ready"
        busy = scraped(server, 'chat_handshakes_refused_total{reason="busy"}')
        # Turned away: only what was taken in the instant before a pause (without pausing,
        # most of the crowd is).
        assert busy <= CROWD // 4, f"{busy:.0f} of {CROWD} handshakes answered busy"
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
async def test_sockets_opened_below_the_bound_never_stop_the_process_taking_connections(tmp_path):
    # Each connection taken is counted until its request comes: were it never heard of,
    # ordinary traffic would fill the gate's room and the process would stall.
    with serving(tmp_path) as server:  # 100 places

        def tokens() -> list[str]:
            return [token_issue(user=UserFactory()) for _ in range(300)]

        keys = await database_sync_to_async(tokens)()
        at_a_time = asyncio.Semaphore(40)

        async def open_one(key: str) -> ChatClient:
            async with at_a_time:
                return await ChatClient(server.ws_url, key).connect(retry_for=20)

        clients = await asyncio.wait_for(asyncio.gather(*(open_one(k) for k in keys)), 60)
        assert scraped(server, "chat_accept_pauses_total") == 0
        assert scraped(server, 'chat_handshakes_refused_total{reason="busy"}') == 0
        await asyncio.gather(*(client.close() for client in clients))
