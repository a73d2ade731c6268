"""Store many sends in one transaction, in a fixed number of round trips (group commit).

The batch takes the common cases: a member writing to a conversation that exists, or a
first message to someone that opens the direct conversation of the two, with a
`client_id` not used before. Every other send (a retry, a refusal) goes through
services.message_send on its own, right after the batch, and so gets exactly the answer
it would get alone. Locks are taken as everywhere else: the conversations first, then the
members' change streams in user-id order.
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
from messaging.domain import presence, services
from messaging.domain.events import Event, collecting
from messaging.domain.ratelimit import limiter, parse_rules, rate_limited
from messaging.models import Block, ChangeStream, Conversation, Membership, Message
from messaging.protocol import ChatError, check_body
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
    outcomes = _refuse_bad_bodies(requests)
    conversation_of, to_open = _conversations_named(requests, outcomes, sql)
    to_open = _openings_allowed(requests, to_open, outcomes, sql)
    routes, shown = _store_batch(requests, conversation_of, to_open, outcomes, sql)
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
    """Answer the sends whose body is refused, first, as message_send checks it first."""
    outcomes: list[SendOutcome | None] = [None] * len(requests)
    for index, request in enumerate(requests):
        try:
            check_body(request.body, max_chars=settings.CHAT_MAX_BODY, client_id=request.client_id)
        except ChatError as error:
            outcomes[index] = SendOutcome(error=error)
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
) -> dict[int, _Opening]:
    """Keep the openings message_send would make: checked as it checks, before any effect.

    A retry (of a stored send or of an earlier one in the batch), an inactive sender or
    recipient, or a block opens nothing: those sends go alone and get their answer there. Each
    conversation opened counts once against the limit of the sender of its first request;
    when that one is over the limit it is refused here, and the others for the same
    conversation go alone, to be counted as they would be one by one.
    """
    if not to_open:
        return to_open
    people, blocks, sent = sql.prepare_openings(requests, to_open)
    allowed: dict[int, _Opening] = {}
    first_of: dict[str, int] = {}
    earlier: set[tuple[int, str]] = set()
    for index, request in enumerate(requests):
        mark = (request.sender.pk, request.client_id)
        opening = to_open.get(index)
        if opening is not None:
            active, username = people.get(opening.other, (False, None))
            sender_active, _ = people.get(opening.sender, (False, None))
            if username != request.to:
                known_ids().user_ids.pop(request.to, None)  # renamed meanwhile: look it up again
            elif (
                active
                and sender_active
                and (opening.sender, opening.other) not in blocks
                and (opening.other, opening.sender) not in blocks
                and mark not in sent
                and mark not in earlier
            ):
                allowed[index] = opening
                first_of.setdefault(opening.key, index)
        earlier.add(mark)
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
    # conversation id -> member id -> (active, username)
    members: dict[int, dict[int, tuple[bool, str]]]
    blocks: set[tuple[int, int]]
    last_seqs: dict[int, int]
    sent: set[tuple[int, str]]
    # (conversation id, member id) -> membership id, of the members not shown there yet
    # (Membership.visible_to_members): writing there shows them.
    hidden: dict[tuple[int, int], int] = field(default_factory=dict)

    def can_take(self, request: SendRequest, conversation_id: int) -> bool:
        """Tell whether the batch can store this send as message_send alone would."""
        kind = self.kinds.get(conversation_id)
        members = self.members.get(conversation_id, {})
        sender = request.sender.pk
        if kind is None or sender not in members:
            return False
        if not members[sender][0]:
            # Deactivated, its socket maybe still open: message_send refuses it.
            return False
        if (sender, request.client_id) in self.sent:
            return False
        if any(user not in self.last_seqs for user in members):
            return False
        if kind != Conversation.Kind.DIRECT:
            return request.to is None
        others = [user for user in members if user != sender]
        if len(others) != 1:
            return False
        other = others[0]
        active, username = members[other]
        if request.to is not None and request.to != username:
            known_ids().direct_conversations.pop((sender, request.to), None)
            known_ids().user_ids.pop(request.to, None)
            return False
        return active and (sender, other) not in self.blocks and (other, sender) not in self.blocks


def _store_batch(
    requests: Sequence[SendRequest],
    conversation_of: dict[int, int],
    to_open: dict[int, _Opening],
    outcomes: list[SendOutcome | None],
    sql: _Sql,
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
        stamped = []
        to_show = []
        for index in sorted(conversation_of):
            request = requests[index]
            if not locked.can_take(request, conversation_of[index]):
                continue
            # A client_id twice in one batch: the second is a retry of the first.
            locked.sent.add((request.sender.pk, request.client_id))
            membership = locked.hidden.pop((conversation_of[index], request.sender.pk), None)
            if membership is not None:
                to_show.append(membership)
            members = locked.members[conversation_of[index]]
            previous = {user: locked.last_seqs[user] for user in members}
            seq = max(previous.values()) + 1
            locked.last_seqs.update(dict.fromkeys(previous, seq))
            stamped.append((index, seq, previous))
        if not stamped:
            return {}, []
        ids, routes, shown = sql.write(
            [(conversation_of[index], requests[index], seq) for index, seq, _ in stamped],
            last_seqs={
                user: locked.last_seqs[user] for _, _, previous in stamped for user in previous
            },
            show=to_show,
            now=now,
        )
    with collecting() as shown_events:
        presence.announce_shown(shown)
    for index, seq, previous in stamped:
        request = requests[index]
        if index in to_open:
            _remember_direct(request, conversation_of[index])
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
    return routes, list(shown_events)


_CONVERSATION = Conversation._meta.db_table
_MEMBERSHIP = Membership._meta.db_table
# The columns of a batch's messages that differ from one message to the next.
_MESSAGE_COLUMNS = {
    "conversation_id": "bigint",
    "sender_id": "bigint",
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
        (rows,) = self.run([self._direct_ids(keys)])
        return rows

    def prepare_openings(
        self, requests: Sequence[SendRequest], to_open: dict[int, _Opening]
    ) -> tuple[dict[int, tuple[bool, str]], set[tuple[int, int]], set[tuple[int, str]]]:
        """Read what decides the openings: people (active, name), blocks, ids used.

        Also create the change streams the people involved lack, here, outside the
        batch's transaction (as the single path does), so that the batch locks no new
        stream row ahead of the conversations.
        """
        openings = list(to_open.values())
        others = sorted({opening.other for opening in openings})
        everyone = sorted({*others, *(opening.sender for opening in openings)})
        senders = sorted({opening.sender for opening in openings})
        client_ids = sorted({requests[index].client_id for index in to_open})
        anyone, anyone_params = sql_values.one_of("id", everyone)
        blocker, blocker_params = sql_values.one_of("blocker_id", everyone)
        blocked, blocked_params = sql_values.one_of("blocked_id", everyone)
        people, blocks, sent, _ = self.run(
            [
                (
                    f"SELECT id, is_active, username FROM {User._meta.db_table} WHERE {anyone}",
                    anyone_params,
                ),
                (
                    f"SELECT blocker_id, blocked_id FROM {Block._meta.db_table}"
                    f" WHERE {blocker} AND {blocked}",
                    blocker_params + blocked_params,
                ),
                self._sent_by(senders, client_ids),
                (
                    f"INSERT INTO {ChangeStream._meta.db_table} (user_id, last_seq)"
                    f" SELECT id, 0 FROM {User._meta.db_table}"
                    f" WHERE {anyone} ORDER BY id ON CONFLICT DO NOTHING",
                    anyone_params,
                ),
            ]
        )
        return (
            {user: (bool(is_active), username) for user, is_active, username in people},
            set(blocks),
            set(sent),
        )

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
        opened, opened_params = sql_values.table(
            "o",
            {"direct_key": "text", "created_by": "bigint"},
            [(key, first[key].sender) for key in keys],
        )
        pairs, pairs_params = sql_values.table(
            "p",
            {"direct_key": "text", "person": "bigint"},
            [(key, user) for key in keys for user in _pair(first[key])],
        )
        *_, rows = self.run(
            [
                (
                    f"INSERT INTO {_CONVERSATION}"
                    " (kind, title, direct_key, created_by_id, created_at, last_activity_at)"
                    f" SELECT %s, '', o.direct_key, o.created_by, %s, %s FROM {opened}"
                    " ORDER BY o.direct_key ON CONFLICT DO NOTHING",
                    [Conversation.Kind.DIRECT.value, stamp, stamp, *opened_params],
                ),
                # Members only of the conversations made just now: one that was there (its
                # opener committed while this waited on the key) has its own.
                (
                    f"INSERT INTO {_MEMBERSHIP}"
                    " (conversation_id, user_id, last_read_message_id, joined_at)"
                    f" SELECT c.id, p.person, 0, %s"
                    f" FROM {pairs} JOIN {_CONVERSATION} c ON c.direct_key = p.direct_key"
                    f" WHERE NOT EXISTS (SELECT 1 FROM {_MEMBERSHIP} m"
                    " WHERE m.conversation_id = c.id)"
                    " ON CONFLICT DO NOTHING",
                    [stamp, *pairs_params],
                ),
                self._direct_ids(keys),
            ]
        )
        return rows

    def read_locked(
        self, requests: Sequence[SendRequest], conversation_of: dict[int, int]
    ) -> _Locked:
        conversations = sorted(set(conversation_of.values()))
        senders = sorted({requests[index].sender.pk for index in conversation_of})
        client_ids = sorted({requests[index].client_id for index in conversation_of})
        chosen, params = sql_values.one_of("id", conversations)
        in_chosen, _ = sql_values.one_of("conversation_id", conversations)
        member_in_chosen, _ = sql_values.one_of("m.conversation_id", conversations)
        members_of = f"(SELECT user_id FROM {_MEMBERSHIP} WHERE {in_chosen})"
        kinds, members, blocks, streams, sent = self.run(
            [
                (
                    f"SELECT id, kind FROM {_CONVERSATION} WHERE {chosen} ORDER BY id{self.lock}",
                    params,
                ),
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
                    f" WHERE user_id IN {members_of} ORDER BY user_id{self.lock}",
                    params,
                ),
                self._sent_by(senders, client_ids),
            ]
        )
        by_conversation: dict[int, dict[int, tuple[bool, str]]] = {}
        # Read here, under the conversations' locks, which every change of the flag also
        # takes: the batch shows a member only when they are not shown yet, so that a send
        # to a conversation where the sender wrote before costs no statement more.
        hidden: dict[tuple[int, int], int] = {}
        for conversation_id, user_id, active, username, membership_id, shown in members:
            by_conversation.setdefault(conversation_id, {})[user_id] = (bool(active), username)
            if not shown:
                hidden[(conversation_id, user_id)] = membership_id
        return _Locked(
            kinds=dict(kinds),
            members=by_conversation,
            blocks=set(blocks),
            last_seqs=dict(streams),
            sent=set(sent),
            hidden=hidden,
        )

    @staticmethod
    def _direct_ids(keys: list[str]) -> tuple[str, list]:
        """The statement reading (direct_key, id) of the direct conversations with these keys."""
        keyed, params = sql_values.one_of("direct_key", keys, "text")
        return (f"SELECT direct_key, id FROM {_CONVERSATION} WHERE {keyed}", params)

    @staticmethod
    def _sent_by(senders: list[int], client_ids: list[str]) -> tuple[str, list]:
        """The statement reading which of these client_ids these senders used already."""
        by_sender, sender_params = sql_values.one_of("sender_id", senders)
        with_id, id_params = sql_values.one_of("client_id", client_ids, "text")
        return (
            f"SELECT sender_id, client_id FROM {Message._meta.db_table}"
            f" WHERE {by_sender} AND {with_id}",
            sender_params + id_params,
        )

    def write(
        self,
        rows: list[tuple[int, SendRequest, int]],
        *,
        last_seqs: dict[int, int],
        show: list[int],
        now,
    ) -> tuple[dict[tuple[int, str], int], fanout.Routes, list[tuple[int, int]]]:
        """Insert the messages, record the stamps, touch the conversations, show the
        senders not shown yet (memberships `show`), commit.

        Return the messages' ids, the routes of the members, read after the commit, and
        (conversation id, user id) of the memberships this batch showed.
        """
        created_at = connection.ops.adapt_datetimefield_value(now)
        messages, messages_params = sql_values.table(
            "m",
            _MESSAGE_COLUMNS,
            [
                (
                    conversation_id,
                    request.sender.pk,
                    request.body,
                    request.client_id,
                    Message.hash_body(request.body),
                    seq,
                )
                for conversation_id, request, seq in rows
            ],
        )
        insert = (
            f"INSERT INTO {Message._meta.db_table}"
            " (conversation_id, sender_id, kind, body, client_id, sent_hash, seq, created_at)"
            " SELECT m.conversation_id, m.sender_id, %s, m.body, m.client_id, m.sent_hash,"
            f" m.seq, %s FROM {messages}"
            " RETURNING id, sender_id, client_id"
        )
        insert_params = [Message.Kind.TEXT.value, created_at, *messages_params]
        stamps, streams_params = sql_values.table(
            "s", {"owner": "bigint", "seq": "bigint"}, list(last_seqs.items())
        )
        streams = (
            f"UPDATE {ChangeStream._meta.db_table} SET last_seq = s.seq"
            f" FROM {stamps} WHERE user_id = s.owner"
        )
        conversations = sorted({conversation_id for conversation_id, _, _ in rows})
        touched, touched_params = sql_values.one_of("id", conversations)
        touch = f"UPDATE {_CONVERSATION} SET last_activity_at = %s WHERE {touched}"
        touch_params = [created_at, *touched_params]
        if self.postgres:
            # One statement: PostgreSQL runs data-modifying WITH parts to completion.
            writes = [
                (
                    f"WITH streams AS ({streams}), touched AS ({touch}) {insert}",
                    streams_params + touch_params + insert_params,
                )
            ]
        else:
            writes = [(streams, streams_params), (touch, touch_params), (insert, insert_params)]
        if show:
            # In the same round trip; only writing's first time in a conversation has one.
            to_show, show_params = sql_values.one_of("id", sorted(show))
            writes.append(
                (
                    f"UPDATE {_MEMBERSHIP} SET visible_to_members = TRUE"
                    f" WHERE {to_show} AND NOT visible_to_members"
                    " RETURNING conversation_id, user_id",
                    show_params,
                )
            )
        *written, sockets = self.run(
            writes, commit=True, after=[fanout.routes_statement(sorted(last_seqs))]
        )
        inserted = written[-2] if show else written[-1]
        shown = (
            [(conversation_id, user_id) for conversation_id, user_id in written[-1]]
            if show
            else []
        )
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


def _pair(opening: _Opening) -> list[int]:
    return sorted((opening.sender, opening.other))


def _binds_on_client(cursor) -> bool:
    import psycopg

    return isinstance(cursor, psycopg.ClientCursor)


# psycopg's ExecStatus.TUPLES_OK, without importing psycopg where SQLite is used.
_TUPLES_OK = 2
