"""Store many sends in one transaction, in a fixed number of round trips (group commit).

The batch reads what decides its sends with its own statements and asks the send rules
(messaging.domain.send_rules) about each, as services.message_send does; it stamps and
writes the rows those rules describe. It takes the sends the rules store or open a
conversation for. Every other send (a retry, a refusal, or one it cannot describe) goes
through services.message_send on its own, right after the batch, and so gets exactly the
answer it would get alone. Locks are taken as everywhere else: the conversations first,
then the members' change streams in user-id order.

Its parts: the sends and their outcomes (requests), what this process remembers of
names and direct conversations (remembered), the sends that open a conversation
(openings), the decisions and stamps made under the batch's locks (decisions), and its
SQL (batch_sql runs what batch_statements writes out).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.utils import timezone

from messaging.delivery import fanout
from messaging.domain import presence, send_rules, services
from messaging.domain.events import Event, collecting
from messaging.models import Conversation, Message
from messaging.protocol import ChatError, message_data
from messaging.sending.batch_sql import BatchSql
from messaging.sending.decisions import Locked, Stamped, stamp_taken
from messaging.sending.openings import conversations_named, openings_allowed
from messaging.sending.remembered import (
    known_ids,
    people_of,
    remember,
    remember_direct,
    remember_user,
)
from messaging.sending.requests import HandedOn, Opening, SendOutcome, SendRequest

# What the send queue, the socket consumer and the tests use of the batch.
__all__ = [
    "BatchSql",
    "SendOutcome",
    "SendRequest",
    "known_ids",
    "messages_send_many",
    "people_of",
    "remember_user",
]


def messages_send_many(
    requests: Sequence[SendRequest],
) -> tuple[list[SendOutcome], fanout.Delivery]:
    """Store many sends, the common ones in one transaction; return their events, routed.

    The events come in commit order (the batch's, then each send stored alone), which is
    the order of every member's stamps.
    """
    sql = BatchSql()
    handed_on = HandedOn()
    outcomes = _refuse_bad_bodies(requests)
    conversation_of, to_open = conversations_named(requests, outcomes, sql)
    to_open = openings_allowed(requests, to_open, outcomes, sql, handed_on)
    routes, shown = _store_batch(requests, conversation_of, to_open, outcomes, sql, handed_on)
    events = [event for outcome in outcomes if outcome is not None for event in outcome.events]
    events += shown
    alone = []
    for index, request in enumerate(requests):
        if outcomes[index] is None:
            outcomes[index] = _send_alone(request)
            alone += outcomes[index].events
    if alone:
        # Read after these sends' own commits: the batch's read came before them.
        routes.update(fanout.routes_for(alone))
    return outcomes, fanout.Delivery(events + alone, routes)


def _refuse_bad_bodies(requests: Sequence[SendRequest]) -> list[SendOutcome | None]:
    """Answer the sends whose body is refused, first, as the rules check it first."""
    outcomes: list[SendOutcome | None] = [None] * len(requests)
    for index, request in enumerate(requests):
        refused = send_rules.body_refusal(
            request.body, max_chars=settings.CHAT_MAX_BODY, attachments=len(request.attachments)
        )
        if refused is not None:
            outcomes[index] = SendOutcome(error=refused.error(request.client_id))
    return outcomes


def _send_alone(request: SendRequest) -> SendOutcome:
    with collecting() as events:
        try:
            result = services.message_send(
                sender=request.sender,
                body=request.body,
                client_id=request.client_id,
                to=request.to,
                conversation_id=request.conversation_id,
                reply_to=request.reply_to,
                attachments=list(request.attachments),
            )
        except ChatError as error:
            error.client_id = request.client_id
            return SendOutcome(error=error)
    if result.created and request.to is not None:
        remember_direct(request, result.message.conversation_id)
    return SendOutcome(result=result, events=list(events))


def _remember_pairs(locked: Locked) -> None:
    for conversation_id, kind in locked.kinds.items():
        if kind == Conversation.Kind.DIRECT:
            members = frozenset(locked.members.get(conversation_id, ()))
            remember(known_ids().direct_pairs, conversation_id, members)


def _store_batch(
    requests: Sequence[SendRequest],
    conversation_of: dict[int, int],
    to_open: dict[int, Opening],
    outcomes: list[SendOutcome | None],
    sql: BatchSql,
    handed_on: HandedOn,
) -> tuple[fanout.Routes, list[Event]]:
    """Store the sends the batch can take in one transaction; leave the others None.

    Return the routes of the stored messages' members, read after the commit, and the
    `presence` events of the senders who showed themselves by writing.
    """
    if not conversation_of and not to_open:
        return {}, []
    now = timezone.now()
    with sql.transaction():
        if to_open:
            opened = dict(sql.open_direct(to_open.values(), now=now))
            conversation_of.update(
                {index: opened[o.key] for index, o in to_open.items() if o.key in opened}
            )
        locked = sql.read_locked(requests, conversation_of)
        _remember_pairs(locked)
        stamped, to_show = stamp_taken(requests, conversation_of, locked, outcomes, handed_on)
        if not stamped:
            return {}, []
        ids, routes, shown = sql.write(
            [entry.fields for entry in stamped],
            last_stamps=_last_stamps(stamped),
            show=to_show,
            now=now,
        )
    with collecting() as shown_events:
        presence.announce_shown(shown)
    for entry in stamped:
        request = requests[entry.index]
        if entry.index in to_open:
            remember_direct(request, conversation_of[entry.index])
        outcomes[entry.index] = _stored(entry, request, ids, now)
    return routes, list(shown_events)


def _last_stamps(stamped: Sequence[Stamped]) -> dict[int, tuple[int, int]]:
    """Return each member's last stamp of the batch and the conversation it changed."""
    last: dict[int, tuple[int, int]] = {}
    # In the order they were stamped: a member's later stamp is larger.
    for entry in stamped:
        stamp = (entry.fields["seq"], entry.fields["conversation_id"])
        last.update(dict.fromkeys(entry.previous, stamp))
    return last


def _stored(entry: Stamped, request: SendRequest, ids: dict, now) -> SendOutcome:
    """Answer a send the batch stored: its message, and a push to each member."""
    fields = entry.fields
    row = {
        **_UNCHANGED_ON_CREATE,
        **fields,
        "id": ids[(fields["sender_id"], fields["client_id"])],
        "created_at": now,
    }
    # Positional, in the model's column order: Django's fast path for building a row.
    message = Message(*[row[name] for name in _MESSAGE_ATTNAMES])
    message.sender = request.sender
    shown = message_data(message)
    return SendOutcome(
        result=services.SendResult(message=message, created=True, shown=shown),
        events=services.message_events(message, entry.previous, "message.new", shown=shown),
    )


_MESSAGE_ATTNAMES = [f.attname for f in Message._meta.concrete_fields]
# The columns a new message leaves empty.
_UNCHANGED_ON_CREATE = {"edited_at": None, "deleted_at": None, "hidden_by_id": None}
