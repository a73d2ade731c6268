"""Store many sends in one transaction, in a fixed number of round trips (group commit).

The batch reads what decides its sends with its own statements and asks the send rules
(messaging.domain.send_rules) about each, as services.message_send does; it stamps and
writes the rows those rules describe. It takes the sends the rules store or open a
conversation for. Every other send (a retry, a refusal, or one it cannot describe) goes
through services.message_send on its own, right after the batch, and so gets exactly the
answer it would get alone. Locks are taken as everywhere else: the conversations first,
then the members' change streams in user-id order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from messaging import sql_values
from messaging.delivery import fanout
from messaging.domain import presence, send_rules, services
from messaging.domain.events import Event, collecting
from messaging.domain.ratelimit import limiter, parse_rules, rate_limited
from messaging.models import Block, ChangeStream, Conversation, Membership, Message
from messaging.protocol import ChatError
from messaging.singletons import per_process

User = get_user_model()

_REMEMBERED = 100_000


@dataclass
class KnownIds:
    """What earlier batches and handshakes learnt, so that a batch looks up less.

    Every batch checks an entry against the members (and their usernames) it reads under
    lock; a stale one only makes that send go alone.
    """

    # username -> user id
    user_ids: dict[str, int] = field(default_factory=dict)
    # (sender id, username) -> their direct conversation
    direct_conversations: dict[tuple[int, str], int] = field(default_factory=dict)
    # direct conversation id -> its two members (who never change)
    direct_pairs: dict[int, frozenset[int]] = field(default_factory=dict)


known_ids = per_process(KnownIds)


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
    events: list[Event] = field(default_factory=list)


def people_of(request: SendRequest) -> frozenset[int] | None:
    """Return whose change streams a send would stamp, if this process knows; else None.

    Known are sends to a username whose id a handshake or batch noted, and to a direct
    conversation a batch stored in before. A name that changed hands since makes the send
    go alone (see _Locked.can_take), to its new holder: the one case where the answer is
    wrong, and then only the order of that person's pushes may suffer, which `prev_seq`
    and `sync` heal.
    """
    if request.to is not None:
        other = known_ids().user_ids.get(request.to)
        return None if other is None else frozenset((request.sender.pk, other))
    pair = known_ids().direct_pairs.get(request.conversation_id)
    return pair if pair is not None and request.sender.pk in pair else None


def messages_send_many(
    requests: Sequence[SendRequest],
) -> tuple[list[SendOutcome], fanout.Delivery]:
    """Store many sends, the common ones in one transaction; return their events, routed.

    The events come in commit order (the batch's, then each send stored alone), which is
    the order of every member's stamps.
    """
    sql = _Sql()
    handed_on = _HandedOn()
    outcomes = _refuse_bad_bodies(requests)
    conversation_of, to_open = _conversations_named(requests, outcomes, sql)
    to_open = _openings_allowed(requests, to_open, outcomes, sql, handed_on)
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
        refused = send_rules.body_refusal(request.body, max_chars=settings.CHAT_MAX_BODY)
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
            )
        except ChatError as error:
            error.client_id = request.client_id
            return SendOutcome(error=error)
    if result.created and request.to is not None:
        _remember_direct(request, result.message.conversation_id)
    return SendOutcome(result=result, events=list(events))


def _remember(cache: dict, key, value) -> None:
    """Note an entry in one of the caches above, emptied whole when full."""
    if len(cache) >= _REMEMBERED:
        cache.clear()
    cache[key] = value


def _remember_direct(request: SendRequest, conversation_id: int) -> None:
    _remember(known_ids().direct_conversations, (request.sender.pk, request.to), conversation_id)


def _conversations_named(
    requests: Sequence[SendRequest], outcomes: list[SendOutcome | None], sql: _Sql
) -> tuple[dict[int, int], dict[int, _Opening]]:
    """Map each request not yet answered to the existing conversation it names.

    The second map holds the requests to someone they have no conversation with yet.
    """
    conversation_of: dict[int, int] = {}
    to_open: dict[int, _Opening] = {}
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
            _remember_direct(requests[index], by_key[key])
        else:
            to_open[index] = _Opening(key, requests[index].sender.pk, other)
    return conversation_of, to_open


@dataclass
class _HandedOn:
    """The sends a batch leaves to services.message_send, after it, and what they hold back.

    Such a send is decided after the batch's own, so a later send that could change its
    answer must not be decided before it: the later sends of its sender (its client_ids,
    its limits, its place) and those that would open the same conversation go after it
    too. A retry or a refusal changes nothing and holds nothing back.
    """

    # sender id, or direct key of a conversation to open -> the first send handed on
    firsts: dict[int | str, int] = field(default_factory=dict)

    def hand_on(self, index: int, sender: int, key: str | None = None) -> None:
        """Leave a send that may store to the single path, holding back the later ones."""
        self.firsts.setdefault(sender, index)
        if key is not None:
            self.firsts.setdefault(key, index)

    def holds(self, index: int, sender: int, key: str | None = None) -> bool:
        """Tell whether a send handed on before this one holds it back."""
        return any(self.firsts.get(subject, index) < index for subject in (sender, key) if subject)


@dataclass(frozen=True)
class _Opening:
    """A direct conversation a send would open."""

    key: str
    sender: int
    other: int


def _openings_allowed(
    requests: Sequence[SendRequest],
    to_open: dict[int, _Opening],
    outcomes: list[SendOutcome | None],
    sql: _Sql,
    handed_on: _HandedOn,
) -> dict[int, _Opening]:
    """Decide the sends to someone with no conversation yet, in order, before any effect.

    The rules open a conversation, or refuse (answered here); a retry goes alone. So does
    a send whose `client_id` an earlier send of the batch used, since the batch cannot
    know yet what became of that one, or whose name changed hands. Then the openings are
    counted against the limit (_openings_within_limit).
    """
    if not to_open:
        return to_open
    people, blocks, sent = sql.prepare_openings(requests, to_open)
    allowed: dict[int, _Opening] = {}
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
    opening: _Opening,
    people: dict[int, send_rules.Person],
    blocks: set[tuple[int, int]],
    earlier: send_rules.Earlier | None,
) -> send_rules.SendFacts | None:
    """Describe a send to someone with no conversation yet; None if a name is stale."""
    sender, other = people.get(opening.sender), people.get(opening.other)
    if sender is None:
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
    allowed: dict[int, _Opening],
    outcomes: list[SendOutcome | None],
    handed_on: _HandedOn,
) -> dict[int, _Opening]:
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


def _remember_pairs(locked: _Locked) -> None:
    for conversation_id, kind in locked.kinds.items():
        if kind == Conversation.Kind.DIRECT:
            members = frozenset(locked.members.get(conversation_id, ()))
            _remember(known_ids().direct_pairs, conversation_id, members)


def remember_user(user_id: int, username: str) -> None:
    """Note a username's id for later batches (each checks it under lock before use)."""
    _remember(known_ids().user_ids, username, user_id)


@dataclass
class _Locked:
    """What a batch reads once it holds its locks."""

    kinds: dict[int, str]
    # conversation id -> member id -> the member as a send sees them
    members: dict[int, dict[int, send_rules.Person]]
    blocks: set[tuple[int, int]]
    last_seqs: dict[int, int]
    # (sender id, client_id) -> the message stored with it, by now or by this batch
    sent: dict[tuple[int, str], send_rules.Earlier]
    # sender id -> the sender, member or not
    senders: dict[int, send_rules.Person]
    # (conversation id, member id) -> membership id, of the members not shown there yet
    # (Membership.visible_to_members): writing there shows them.
    hidden: dict[tuple[int, int], int] = field(default_factory=dict)
    places: dict[int, send_rules.Place] = field(default_factory=dict)

    def decide(self, request: SendRequest, conversation_id: int) -> send_rules.Decision | None:
        """Decide a send as message_send alone would; None if the batch cannot describe it.

        It cannot when the sender is gone, a name changed hands, or a member lacks a
        change stream: the send goes alone.
        """
        facts = self.facts(request, conversation_id)
        if facts is None:
            return None
        decision = send_rules.decide(facts)
        members = self.members.get(conversation_id, {})
        if decision.action is send_rules.Action.STORE and any(
            u not in self.last_seqs for u in members
        ):
            return None
        return decision

    def facts(self, request: SendRequest, conversation_id: int) -> send_rules.SendFacts | None:
        """Describe a send to a conversation, from what was read under lock."""
        sender = self.senders.get(request.sender.pk)
        if sender is None:
            return None
        place = self.place(conversation_id) if conversation_id in self.kinds else None
        other_id = send_rules.other_member(place, sender.id) if place is not None else None
        other = self.members[conversation_id].get(other_id) if other_id is not None else None
        if request.to is not None and (other is None or other.username != request.to):
            known_ids().direct_conversations.pop((sender.id, request.to), None)
            known_ids().user_ids.pop(request.to, None)
            return None
        return send_rules.SendFacts(
            sender=sender,
            body=request.body,
            max_chars=settings.CHAT_MAX_BODY,
            to=request.to,
            conversation_id=request.conversation_id,
            place=place,
            other=other,
            blocked=other is not None
            and send_rules.blocked_either_way(sender.id, other.id, self.blocks),
            earlier=self.sent.get((sender.id, request.client_id)),
        )

    def place(self, conversation_id: int) -> send_rules.Place:
        # Once per conversation: the sends of a batch mostly go to a few of them.
        place = self.places.get(conversation_id)
        if place is None:
            place = self.places[conversation_id] = send_rules.Place(
                id=conversation_id,
                direct=self.kinds[conversation_id] == Conversation.Kind.DIRECT,
                members=frozenset(self.members.get(conversation_id, ())),
            )
        return place

    def stamp(self, index: int, request: SendRequest, conversation_id: int) -> _Stamped:
        """Stamp a send the batch stores, and note it: a later one with its client_id is
        its retry."""
        previous = {user: self.last_seqs[user] for user in self.members[conversation_id]}
        seq = send_rules.stamp(previous)
        self.last_seqs.update(dict.fromkeys(previous, seq))
        fields = send_rules.message_fields(
            conversation_id=conversation_id,
            sender_id=request.sender.pk,
            body=request.body,
            client_id=request.client_id,
            seq=seq,
        )
        self.taken(request, conversation_id, sent_hash=fields["sent_hash"])
        return _Stamped(index, fields, previous)

    def taken(self, request: SendRequest, conversation_id: int, *, sent_hash: str) -> None:
        """Note a send the batch stores: a later one with its client_id is its retry."""
        place = self.place(conversation_id)
        self.sent[(request.sender.pk, request.client_id)] = send_rules.Earlier(
            conversation_id=conversation_id,
            direct_key=Conversation.direct_key_for(*place.members)
            if place.direct and len(place.members) == 2
            else None,
            sent_hash=sent_hash,
        )


@dataclass(frozen=True)
class _Stamped:
    """A send the batch stores: its request's place, its row, whom it reaches."""

    index: int
    fields: dict
    # member id -> their stamp before this message (its prev_seq in their push)
    previous: dict[int, int]


def _store_batch(
    requests: Sequence[SendRequest],
    conversation_of: dict[int, int],
    to_open: dict[int, _Opening],
    outcomes: list[SendOutcome | None],
    sql: _Sql,
    handed_on: _HandedOn,
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
        stamped, to_show = _stamp_taken(requests, conversation_of, locked, outcomes, handed_on)
        if not stamped:
            return {}, []
        ids, routes, shown = sql.write(
            [entry.fields for entry in stamped],
            last_seqs={user: locked.last_seqs[user] for e in stamped for user in e.previous},
            show=to_show,
            now=now,
        )
    with collecting() as shown_events:
        presence.announce_shown(shown)
    for entry in stamped:
        request = requests[entry.index]
        if entry.index in to_open:
            _remember_direct(request, conversation_of[entry.index])
        outcomes[entry.index] = _stored(entry, request, ids, now)
    return routes, list(shown_events)


def _stored(entry: _Stamped, request: SendRequest, ids: dict, now) -> SendOutcome:
    """Answer a send the batch stored: its message, and a push to each member."""
    fields = entry.fields
    message = Message(id=ids[(fields["sender_id"], fields["client_id"])], created_at=now, **fields)
    message.sender = request.sender
    return SendOutcome(
        result=services.SendResult(message=message, created=True),
        events=services.message_events(message, entry.previous, "message.new"),
    )


def _stamp_taken(
    requests: Sequence[SendRequest],
    conversation_of: dict[int, int],
    locked: _Locked,
    outcomes: list[SendOutcome | None],
    handed_on: _HandedOn,
) -> tuple[list[_Stamped], list[int]]:
    """Decide, in the order they came, the sends to conversations; stamp those stored.

    Answer the refusals; leave the retries and what the batch cannot describe alone.
    Return the stamped sends, and the memberships of the senders who write where they
    were not shown.
    """
    stamped = []
    to_show = []
    for index in sorted(conversation_of):
        request, conversation_id = requests[index], conversation_of[index]
        held = handed_on.holds(index, request.sender.pk)
        decision = None if held else locked.decide(request, conversation_id)
        if decision is None or decision.action is send_rules.Action.OPEN:
            handed_on.hand_on(index, request.sender.pk)
            continue
        if decision.action is send_rules.Action.REFUSE:
            outcomes[index] = SendOutcome(error=decision.error(request.client_id))
        if decision.action is not send_rules.Action.STORE:
            continue
        membership = locked.hidden.pop((conversation_id, request.sender.pk), None)
        if membership is not None:
            to_show.append(membership)
        stamped.append(locked.stamp(index, request, conversation_id))
    return stamped, to_show


_CONVERSATION = Conversation._meta.db_table
_MEMBERSHIP = Membership._meta.db_table
# The columns of a batch's messages that differ from one message to the next.
_MESSAGE_COLUMNS = {
    "conversation_id": "bigint",
    "sender_id": "bigint",
    "kind": "text",
    "body": "text",
    "client_id": "text",
    "sent_hash": "text",
    "seq": "bigint",
}


class _Sql:
    """The statements of a batch, written out, and its transaction.

    On PostgreSQL each group of statements goes in one round trip (several statements in
    one query: psycopg binds the parameters on the client, Django's default); in READ
    COMMITTED every statement still reads what was committed before it started, so the
    members are read after the conversations' locks are held. The transaction's BEGIN
    rides with its first statements and its COMMIT with its last, followed by the reads
    that must come after it: a batch of sends to known conversations is two round trips.
    """

    def __init__(self) -> None:
        if connection.in_atomic_block:
            raise TransactionManagementError("a batch of sends runs its own transaction")
        self.cursor = connection.cursor()
        self.lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        self.postgres = connection.vendor == "postgresql"
        self.one_trip = self.postgres and _binds_on_client(self.cursor.cursor)
        self._begin: str | None = None
        self._open = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the statements of the block in one transaction (see the class)."""
        # SQLite: take the write lock at BEGIN, as the settings ask of Django's own.
        self._begin = "BEGIN" if self.postgres else "BEGIN IMMEDIATE"
        try:
            yield
        except BaseException:
            if self._open:
                self._open = False
                with suppress(DatabaseError):
                    self.cursor.execute("ROLLBACK")
            raise
        finally:
            self._begin = None
        if self._open:
            # Nothing was written: end it all the same, to let go of the locks.
            self._open = False
            self.cursor.execute("COMMIT")

    def user_ids(self, usernames: list[str]) -> list[tuple]:
        """Return (username, id) of the users with these names."""
        if not usernames:
            return []
        named, params = sql_values.one_of("username", usernames, "text")
        statement = f"SELECT username, id FROM {User._meta.db_table} WHERE {named}"
        (rows,) = self.run([(statement, params)])
        return rows

    def direct_conversations(self, keys: list[str]) -> list[tuple]:
        """Return (direct_key, id) of the direct conversations with these keys."""
        if not keys:
            return []
        (rows,) = self.run([_direct_ids(keys)])
        return rows

    def prepare_openings(
        self, requests: Sequence[SendRequest], to_open: dict[int, _Opening]
    ) -> tuple[
        dict[int, send_rules.Person],
        set[tuple[int, int]],
        dict[tuple[int, str], send_rules.Earlier],
    ]:
        """Read what decides the openings: people, blocks, the client_ids used and where.

        Also create the change streams the people involved lack, here, outside the
        batch's transaction (as the single path does), so that the batch locks no new
        stream row ahead of the conversations.
        """
        openings = list(to_open.values())
        everyone = sorted({user for opening in openings for user in _pair(opening)})
        senders = sorted({opening.sender for opening in openings})
        client_ids = sorted({requests[index].client_id for index in to_open})
        people, blocks, sent, _ = self.run(
            [
                _people(everyone),
                _blocks_among(everyone),
                _sent_by(senders, client_ids),
                _streams_made(everyone),
            ]
        )
        return _persons(people), set(blocks), _earlier_sends(sent)

    def open_direct(self, openings: Iterable[_Opening], *, now) -> list[tuple]:
        """Create the direct conversations not there yet, with their members.

        Return (direct_key, id) of every one of them. Keys go in order, so that two
        batches opening the same pairs wait on each other in one order, never in a cycle.
        """
        first = {}
        for opening in openings:
            first.setdefault(opening.key, opening)
        keys = sorted(first)
        stamp = connection.ops.adapt_datetimefield_value(now)
        *_, rows = self.run(
            [
                _conversations_made([(key, first[key].sender) for key in keys], stamp),
                _members_made([(key, user) for key in keys for user in _pair(first[key])], stamp),
                _direct_ids(keys),
            ]
        )
        return rows

    def read_locked(
        self, requests: Sequence[SendRequest], conversation_of: dict[int, int]
    ) -> _Locked:
        """Lock the conversations and their members' streams; read what decides the sends."""
        conversations = sorted(set(conversation_of.values()))
        senders = sorted({requests[index].sender.pk for index in conversation_of})
        client_ids = sorted({requests[index].client_id for index in conversation_of})
        kinds, members, blocks, streams, sent, people = self.run(
            [
                *_locked_reads(conversations, lock=self.lock),
                _sent_by(senders, client_ids),
                _people(senders),
            ]
        )
        by_conversation: dict[int, dict[int, send_rules.Person]] = {}
        # Read here, under the conversations' locks, which every change of the flag also
        # takes: the batch shows a member only when they are not shown yet, so that a send
        # to a conversation where the sender wrote before costs no statement more.
        hidden: dict[tuple[int, int], int] = {}
        for conversation_id, user_id, active, username, membership_id, shown in members:
            person = send_rules.Person(user_id, bool(active), username)
            by_conversation.setdefault(conversation_id, {})[user_id] = person
            if not shown:
                hidden[(conversation_id, user_id)] = membership_id
        return _Locked(
            kinds=dict(kinds),
            members=by_conversation,
            blocks=set(blocks),
            last_seqs=dict(streams),
            sent=_earlier_sends(sent),
            senders=_persons(people),
            hidden=hidden,
        )

    def write(
        self,
        rows: list[dict],
        *,
        last_seqs: dict[int, int],
        show: list[int],
        now,
    ) -> tuple[dict[tuple[int, str], int], fanout.Routes, list[tuple[int, int]]]:
        """Insert the messages (rows of send_rules.message_fields), record the stamps,
        touch the conversations, show the senders not shown yet (memberships `show`), commit.

        Return the messages' ids, the routes of the members, read after the commit, and
        (conversation id, user id) of the memberships this batch showed.
        """
        created_at = connection.ops.adapt_datetimefield_value(now)
        writes = _message_writes(rows, last_seqs, created_at, postgres=self.postgres)
        if show:
            # In the same round trip; only writing's first time in a conversation has one.
            writes.append(_members_shown(show))
        *written, sockets = self.run(
            writes, commit=True, after=[fanout.routes_statement(sorted(last_seqs))]
        )
        inserted = written[-2] if show else written[-1]
        shown = [(conversation, user) for conversation, user in written[-1]] if show else []
        ids = {(sender, client_id): id_ for id_, sender, client_id in inserted}
        return ids, fanout.routes_from_rows(sockets), shown

    def run(
        self,
        statements: list[tuple[str, list]],
        *,
        commit: bool = False,
        after: Sequence[tuple[str, list]] = (),
    ) -> list[list[tuple]]:
        """Execute the statements in order, then COMMIT if asked and the ones after it.

        Return the rows of each statement and of each one after.
        """
        lead = []
        if self._begin is not None:
            lead, self._begin, self._open = [(self._begin, [])], None, True
        tail = [("COMMIT", [])] if commit else []
        results = self._execute([*lead, *statements, *tail, *after])
        self._open = self._open and not commit
        del results[: len(lead)]
        del results[len(statements) : len(statements) + len(tail)]
        return results

    def _execute(self, statements: list[tuple[str, list]]) -> list[list[tuple]]:
        if self.one_trip and len(statements) > 1:
            self.cursor.execute(
                "; ".join(text for text, _ in statements),
                [value for _, params in statements for value in params],
            )
            results = [self._rows()]
            while self.cursor.nextset():
                results.append(self._rows())
            return results
        results = []
        for text, params in statements:
            self.cursor.execute(text, params)
            results.append(self._rows())
        return results

    def _rows(self) -> list[tuple]:
        if self.postgres:
            # Not cursor.description: psycopg builds it anew on each look, a Column a field.
            result = self.cursor.cursor.pgresult
            has_rows = result is not None and result.status == _TUPLES_OK
        else:
            has_rows = self.cursor.description is not None
        return self.cursor.fetchall() if has_rows else []


Statement = tuple[str, list]


def _people(ids: list[int]) -> Statement:
    """Read (id, is_active, username) of these users."""
    anyone, params = sql_values.one_of("id", ids)
    return f"SELECT id, is_active, username FROM {User._meta.db_table} WHERE {anyone}", params


def _persons(rows: list[tuple]) -> dict[int, send_rules.Person]:
    return {user: send_rules.Person(user, bool(active), name) for user, active, name in rows}


def _blocks_among(ids: list[int]) -> Statement:
    """Read the blocks between any two of these users."""
    blocker, blocker_params = sql_values.one_of("blocker_id", ids)
    blocked, blocked_params = sql_values.one_of("blocked_id", ids)
    return (
        f"SELECT blocker_id, blocked_id FROM {Block._meta.db_table} WHERE {blocker} AND {blocked}",
        blocker_params + blocked_params,
    )


def _streams_made(ids: list[int]) -> Statement:
    """Create the change streams these users lack, in id order."""
    anyone, params = sql_values.one_of("id", ids)
    return (
        f"INSERT INTO {ChangeStream._meta.db_table} (user_id, last_seq)"
        f" SELECT id, 0 FROM {User._meta.db_table}"
        f" WHERE {anyone} ORDER BY id ON CONFLICT DO NOTHING",
        params,
    )


def _direct_ids(keys: list[str]) -> Statement:
    """Read (direct_key, id) of the direct conversations with these keys."""
    keyed, params = sql_values.one_of("direct_key", keys, "text")
    return (f"SELECT direct_key, id FROM {_CONVERSATION} WHERE {keyed}", params)


def _sent_by(senders: list[int], client_ids: list[str]) -> Statement:
    """Read the messages these senders stored with these client_ids (for _earlier_sends)."""
    by_sender, sender_params = sql_values.one_of("m.sender_id", senders)
    with_id, id_params = sql_values.one_of("m.client_id", client_ids, "text")
    return (
        "SELECT m.sender_id, m.client_id, m.conversation_id, c.direct_key, m.sent_hash"
        f" FROM {Message._meta.db_table} m JOIN {_CONVERSATION} c"
        f" ON c.id = m.conversation_id WHERE {by_sender} AND {with_id}",
        sender_params + id_params,
    )


def _conversations_made(openers: list[tuple[str, int]], stamp) -> Statement:
    """Create the direct conversations of these (key, opener) not there yet, in key order."""
    opened, params = sql_values.table("o", {"direct_key": "text", "created_by": "bigint"}, openers)
    return (
        f"INSERT INTO {_CONVERSATION}"
        " (kind, title, direct_key, created_by_id, created_at, last_activity_at)"
        f" SELECT %s, '', o.direct_key, o.created_by, %s, %s FROM {opened}"
        " ORDER BY o.direct_key ON CONFLICT DO NOTHING",
        [Conversation.Kind.DIRECT.value, stamp, stamp, *params],
    )


def _members_made(people: list[tuple[str, int]], stamp) -> Statement:
    """Add the (key, person) members to the direct conversations made just now.

    Only to those: one that was there (its opener committed while this waited on the
    key) has its own.
    """
    pairs, params = sql_values.table("p", {"direct_key": "text", "person": "bigint"}, people)
    return (
        f"INSERT INTO {_MEMBERSHIP}"
        " (conversation_id, user_id, last_read_message_id, joined_at)"
        f" SELECT c.id, p.person, 0, %s"
        f" FROM {pairs} JOIN {_CONVERSATION} c ON c.direct_key = p.direct_key"
        f" WHERE NOT EXISTS (SELECT 1 FROM {_MEMBERSHIP} m"
        " WHERE m.conversation_id = c.id)"
        " ON CONFLICT DO NOTHING",
        [stamp, *params],
    )


def _locked_reads(conversations: list[int], *, lock: str) -> list[Statement]:
    """Lock the conversations, then their members' streams in user-id order; read the
    conversations' kinds, members, the blocks among them and their streams' stamps."""
    chosen, params = sql_values.one_of("id", conversations)
    in_chosen, _ = sql_values.one_of("conversation_id", conversations)
    member_in_chosen, _ = sql_values.one_of("m.conversation_id", conversations)
    members_of = f"(SELECT user_id FROM {_MEMBERSHIP} WHERE {in_chosen})"
    return [
        (f"SELECT id, kind FROM {_CONVERSATION} WHERE {chosen} ORDER BY id{lock}", params),
        (
            f"SELECT m.conversation_id, m.user_id, u.is_active, u.username,"
            " m.id, m.visible_to_members"
            f" FROM {_MEMBERSHIP} m JOIN {User._meta.db_table} u ON u.id = m.user_id"
            f" WHERE {member_in_chosen}",
            params,
        ),
        (
            f"SELECT blocker_id, blocked_id FROM {Block._meta.db_table}"
            f" WHERE blocker_id IN {members_of} AND blocked_id IN {members_of}",
            params * 2,
        ),
        (
            f"SELECT user_id, last_seq FROM {ChangeStream._meta.db_table}"
            f" WHERE user_id IN {members_of} ORDER BY user_id{lock}",
            params,
        ),
    ]


def _message_writes(
    rows: list[dict], last_seqs: dict[int, int], created_at, *, postgres: bool
) -> list[Statement]:
    """Insert the messages, record the members' stamps, touch the conversations.

    On PostgreSQL one statement: it runs data-modifying WITH parts to completion.
    """
    messages, messages_params = sql_values.table(
        "m", _MESSAGE_COLUMNS, [[row[column] for column in _MESSAGE_COLUMNS] for row in rows]
    )
    insert = (
        f"INSERT INTO {Message._meta.db_table} ({', '.join(_MESSAGE_COLUMNS)}, created_at)"
        f" SELECT {', '.join(f'm.{column}' for column in _MESSAGE_COLUMNS)}, %s"
        f" FROM {messages} RETURNING id, sender_id, client_id"
    )
    insert_params = [created_at, *messages_params]
    stamps, streams_params = sql_values.table(
        "s", {"owner": "bigint", "seq": "bigint"}, list(last_seqs.items())
    )
    streams = (
        f"UPDATE {ChangeStream._meta.db_table} SET last_seq = s.seq"
        f" FROM {stamps} WHERE user_id = s.owner"
    )
    # The conversations' last activity is the time of their newest message.
    touched, touched_params = sql_values.one_of(
        "id", sorted({row["conversation_id"] for row in rows})
    )
    touch = f"UPDATE {_CONVERSATION} SET last_activity_at = %s WHERE {touched}"
    touch_params = [created_at, *touched_params]
    if postgres:
        return [
            (
                f"WITH streams AS ({streams}), touched AS ({touch}) {insert}",
                streams_params + touch_params + insert_params,
            )
        ]
    return [(streams, streams_params), (touch, touch_params), (insert, insert_params)]


def _members_shown(memberships: list[int]) -> Statement:
    """Show these members to the others of their conversations, if not shown yet."""
    to_show, params = sql_values.one_of("id", sorted(memberships))
    return (
        f"UPDATE {_MEMBERSHIP} SET visible_to_members = TRUE"
        f" WHERE {to_show} AND NOT visible_to_members"
        " RETURNING conversation_id, user_id",
        params,
    )


def _earlier_sends(rows: list[tuple]) -> dict[tuple[int, str], send_rules.Earlier]:
    """Map (sender id, client_id) to the message stored with it, from _sent_by's rows."""
    return {
        (sender, client_id): send_rules.Earlier(conversation_id, direct_key, sent_hash)
        for sender, client_id, conversation_id, direct_key, sent_hash in rows
    }


def _pair(opening: _Opening) -> list[int]:
    return sorted((opening.sender, opening.other))


def _binds_on_client(cursor) -> bool:
    import psycopg

    return isinstance(cursor, psycopg.ClientCursor)


# psycopg's ExecStatus.TUPLES_OK, without importing psycopg where SQLite is used.
_TUPLES_OK = 2
