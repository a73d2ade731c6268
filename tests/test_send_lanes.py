"""Lanes: batches of different people are stored at once, one person's never are."""

import asyncio
import threading
from types import SimpleNamespace

import pytest

from messaging.delivery import fanout
from messaging.protocol import ChatError, ErrorCode
from messaging.sending import batch as send_batch
from messaging.sending import queue as sending
from messaging.sending.batch import SendOutcome, SendRequest

PEOPLE = {"alice": 1, "bob": 2, "carol": 3, "dave": 4, "erin": 5, "frank": 6}


class _Database:
    """Stands in for the lanes' database: each batch waits inside until let through."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside: list[list[str]] = []
        self.gates: dict[str, threading.Event] = {}

    def send_many(self, requests):
        client_ids = [request.client_id for request in requests]
        gate = threading.Event()
        with self.lock:
            self.inside.append(client_ids)
            self.gates[client_ids[0]] = gate
        gate.wait(10)
        with self.lock:
            self.inside.remove(client_ids)
        refused = [
            SendOutcome(error=ChatError(ErrorCode.NOT_FOUND, "stand-in", client_id=client_id))
            for client_id in client_ids
        ]
        return refused, fanout.Delivery([], {})

    def batches_inside(self) -> list[list[str]]:
        with self.lock:
            return sorted(self.inside)

    def let_through(self, first_client_id: str) -> None:
        self.gates[first_client_id].set()


@pytest.fixture
def database(monkeypatch):
    database = _Database()
    monkeypatch.setattr(sending, "_send_many", database.send_many)
    monkeypatch.setattr(send_batch.known_ids(), "user_ids", dict(PEOPLE))

    async def all_within(self, batch):
        return batch

    monkeypatch.setattr(sending.SendQueue, "_within_rate", all_within)
    yield database
    for gate in database.gates.values():
        gate.set()


class _Answers:
    """The order in which the sends were answered."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def submit(self, queue: sending.SendQueue, sender: str, to: str, client_id: str):
        request = SendRequest(SimpleNamespace(pk=PEOPLE[sender]), "hi", client_id, to=to)
        future = queue.submit(request, consumer=None)
        future.add_done_callback(lambda done: self._answered(done, client_id))
        return future

    def _answered(self, future, client_id: str) -> None:
        future.exception()  # the stand-in refuses every send
        self.order.append(client_id)


