"""Group commit for `message.send`: the sends that arrive while the database is busy with
one batch are stored together in the next (messaging.sending.batch), in one transaction; on
PostgreSQL a second lane stores a small batch of other people beside it (SendQueue).

Each sender is acked only after its batch committed, so a message is still stored before
anyone is told of it; the batch's events are published in commit order after every ack.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from messaging import metrics
from messaging.delivery import fanout
from messaging.domain import services
from messaging.domain.ratelimit import limiter, parse_rules
from messaging.protocol import ChatError, ErrorCode
from messaging.sending import batch as send_batch
from messaging.sending.batch import SendOutcome, SendRequest, messages_send_many
from messaging.singletons import per_event_loop

log = logging.getLogger(__name__)

# Sends stored in one transaction at most; more wait for the next batch.
MAX_BATCH = 500

# The most sends a batch may hold for another to be stored beside it.
OVERLAP_MAX = 2

# Batches run on threads (and database connections) of their own, lanes, so that they never
# wait behind the other database work of the process (handshakes, heartbeats, syncs), which
# shares the thread of database_sync_to_async. On PostgreSQL two lanes store batches of
# different people at once: at a low rate a send no longer waits for the batch before it
# (2,000 users at 200 DMs/s: mean send latency 8.6-11.2 -> 5.7-6.0 ms). SQLite takes one
# writer at a time, so it has one lane.
_LANES = [
    ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"chat-sends-{lane}") for lane in range(2)
]


def lane_count() -> int:
    """Return how many batches this process stores at once."""
    return len(_LANES) if connection.vendor == "postgresql" else 1


def _send_many(requests: list[SendRequest]) -> tuple[list[SendOutcome], fanout.Delivery]:
    # Each lane keeps its connection from one batch to the next: a loan from the pool, with
    # its check, took longer than storing a batch of one send.
    _drop_dead_connection()
    return messages_send_many(requests)


def _drop_dead_connection() -> None:
    """Close the kept connection if it failed, or if the database ended it meanwhile.

    An idle connection has nothing to read unless the server closed it (a restart, a
    terminated backend): one look at its socket, no round trip, so that the first batch
    after a database restart gets a fresh connection instead of an error.
    """
    if connection.connection is None:
        return
    if connection.errors_occurred or _ended_by_server():
        connection.close()


def _ended_by_server() -> bool:
    # PostgreSQL's backend tells without a round trip (chatsite/postgresql/base.py); SQLite
    # has no server to end it.
    ended = getattr(connection, "ended_by_server", None)
    return ended is not None and ended()


def close_send_connection() -> None:
    """Close the connections the lanes keep (before a database is dropped)."""
    for lane in _LANES:
        lane.submit(lambda: connection.close()).result()


@dataclass
class _Waiting:
    request: SendRequest
    consumer: Any
    future: asyncio.Future
    queued_at: float
    # Whose change streams the send would stamp, as far as this process knows (None: not
    # known, so anyone's).
    people: frozenset[int] | None

    def holds_back(self) -> frozenset[int]:
        """Return whose later sends must wait while this one waits (keeping their order)."""
        return self.people or frozenset((self.request.sender.pk,))

    def refuse(self, error: BaseException) -> None:
        # A socket that went away meanwhile cancelled its future: nobody is waiting.
        if not self.future.done():
            self.future.set_exception(error)

    def answer(self, result: services.SendResult) -> None:
        if not self.future.done():
            self.future.set_result(result)


class SendQueue:
    """This event loop's sends waiting for the database, stored in batches, lane by lane.

    A batch takes everything waiting when no other is being stored. While a small one is,
    another lane takes only the sends of people that batch does not involve, so that no
    two batches being stored lock the same change stream: each person's stamps, acks and
    pushes stay in commit order. Batches are acked and pushed in the order they were
    taken, each after the one before; while the sockets get one batch's, the lanes store
    the next ones, but run at most one batch per lane ahead of the sockets.
    """

    def __init__(self, lanes: int = 1) -> None:
        self.waiting: list[_Waiting] = []
        self._free_lanes = list(range(lanes))
        # Lane -> the people of the batch it is storing (None: anyone, or a large batch).
        self._storing: dict[int, frozenset[int] | None] = {}
        # While a lane is free and another stores: the people no batch may take now, those
        # being stored and those of every send left waiting (None: anyone).
        self._blocked: set[int] | None = set()
        # The latest batch taken: each is acked and pushed after the one before.
        self._latest: asyncio.Task | None = None

    def submit(self, request: SendRequest, consumer) -> asyncio.Future:
        """Queue a send; the future ends once it is acked (or holds its refusal)."""
        future = asyncio.get_running_loop().create_future()
        people = send_batch.people_of(request)
        waiting = _Waiting(request, consumer, future, time.perf_counter(), people)
        self.waiting.append(waiting)
        if not self._free_lanes:
            return future
        if not self._storing:
            self._start_batches()
        elif self._blocked is not None:
            # The sends waiting before this one are all blocked: only this one may start.
            if people is not None and self._blocked.isdisjoint(people):
                self.waiting.pop()
                self._blocked.update(people)
                self._start([waiting], people)
            else:
                self._blocked.update(waiting.holds_back())
        return future

    def _start_batches(self) -> None:
        """Start a batch on each free lane that has sends it may take."""
        while self._free_lanes:
            if self._storing:
                batch, people = self._take_unblocked()
            else:
                batch = self.waiting[:MAX_BATCH]
                del self.waiting[:MAX_BATCH]
                known = [waiting.people for waiting in batch]
                people = None if None in known else frozenset().union(*known)
            if not batch:
                return
            self._start(batch, people)

    def _take_unblocked(self) -> tuple[list[_Waiting], frozenset[int]]:
        """Take the sends of people that no batch being stored involves."""
        if None in self._storing.values():
            self._blocked = None
            return [], frozenset()
        blocked = set().union(*self._storing.values())
        batch, left, people = [], [], set()
        for waiting in self.waiting:
            if (
                len(batch) < MAX_BATCH
                and waiting.people is not None
                and blocked.isdisjoint(waiting.people)
            ):
                batch.append(waiting)
                people.update(waiting.people)
            else:
                # A send left waiting holds back every later one of its people, so that
                # each person's sends are stored in the order they came.
                left.append(waiting)
                blocked.update(waiting.holds_back())
        self.waiting = left
        self._blocked = blocked | people
        return batch, frozenset(people)

    def _start(self, batch: list[_Waiting], people: frozenset[int] | None) -> None:
        # The first lane whenever it is free: at low rates it does nearly all the work and
        # its kept connection stays warm, while the second's is seldom needed.
        lane = min(self._free_lanes)
        self._free_lanes.remove(lane)
        now = time.perf_counter()
        for waiting in batch:
            metrics.SEND_WAITING.observe(now - waiting.queued_at)
        # A batch of more than a few sends means a high rate, where storing two batches at
        # once costs more CPU than it saves in waiting: the sends gather for the next.
        self._storing[lane] = people if len(batch) <= OVERLAP_MAX else None
        self._latest = asyncio.get_running_loop().create_task(
            self._process(lane, batch, after=self._latest)
        )

    async def _process(self, lane: int, batch: list[_Waiting], *, after) -> None:
        """Store a batch on its lane, then ack and push it after the batch before."""
        released = False
        try:
            try:
                stored = await self._store(lane, batch)
            except Exception as exc:
                log.exception("a batch of %d sends failed", len(batch))
                for waiting in batch:
                    waiting.refuse(exc)
                stored = None
            finally:
                # Committed (or failed): its people may be stored by another lane now.
                del self._storing[lane]
                self._start_batches()
            if after is not None:
                # wait(), not await: a batch before that failed or was cancelled must not
                # stop this one, nor every one after it.
                await asyncio.wait([after])
            # The lane stores the next batch while this one is acked and pushed.
            self._free_lanes.append(lane)
            released = True
            self._start_batches()
            if stored is not None:
                await self._deliver(*stored)
        finally:
            if not released:
                # Cancelled before its turn: the sends waiting may go now.
                self._free_lanes.append(lane)
                self._start_batches()
            # Failed or cancelled midway: nobody may wait for ever. A retry with the same
            # client_id gets its ack if the batch was stored.
            _refuse_unavailable(batch, "server error; retry later")

    async def _store(
        self, lane: int, batch: list[_Waiting]
    ) -> tuple[list[_Waiting], list[SendOutcome], fanout.Delivery, float] | None:
        """Count the sends against their limits, store the ones within in one transaction.

        Return them with their outcomes and the time of the commit; None if there were
        none or the database failed.
        """
        counting = time.perf_counter()
        batch = await self._within_rate(batch)
        metrics.SEND_RATE_LIMIT.observe(time.perf_counter() - counting)
        if not batch:
            return None
        metrics.SEND_BATCH_SIZE.observe(len(batch))
        started = time.perf_counter()
        try:
            outcomes, delivery = await sync_to_async(
                _send_many, thread_sensitive=False, executor=_LANES[lane]
            )([waiting.request for waiting in batch])
            committed = time.perf_counter()
            metrics.SEND_BATCH_SECONDS.observe(committed - started)
        except (OperationalError, InterfaceError) as exc:
            metrics.DATABASE_ERRORS.inc()
            log.warning("database unavailable: %s", str(exc).split("\n")[0][:200])
            _refuse_unavailable(batch, "the database did not answer; nothing was stored")
            return None
        return batch, outcomes, delivery, committed

    async def _deliver(
        self,
        batch: list[_Waiting],
        outcomes: list[SendOutcome],
        delivery: fanout.Delivery,
        committed: float,
    ) -> None:
        """Ack a stored batch's senders, then push its events."""
        try:
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if outcome.error is not None:
                    waiting.refuse(outcome.error)
                    continue
                await waiting.consumer.send_frame(
                    {
                        "type": "message.ack",
                        "client_id": waiting.request.client_id,
                        "message": outcome.result.message_shown(),
                    }
                )
                acked = time.perf_counter()
                metrics.SEND_ACKING.observe(acked - committed)
                metrics.SEND_LATENCY.observe(acked - waiting.queued_at)
                if outcome.result.created:
                    metrics.MESSAGES_STORED.inc()
                waiting.answer(outcome.result)
            # In commit order, after every ack: a socket sees its ack before the copy.
            await fanout.publish(delivery.events, delivery.routes)
        except Exception:
            # The sends not acked yet are refused once this returns (_process).
            log.exception("delivering a batch of %d sends failed", len(batch))

    async def _within_rate(self, batch: list[_Waiting]) -> list[_Waiting]:
        """Count every send against its sender's limits; refuse the ones over them."""
        waits = await limiter().retry_after_many(
            "send",
            [waiting.request.sender.pk for waiting in batch],
            parse_rules(settings.CHAT_SEND_RATE),
        )
        kept = []
        for waiting, wait in zip(batch, waits, strict=True):
            if wait is None:
                kept.append(waiting)
                continue
            waiting.refuse(
                ChatError(
                    ErrorCode.RATE_LIMITED,
                    f"too many send requests; wait {wait} s",
                    client_id=waiting.request.client_id,
                    retry_after=wait,
                )
            )
        return kept


def _refuse_unavailable(batch: list[_Waiting], message: str) -> None:
    """Answer every send of the batch not answered yet with `unavailable`."""
    for waiting in batch:
        waiting.refuse(
            ChatError(ErrorCode.UNAVAILABLE, message, client_id=waiting.request.client_id)
        )


send_queue = per_event_loop(lambda: SendQueue(lane_count()))
send_queue.__doc__ = "Return this event loop's send queue."
