"""Run a batch's statements in its own transaction, in as few round trips as it can."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection
from django.db.transaction import TransactionManagementError

from messaging import sql_values
from messaging.delivery import fanout
from messaging.domain import send_rules
from messaging.sending import batch_statements as statement
from messaging.sending.decisions import Locked
from messaging.sending.requests import Opening, SendRequest

User = get_user_model()


class BatchSql:
    """A batch's statements (batch_statements) run in round trips, and its transaction.

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
        (rows,) = self.run([statement.direct_ids(keys)])
        return rows

    def prepare_openings(
        self, requests: Sequence[SendRequest], to_open: dict[int, Opening]
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
        sends = sorted(
            {(opening.sender, requests[index].client_id) for index, opening in to_open.items()}
        )
        people, blocks, sent, _ = self.run(
            [
                statement.people(everyone),
                statement.blocks_among(everyone),
                statement.sent_by(sends),
                statement.streams_made(everyone),
            ]
        )
        return _persons(people), set(blocks), _earlier_sends(sent)

    def open_direct(self, openings: Iterable[Opening], *, now) -> list[tuple]:
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
                statement.conversations_made([(key, first[key].sender) for key in keys], stamp),
                statement.members_made(
                    [(key, user) for key in keys for user in _pair(first[key])], stamp
                ),
                statement.direct_ids(keys),
            ]
        )
        return rows

    def read_locked(
        self, requests: Sequence[SendRequest], conversation_of: dict[int, int]
    ) -> Locked:
        """Lock the conversations and their members' streams; read what decides the sends."""
        conversations = sorted(set(conversation_of.values()))
        sends = sorted(
            {(requests[index].sender.pk, requests[index].client_id) for index in conversation_of}
        )
        kinds, members, blocks, streams, sent = self.run(
            [*statement.locked_reads(conversations, lock=self.lock), statement.sent_by(sends)]
        )
        sending = {sender for sender, _ in sends}
        by_conversation: dict[int, dict[int, send_rules.Person]] = {}
        # Read here, under the conversations' locks, which every change of the flag also
        # takes: the batch shows a member only when they are not shown yet, so that a send
        # to a conversation where the sender wrote before costs no statement more.
        hidden: dict[tuple[int, int], int] = {}
        # The senders as members show them: one who is in none of the conversations
        # read is left to the single path (Locked.decide), which refuses them.
        people: dict[int, send_rules.Person] = {}
        for conversation_id, user_id, active, username, membership_id, shown in members:
            person = send_rules.Person(user_id, bool(active), username)
            by_conversation.setdefault(conversation_id, {})[user_id] = person
            if user_id in sending:
                people[user_id] = person
            if not shown:
                hidden[(conversation_id, user_id)] = membership_id
        return Locked(
            kinds=dict(kinds),
            members=by_conversation,
            blocks=set(blocks),
            last_seqs=dict(streams),
            sent=_earlier_sends(sent),
            senders=people,
            hidden=hidden,
        )

    def write(
        self,
        rows: list[dict],
        *,
        last_stamps: dict[int, tuple[int, int]],
        show: list[int],
        now,
    ) -> tuple[dict[tuple[int, str], int], fanout.Routes, list[tuple[int, int]]]:
        """Insert the messages (rows of send_rules.message_fields), record the stamps,
        touch the conversations, show the senders not shown yet (memberships `show`), commit.

        Return the messages' ids, the routes of the members, read after the commit, and
        (conversation id, user id) of the memberships this batch showed.
        """
        created_at = connection.ops.adapt_datetimefield_value(now)
        writes = statement.message_writes(rows, last_stamps, created_at, postgres=self.postgres)
        if show:
            # In the same round trip; only writing's first time in a conversation has one.
            writes.append(statement.members_shown(show))
        *written, sockets = self.run(
            writes, commit=True, after=[fanout.routes_statement(sorted(last_stamps))]
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


def _persons(rows: list[tuple]) -> dict[int, send_rules.Person]:
    return {user: send_rules.Person(user, bool(active), name) for user, active, name in rows}


def _earlier_sends(rows: list[tuple]) -> dict[tuple[int, str], send_rules.Earlier]:
    """Map (sender id, client_id) to the message stored with it, from statement.sent_by's rows."""
    return {
        (sender, client_id): send_rules.Earlier(conversation_id, direct_key, sent_hash)
        for sender, client_id, conversation_id, direct_key, sent_hash in rows
    }


def _pair(opening: Opening) -> list[int]:
    return sorted((opening.sender, opening.other))


def _binds_on_client(cursor) -> bool:
    import psycopg

    return isinstance(cursor, psycopg.ClientCursor)


# psycopg's ExecStatus.TUPLES_OK, without importing psycopg where SQLite is used.
_TUPLES_OK = 2
