"""Group commit for `message.send`: the sends that arrive while the database is busy with
one batch are stored together in the next, in one transaction.

Each sender is acked only after its batch committed, so a message is still stored before
anyone is told of it. The batch takes the common case (a member writing to a conversation
that exists, a first send of its `client_id`); every other send (a retry, a new direct
conversation, a refusal) goes through services.message_send on its own right after the
batch, and so gets exactly the answer it would get alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from messaging import fanout, metrics, services
from messaging.models import Block, ChangeStream, Conversation, Membership, Message
from messaging.protocol import ChatError, ErrorCode, check_body, message_data
from messaging.ratelimit import limiter, parse_rules

log = logging.getLogger(__name__)

User = get_user_model()

# Sends stored in one transaction at most; more wait for the next batch.
MAX_BATCH = 500


@dataclass(frozen=True)
class SendRequest:
    """One `message.send`: who sends what, where (`to` a username or a conversation id)."""

    sender: Any
    body: str
    client_id: str
    to: str | None = None
    conversation_id: int | None = None


@dataclass
class SendOutcome:
    """What became of one send: stored (or found stored) with its events, or refused."""

    result: services.SendResult | None = None
    error: ChatError | None = None
    events: list[fanout.Event] = field(default_factory=list)


def messages_send_many(
    requests: Sequence[SendRequest],
) -> tuple[list[SendOutcome], fanout.Routes]:
    """Store many sends, the common ones in one transaction; route their events."""
    conversation_of = _conversations_named(requests)
    outcomes = _store_batch(requests, conversation_of)
    for index, request in enumerate(requests):
        if outcomes[index] is None:
            outcomes[index] = _send_alone(request)
    events = [event for outcome in outcomes for event in outcome.events]
    return outcomes, fanout.routes_for(events)


def _send_alone(request: SendRequest) -> SendOutcome:
    with fanout.collecting() as events:
        try:
            result = services.message_send(
                sender=request.sender,
                body=request.body,
                client_id=request.client_id,
                to=request.to,
                conversation_id=request.conversation_id,
            )
        except ChatError as error:
            error.client_id = request.client_id
            return SendOutcome(error=error)
    return SendOutcome(result=result, events=list(events))


def _conversations_named(requests: Sequence[SendRequest]) -> dict[int, int]:
    """Map each request to the existing conversation it names (by id or by username)."""
    conversation_of = {
        index: request.conversation_id
        for index, request in enumerate(requests)
        if request.to is None and request.conversation_id is not None
    }
    names = {request.to for request in requests if request.to is not None}
    if not names:
        return conversation_of
    ids_by_name = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    keys = {}
    for index, request in enumerate(requests):
        other = ids_by_name.get(request.to) if request.to is not None else None
        if other is not None and other != request.sender.pk:
            keys[index] = Conversation.direct_key_for(request.sender.pk, other)
    by_key = dict(
        Conversation.objects.filter(direct_key__in=set(keys.values())).values_list(
            "direct_key", "pk"
        )
    )
    conversation_of.update({index: by_key[key] for index, key in keys.items() if key in by_key})
    return conversation_of


def _store_batch(
    requests: Sequence[SendRequest], conversation_of: dict[int, int]
) -> list[SendOutcome | None]:
    """Store the sends the batch can take in one transaction; None for the others."""
    outcomes: list[SendOutcome | None] = [None] * len(requests)
    for index, request in enumerate(requests):
        try:
            check_body(request.body, max_chars=settings.CHAT_MAX_BODY, client_id=request.client_id)
        except ChatError as error:
            outcomes[index] = SendOutcome(error=error)
            conversation_of.pop(index, None)
    if not conversation_of:
        return outcomes
    sql = _Sql()
    now = timezone.now()
    with transaction.atomic():
        # Lock order as everywhere: conversations, then streams in user-id order.
        kinds = dict(sql.rows(_CONVERSATIONS_LOCK, sorted(set(conversation_of.values()))))
        members: dict[int, list[int]] = {}
        for conversation_id, user_id in sql.rows(_MEMBERS, sorted(kinds)):
            members.setdefault(conversation_id, []).append(user_id)
        chosen = [
            index
            for index, conversation_id in sorted(conversation_of.items())
            if requests[index].sender.pk in members.get(conversation_id, ())
        ]
        chosen = _drop_refused_direct(sql, requests, chosen, conversation_of, kinds, members)
        user_ids = sorted({user for i in chosen for user in members[conversation_of[i]]})
        last = dict(sql.rows(_STREAMS_LOCK, user_ids))
        chosen = _drop_retries(sql, requests, chosen)
        chosen = [i for i in chosen if all(u in last for u in members[conversation_of[i]])]
        if not chosen:
            return outcomes
        stamped = []
        for index in chosen:
            previous = {user: last[user] for user in members[conversation_of[index]]}
            seq = max(previous.values()) + 1
            last.update(dict.fromkeys(previous, seq))
            stamped.append((index, seq, previous))
        ids = sql.insert_messages(
            [(conversation_of[index], requests[index], seq, now) for index, seq, _ in stamped]
        )
        touched = sorted({user for _, _, previous in stamped for user in previous})
        sql.set_last_seqs({user: last[user] for user in touched})
        sql.touch_conversations(sorted({conversation_of[i] for i in chosen}), now)
    for index, seq, previous in stamped:
        request = requests[index]
        message = Message(
            id=ids[(request.sender.pk, request.client_id)],
            conversation_id=conversation_of[index],
            sender=request.sender,
            kind=Message.Kind.TEXT,
            body=request.body,
            client_id=request.client_id,
            seq=seq,
            created_at=now,
        )
        outcomes[index] = SendOutcome(
            result=services.SendResult(message=message, created=True),
            events=services.message_events(message, previous, "message.new"),
        )
    return outcomes


def _drop_refused_direct(sql, requests, chosen, conversation_of, kinds, members) -> list[int]:
    """Leave out direct sends to someone deactivated or on either side of a block."""
    other_of = {}
    for index in chosen:
        conversation_id = conversation_of[index]
        if kinds[conversation_id] == Conversation.Kind.DIRECT:
            sender = requests[index].sender.pk
            other_of[index] = next((u for u in members[conversation_id] if u != sender), None)
    if not other_of:
        return chosen
    people = sorted(
        {u for u in other_of.values() if u is not None} | {requests[i].sender.pk for i in other_of}
    )
    active = {user_id for user_id, is_active in sql.rows(_USERS_ACTIVE, people) if is_active}
    blocked = set(sql.rows(_BLOCKS, people, people))
    return [
        index
        for index in chosen
        if index not in other_of
        or (
            (other := other_of[index]) is not None
            and other in active
            and (requests[index].sender.pk, other) not in blocked
            and (other, requests[index].sender.pk) not in blocked
        )
    ]


def _drop_retries(sql, requests, chosen) -> list[int]:
    """Leave out a client_id already stored, or used twice in this batch (retries)."""
    if not chosen:
        return chosen
    stored = set(
        sql.rows(
            _SENT,
            sorted({requests[i].sender.pk for i in chosen}),
            sorted({requests[i].client_id for i in chosen}),
        )
    )
    kept = []
    for index in chosen:
        key = (requests[index].sender.pk, requests[index].client_id)
        if key not in stored:
            stored.add(key)
            kept.append(index)
    return kept


_CONVERSATIONS_LOCK = (
    f"SELECT id, kind FROM {Conversation._meta.db_table} WHERE id IN {{0}} ORDER BY id{{lock}}"
)
_MEMBERS = (
    f"SELECT conversation_id, user_id FROM {Membership._meta.db_table}"
    " WHERE conversation_id IN {0}"
)
_USERS_ACTIVE = f"SELECT id, is_active FROM {User._meta.db_table} WHERE id IN {{0}}"
_BLOCKS = (
    f"SELECT blocker_id, blocked_id FROM {Block._meta.db_table}"
    " WHERE blocker_id IN {0} AND blocked_id IN {1}"
)
_STREAMS_LOCK = (
    f"SELECT user_id, last_seq FROM {ChangeStream._meta.db_table}"
    " WHERE user_id IN {0} ORDER BY user_id{lock}"
)
_SENT = (
    f"SELECT sender_id, client_id FROM {Message._meta.db_table}"
    " WHERE sender_id IN {0} AND client_id IN {1}"
)


class _Sql:
    """The few statements of a batch, written out: one round trip each, whatever its size."""

    def __init__(self) -> None:
        self.cursor = connection.cursor()
        self.lock = " FOR UPDATE" if connection.features.has_select_for_update else ""

    def rows(self, template: str, *lists: Sequence[Any]) -> list[tuple]:
        if not all(lists):
            return []
        marks = [_marks(len(values)) for values in lists]
        self.cursor.execute(
            template.format(*marks, lock=self.lock), [v for values in lists for v in values]
        )
        return [tuple(row) for row in self.cursor.fetchall()]

    def insert_messages(self, rows: list[tuple[int, SendRequest, int, Any]]) -> dict:
        """Insert the messages; return their ids by (sender id, client_id)."""
        created_at = connection.ops.adapt_datetimefield_value(rows[0][3])
        params = []
        for conversation_id, request, seq, _ in rows:
            params += [
                conversation_id,
                request.sender.pk,
                Message.Kind.TEXT.value,
                request.body,
                request.client_id,
                Message.hash_body(request.body),
                seq,
                created_at,
            ]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
        self.cursor.execute(
            f"INSERT INTO {Message._meta.db_table}"
            " (conversation_id, sender_id, kind, body, client_id, sent_hash, seq, created_at)"
            f" VALUES {values} RETURNING id, sender_id, client_id",
            params,
        )
        return {(sender, client_id): id_ for id_, sender, client_id in self.cursor.fetchall()}

    def set_last_seqs(self, last: dict[int, int]) -> None:
        cases = " ".join(["WHEN %s THEN %s"] * len(last))
        params = [v for pair in last.items() for v in pair] + list(last)
        self.cursor.execute(
            f"UPDATE {ChangeStream._meta.db_table} SET last_seq = CASE user_id {cases} END"
            f" WHERE user_id IN {_marks(len(last))}",
            params,
        )

    def touch_conversations(self, conversation_ids: list[int], now) -> None:
        self.cursor.execute(
            f"UPDATE {Conversation._meta.db_table} SET last_activity_at = %s"
            f" WHERE id IN {_marks(len(conversation_ids))}",
            [connection.ops.adapt_datetimefield_value(now), *conversation_ids],
        )


def _marks(count: int) -> str:
    return "(" + ", ".join(["%s"] * count) + ")"


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
    """This event loop's sends waiting for the database, taken in batches by one task."""

    def __init__(self) -> None:
        self.waiting: list[_Waiting] = []
        self._task: asyncio.Task | None = None

    def submit(self, request: SendRequest, consumer) -> asyncio.Future:
        """Queue a send; the future ends once it is acked (or holds its refusal)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(request, consumer, future, time.perf_counter()))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return future

    async def _run(self) -> None:
        while self.waiting:
            batch = self.waiting[:MAX_BATCH]
            del self.waiting[:MAX_BATCH]
            try:
                await self._process(batch)
            except Exception as exc:
                log.exception("a batch of %d sends failed", len(batch))
                for waiting in batch:
                    waiting.refuse(exc)

    async def _process(self, batch: list[_Waiting]) -> None:
        batch = await self._within_rate(batch)
        if not batch:
            return
        try:
            outcomes, routes = await database_sync_to_async(messages_send_many)(
                [waiting.request for waiting in batch]
            )
        except (OperationalError, InterfaceError) as exc:
            metrics.DATABASE_ERRORS.inc()
            log.warning("database unavailable: %s", str(exc).split("\n")[0][:200])
            for waiting in batch:
                waiting.refuse(
                    ChatError(
                        ErrorCode.UNAVAILABLE,
                        "the database did not answer; nothing was stored",
                        client_id=waiting.request.client_id,
                    )
                )
            return
        events = []
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
            events += outcome.events
        # In commit order, after every ack: a socket sees its ack before the copy.
        await fanout.publish(events, routes)

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
