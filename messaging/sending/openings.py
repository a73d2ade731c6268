"""Find the conversations a batch's sends name; decide the sends that would open one."""

from __future__ import annotations

from collections.abc import Sequence

from asgiref.sync import async_to_sync
from django.conf import settings

from messaging.domain import send_rules
from messaging.domain.ratelimit import limiter, parse_rules, rate_limited
from messaging.models import Conversation
from messaging.sending.batch_sql import BatchSql
from messaging.sending.remembered import known_ids, remember_direct, remember_user
from messaging.sending.requests import HandedOn, Opening, SendOutcome, SendRequest


def conversations_named(
    requests: Sequence[SendRequest], outcomes: list[SendOutcome | None], sql: BatchSql
) -> tuple[dict[int, int], dict[int, Opening]]:
    """Map each request not yet answered to the existing conversation it names.

    The second map holds the requests to someone they have no conversation with yet.
    """
    conversation_of: dict[int, int] = {}
    to_open: dict[int, Opening] = {}
    unknown = []
    for index, request in enumerate(requests):
        if outcomes[index] is not None:
            continue
        if request.to is None:
            if request.conversation_id is not None:
                conversation_of[index] = request.conversation_id
        elif (
            known := known_ids().direct_conversations.get((request.sender.pk, request.to))
        ) is not None:
            conversation_of[index] = known
        else:
            unknown.append(index)
    if not unknown:
        return conversation_of, to_open
    missing = {requests[i].to for i in unknown if requests[i].to not in known_ids().user_ids}
    for username, user_id in sql.user_ids(sorted(missing)):
        remember_user(user_id, username)
    keys = {}
    for index in unknown:
        other = known_ids().user_ids.get(requests[index].to)
        if other is not None and other != requests[index].sender.pk:
            keys[index] = (Conversation.direct_key_for(requests[index].sender.pk, other), other)
    by_key = dict(sql.direct_conversations(sorted({key for key, _ in keys.values()})))
    for index, (key, other) in keys.items():
        if key in by_key:
            conversation_of[index] = by_key[key]
            remember_direct(requests[index], by_key[key])
        else:
            to_open[index] = Opening(key, requests[index].sender.pk, other)
    return conversation_of, to_open


def openings_allowed(
    requests: Sequence[SendRequest],
    to_open: dict[int, Opening],
    outcomes: list[SendOutcome | None],
    sql: BatchSql,
    handed_on: HandedOn,
) -> dict[int, Opening]:
    """Decide the sends to someone with no conversation yet, in order, before any effect.

    The rules open a conversation, or refuse (answered here); a retry goes alone. So does
    a send whose `client_id` an earlier send of the batch used, since the batch cannot
    know yet what became of that one, or whose name changed hands. Then the openings are
    counted against the limit (_openings_within_limit).
    """
    if not to_open:
        return to_open
    people, blocks, sent = sql.prepare_openings(requests, to_open)
    allowed: dict[int, Opening] = {}
    earlier: set[tuple[int, str]] = set()
    for index, request in enumerate(requests):
        mark = (request.sender.pk, request.client_id)
        opening = to_open.get(index)
        if opening is None:
            earlier.add(mark)
            continue
        facts = _opening_facts(request, opening, people, blocks, sent.get(mark))
        if (
            mark in earlier
            or facts is None
            or handed_on.holds(index, request.sender.pk, opening.key)
        ):
            handed_on.hand_on(index, opening.sender, opening.key)
        else:
            decision = send_rules.decide(facts)
            if decision.action is send_rules.Action.OPEN:
                allowed[index] = opening
            elif decision.action is send_rules.Action.REFUSE:
                outcomes[index] = SendOutcome(error=decision.error(request.client_id))
        earlier.add(mark)
    return _openings_within_limit(requests, allowed, outcomes, handed_on)


def _opening_facts(
    request: SendRequest,
    opening: Opening,
    people: dict[int, send_rules.Person],
    blocks: set[tuple[int, int]],
    earlier: send_rules.Earlier | None,
) -> send_rules.SendFacts | None:
    """Describe a send to someone with no conversation yet; None if a name is stale."""
    sender, other = people.get(opening.sender), people.get(opening.other)
    if sender is None or request.has_parts:
        return None
    if other is None or other.username != request.to:
        known_ids().user_ids.pop(request.to, None)  # renamed meanwhile: look it up again
        return None
    return send_rules.SendFacts(
        sender=sender,
        body=request.body,
        max_chars=settings.CHAT_MAX_BODY,
        to=request.to,
        other=other,
        blocked=send_rules.blocked_either_way(sender.id, other.id, blocks),
        earlier=earlier,
    )


def _openings_within_limit(
    requests: Sequence[SendRequest],
    allowed: dict[int, Opening],
    outcomes: list[SendOutcome | None],
    handed_on: HandedOn,
) -> dict[int, Opening]:
    """Count the openings against their senders' limit; refuse the ones over it.

    The other sends that would open a refused one go alone, counted as one by one.
    """
    first_of = send_rules.first_opening_of_each({i: o.key for i, o in allowed.items()})
    if not first_of:
        return allowed
    counted = sorted(first_of.values())
    waits = async_to_sync(limiter().retry_after_many)(
        "conversation",
        [allowed[index].sender for index in counted],
        parse_rules(settings.CHAT_CONVERSATION_RATE),
    )
    for index, wait in zip(counted, waits, strict=True):
        if wait is not None:
            key = allowed[index].key
            outcomes[index] = SendOutcome(
                error=rate_limited("conversation", wait, client_id=requests[index].client_id)
            )
            for other_index, opening in allowed.items():
                if opening.key == key and other_index != index:
                    handed_on.hand_on(other_index, opening.sender, key)
            allowed = {i: o for i, o in allowed.items() if o.key != key}
    return allowed
