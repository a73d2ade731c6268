"""The statements of a batch, written out: each builder returns (SQL text, parameters)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from messaging import sql_values
from messaging.models import Block, ChangeStream, Conversation, Membership, Message

User = get_user_model()

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

Statement = tuple[str, list]


def people(ids: list[int]) -> Statement:
    """Read (id, is_active, username) of these users."""
    anyone, params = sql_values.one_of("id", ids)
    return f"SELECT id, is_active, username FROM {User._meta.db_table} WHERE {anyone}", params


def blocks_among(ids: list[int]) -> Statement:
    """Read the blocks between any two of these users."""
    blocker, blocker_params = sql_values.one_of("blocker_id", ids)
    blocked, blocked_params = sql_values.one_of("blocked_id", ids)
    return (
        f"SELECT blocker_id, blocked_id FROM {Block._meta.db_table} WHERE {blocker} AND {blocked}",
        blocker_params + blocked_params,
    )


def streams_made(ids: list[int]) -> Statement:
    """Create the change streams these users lack, in id order."""
    anyone, params = sql_values.one_of("id", ids)
    return (
        f"INSERT INTO {ChangeStream._meta.db_table} (user_id, last_seq)"
        f" SELECT id, 0 FROM {User._meta.db_table}"
        f" WHERE {anyone} ORDER BY id ON CONFLICT DO NOTHING",
        params,
    )


def direct_ids(keys: list[str]) -> Statement:
    """Read (direct_key, id) of the direct conversations with these keys."""
    keyed, params = sql_values.one_of("direct_key", keys, "text")
    return (f"SELECT direct_key, id FROM {_CONVERSATION} WHERE {keyed}", params)


def sent_by(sends: list[tuple[int, str]]) -> Statement:
    """Read what was stored with these (sender, client_id) (for batch_sql._earlier_sends)."""
    # Pairs, not "a sender of these and a client_id of those": PostgreSQL would look up
    # every combination in the index, a batch of 50 sends 2,500 times, under its locks.
    asked, params = sql_values.table("asked", {"sender_id": "bigint", "client_id": "text"}, sends)
    return (
        "SELECT m.sender_id, m.client_id, m.conversation_id, c.direct_key, m.sent_hash"
        f" FROM {asked} JOIN {Message._meta.db_table} m"
        " ON m.sender_id = asked.sender_id AND m.client_id = asked.client_id"
        f" JOIN {_CONVERSATION} c ON c.id = m.conversation_id",
        params,
    )


def conversations_made(openers: list[tuple[str, int]], stamp) -> Statement:
    """Create the direct conversations of these (key, opener) not there yet, in key order."""
    opened, params = sql_values.table("o", {"direct_key": "text", "created_by": "bigint"}, openers)
    return (
        f"INSERT INTO {_CONVERSATION}"
        " (kind, title, direct_key, created_by_id, created_at, last_activity_at)"
        f" SELECT %s, '', o.direct_key, o.created_by, %s, %s FROM {opened}"
        " ORDER BY o.direct_key ON CONFLICT DO NOTHING",
        [Conversation.Kind.DIRECT.value, stamp, stamp, *params],
    )


def members_made(people: list[tuple[str, int]], stamp) -> Statement:
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


def locked_reads(conversations: list[int], *, lock: str) -> list[Statement]:
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


def message_writes(
    rows: list[dict], last_stamps: dict[int, tuple[int, int]], created_at, *, postgres: bool
) -> list[Statement]:
    """Insert the messages, record the members' last stamps (user id -> stamp and its
    conversation), touch the conversations.

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
        "s",
        {"owner": "bigint", "seq": "bigint", "conversation_id": "bigint"},
        [(user_id, seq, place) for user_id, (seq, place) in last_stamps.items()],
    )
    streams = (
        f"UPDATE {ChangeStream._meta.db_table}"
        " SET last_seq = s.seq, last_conversation_id = s.conversation_id"
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


def members_shown(memberships: list[int]) -> Statement:
    """Show these members to the others of their conversations, if not shown yet."""
    to_show, params = sql_values.one_of("id", sorted(memberships))
    return (
        f"UPDATE {_MEMBERSHIP} SET visible_to_members = TRUE"
        f" WHERE {to_show} AND NOT visible_to_members"
        " RETURNING conversation_id, user_id",
        params,
    )
