"""Group commit for `message.send`: the sends that arrive while the database is busy with
one batch are stored together in the next (messaging.send_batch), in one transaction.

Each sender is acked only after its batch committed, so a message is still stored before
anyone is told of it; the batch's events are published in commit order after every ack.
"""

from __future__ import annotations

import asyncio
import logging
import select
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from messaging import fanout, metrics, services
from messaging.protocol import ChatError, ErrorCode, message_data
from messaging.ratelimit import limiter, parse_rules
from messaging.send_batch import SendOutcome, SendRequest, messages_send_many

log = logging.getLogger(__name__)

# Sends stored in one transaction at most; more wait for the next batch.
MAX_BATCH = 500

# Batches run on a thread (and database connection) of their own, so that they never wait
# behind the other database work of the process (handshakes, heartbeats, syncs), which
# shares the thread of database_sync_to_async. One thread: batches run one at a time.
_SEND_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-sends")


def _send_many(requests: list[SendRequest]) -> tuple[list[SendOutcome], fanout.Delivery]:
    # The batches' thread keeps its connection from one batch to the next: a loan from the
    # pool, with its check, took longer than storing a batch of one send.
    _drop_dead_connection()
    return messages_send_many(requests)


def _drop_dead_connection() -> None:
    """Close the kept connection if it failed, or if the database ended it meanwhile.

    An idle connection has nothing to read unless the server closed it (a restart, a
    terminated backend): one look at its socket, no round trip, so that the first batch
    after a database restart gets a fresh connection instead of an error.
    """
    raw = connection.connection
    if raw is None:
        return
    if connection.errors_occurred or _ended_by_server(raw):
        connection.close()


def _ended_by_server(raw) -> bool:
    pgconn = getattr(raw, "pgconn", None)
    if pgconn is None:
        return False  # SQLite: no server
    try:
        if raw.closed:
            return True
        # poll, not select: a process with thousands of sockets has descriptors past 1024.
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except Exception:
        return True


def close_send_connection() -> None:
    """Close the connection the batches' thread keeps (before a database is dropped)."""
    _SEND_THREAD.submit(lambda: connection.close()).result()


@dataclass
class _Waiting:
    request: SendRequest
    consumer: Any
    future: asyncio.Future
    queued_at: float

    def refuse(self, error: BaseException) -> None:
        # A socket that went away meanwhile cancelled its future: nobody is waiting.
        if not self.future.done():
            self.future.set_exception(error)

    def answer(self, result: services.SendResult) -> None:
        if not self.future.done():
            self.future.set_result(result)


class SendQueue:
    """This event loop's sends waiting for the database, stored in batches by one task.

    While the database stores one batch, the sockets get the acks and pushes of the one
    before: the database does not wait for them.
    """

    def __init__(self) -> None:
        self.waiting: list[_Waiting] = []
        self._task: asyncio.Task | None = None
        # The acks and pushes of the latest stored batch; each batch's wait for the one
        # before, so that they go out in commit order.
        self._delivering: asyncio.Task | None = None

    def submit(self, request: SendRequest, consumer) -> asyncio.Future:
        """Queue a send; the future ends once it is acked (or holds its refusal)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append(_Waiting(request, consumer, future, time.perf_counter()))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return future

    async def _run(self) -> None:
        while self.waiting:
            batch = self.waiting[:MAX_BATCH]
            del self.waiting[:MAX_BATCH]
            try:
                stored = await self._store(batch)
            except Exception as exc:
                log.exception("a batch of %d sends failed", len(batch))
                for waiting in batch:
                    waiting.refuse(exc)
                continue
            if stored is None:
                continue
            # The next batch goes to the database while this one's acks and pushes go out:
            # the database need not wait for the sockets.
            before = self._delivering
            self._delivering = asyncio.get_running_loop().create_task(
                self._deliver(*stored, after=before)
            )
            if before is not None and not before.done():
                # But the sockets may fall behind by one batch at most.
                await asyncio.wait([before])

    async def _store(
        self, batch: list[_Waiting]
    ) -> tuple[list[_Waiting], list[SendOutcome], fanout.Delivery] | None:
        """Count the sends against their limits, store the ones within in one transaction.

        Return them with their outcomes; None if there were none or the database failed.
        """
        batch = await self._within_rate(batch)
        if not batch:
            return None
        metrics.SEND_BATCH_SIZE.observe(len(batch))
        started = time.perf_counter()
        try:
            outcomes, delivery = await sync_to_async(
                _send_many, thread_sensitive=False, executor=_SEND_THREAD
            )([waiting.request for waiting in batch])
            metrics.SEND_BATCH_SECONDS.observe(time.perf_counter() - started)
        except (OperationalError, InterfaceError) as exc:
            metrics.DATABASE_ERRORS.inc()
            log.warning("database unavailable: %s", str(exc).split("\n")[0][:200])
            _refuse_unavailable(batch, "the database did not answer; nothing was stored")
            return None
        return batch, outcomes, delivery

    async def _deliver(
        self,
        batch: list[_Waiting],
        outcomes: list[SendOutcome],
        delivery: fanout.Delivery,
        *,
        after: asyncio.Task | None,
    ) -> None:
        """Ack a stored batch's senders, then push its events, after the batch before."""
        if after is not None:
            # wait(), not await: a batch before that failed or was cancelled must not stop
            # this one, nor every one after it.
            await asyncio.wait([after])
        try:
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if outcome.error is not None:
                    waiting.refuse(outcome.error)
                    continue
                await waiting.consumer.send_frame(
                    {
                        "type": "message.ack",
                        "client_id": waiting.request.client_id,
                        "message": message_data(outcome.result.message),
                    }
                )
                metrics.SEND_LATENCY.observe(time.perf_counter() - waiting.queued_at)
                if outcome.result.created:
                    metrics.MESSAGES_STORED.inc()
                waiting.answer(outcome.result)
            # In commit order, after every ack: a socket sees its ack before the copy.
            await fanout.publish(delivery.events, delivery.routes)
        except Exception:
            log.exception("delivering a batch of %d sends failed", len(batch))
        finally:
            # Failed or cancelled midway: nobody may wait for ever. The messages are stored;
            # a retry with the same client_id gets its ack.
            _refuse_unavailable(batch, "server error; retry later")

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


_queues: dict[asyncio.AbstractEventLoop, SendQueue] = {}


def send_queue() -> SendQueue:
    """Return this event loop's send queue."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        # Loops of tests come and go: forget the queues of closed ones.
        for old in [old for old in _queues if old.is_closed()]:
            del _queues[old]
        queue = _queues[loop] = SendQueue()
    return queue