async def _until(condition, within: float = 3.0) -> bool:
    for _ in range(int(within / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def test_batches_of_different_people_are_stored_at_once_and_answered_in_order(database):
    queue, answers = sending.SendQueue(lanes=2), _Answers()
    answers.submit(queue, "alice", "bob", "a-1")
    assert await _until(lambda: database.batches_inside() == [["a-1"]])
    # Bob is in the batch being stored: his send waits for it, though a lane is free ...
    answers.submit(queue, "bob", "erin", "b-1")
    await asyncio.sleep(0.1)
    assert database.batches_inside() == [["a-1"]]
    # ... which takes the next send of other people.
    answers.submit(queue, "carol", "dave", "c-1")
    assert await _until(lambda: database.batches_inside() == [["a-1"], ["c-1"]])
    database.let_through("c-1")
    assert await _until(lambda: database.batches_inside() == [["a-1"]])
    await asyncio.sleep(0.1)
    assert database.batches_inside() == [["a-1"]]
    database.let_through("a-1")
    assert await _until(lambda: database.batches_inside() == [["b-1"]])
    database.let_through("b-1")
    assert await _until(lambda: len(answers.order) == 3)
    # The second batch was stored first, but is answered after the first.
    assert answers.order == ["a-1", "c-1", "b-1"]


async def test_a_send_to_someone_not_known_yet_waits_until_it_can_be_stored_alone(database):
    queue, answers = sending.SendQueue(lanes=2), _Answers()
    answers.submit(queue, "alice", "bob", "a-1")
    assert await _until(lambda: database.batches_inside() == [["a-1"]])
    # Nobody knows whom "stranger" is: that send may stamp anyone's stream.
    answers.submit(queue, "carol", "stranger", "c-1")
    # Carol's next send stays behind her first, though its people are known.
    answers.submit(queue, "carol", "dave", "c-2")
    answers.submit(queue, "erin", "frank", "e-1")
    assert await _until(lambda: database.batches_inside() == [["a-1"], ["e-1"]])
    database.let_through("a-1")
    await asyncio.sleep(0.1)
    assert database.batches_inside() == [["e-1"]]
    database.let_through("e-1")
    assert await _until(lambda: database.batches_inside() == [["c-1", "c-2"]])
    # While a batch of people not known is stored, nothing else is.
    answers.submit(queue, "frank", "alice", "f-1")
    await asyncio.sleep(0.1)
    assert database.batches_inside() == [["c-1", "c-2"]]
    database.let_through("c-1")
    assert await _until(lambda: database.batches_inside() == [["f-1"]])
    database.let_through("f-1")
    assert await _until(lambda: len(answers.order) == 5)
    assert answers.order == ["a-1", "e-1", "c-1", "c-2", "f-1"]


async def test_while_a_large_batch_is_stored_the_other_sends_gather_for_the_next(database):
    queue, answers = sending.SendQueue(lanes=2), _Answers()
    answers.submit(queue, "alice", "bob", "a-1")
    assert await _until(lambda: database.batches_inside() == [["a-1"]])
    for sender, to, client_id in [("bob", "carol", "b-1"), ("alice", "carol", "a-2")]:
        answers.submit(queue, sender, to, client_id)
    answers.submit(queue, "erin", "frank", "e-1")
    assert await _until(lambda: database.batches_inside() == [["a-1"], ["e-1"]])
    answers.submit(queue, "bob", "dave", "b-2")
    database.let_through("a-1")
    large = ["b-1", "a-2", "b-2"]
    assert await _until(lambda: database.batches_inside() == [large, ["e-1"]])
    database.let_through("e-1")
    assert await _until(lambda: database.batches_inside() == [large])
    # Frank and Erin are not in the large batch, but a rate that makes such batches is
    # better served by gathering sends than by a batch beside it.
    answers.submit(queue, "frank", "erin", "f-1")
    answers.submit(queue, "erin", "frank", "e-2")
    await asyncio.sleep(0.1)
    assert database.batches_inside() == [large]
    database.let_through("b-1")
    assert await _until(lambda: database.batches_inside() == [["f-1", "e-2"]])
    database.let_through("f-1")
    assert await _until(lambda: len(answers.order) == 7)
    assert answers.order == ["a-1", "e-1", *large, "f-1", "e-2"]


async def test_a_batch_cancelled_before_its_turn_frees_its_lane_and_blocks_no_one_wrongly(
    database, monkeypatch
):
    held = asyncio.Event()
    deliver = sending.SendQueue._deliver

    async def held_delivery(self, *stored):
        await held.wait()
        await deliver(self, *stored)

    monkeypatch.setattr(sending.SendQueue, "_deliver", held_delivery)
    queue, answers = sending.SendQueue(lanes=2), _Answers()
    answers.submit(queue, "erin", "frank", "e-1")
    assert await _until(lambda: database.batches_inside() == [["e-1"]])
    database.let_through("e-1")
    assert await _until(lambda: not queue._storing)
    # Stored, and waiting for the delivery of the batch before: then cancelled.
    answers.submit(queue, "carol", "dave", "c-1")
    waiting_its_turn = queue._latest
    assert await _until(lambda: database.batches_inside() == [["c-1"]])
    database.let_through("c-1")
    assert await _until(lambda: not queue._storing)
    answers.submit(queue, "alice", "bob", "a-1")
    assert await _until(lambda: database.batches_inside() == [["a-1"]])
    waiting_its_turn.cancel()
    assert await _until(lambda: waiting_its_turn.done())
    # Its lane is free again, but bob's send still waits for the batch holding bob.
    answers.submit(queue, "bob", "erin", "b-1")
    await asyncio.sleep(0.1)
    assert database.batches_inside() == [["a-1"]]
    held.set()
    database.let_through("a-1")
    assert await _until(lambda: database.batches_inside() == [["b-1"]])
    database.let_through("b-1")
    assert await _until(lambda: len(answers.order) == 4)
    assert sorted(queue._free_lanes) == [0, 1]
