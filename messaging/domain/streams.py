"""Change streams: each user's last stamp, locked in user-id order, drawn for each change.

Every change that touches a user's conversations holds the streams of everyone who sees it
from before it draws its stamp until it commits, so that one user's stamps become visible
in order on every database (messaging.models.ChangeStream).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from messaging import sql_values
from messaging.domain import send_rules
from messaging.models import ChangeStream, Conversation, Membership


def streams_ensure(user_ids: Iterable[int]) -> None:
    """Create the change streams of these users where they are missing."""
    # In id order, as every lock on streams is taken.
    ChangeStream.objects.bulk_create(
        [ChangeStream(user_id=user_id) for user_id in sorted(set(user_ids))],
        ignore_conflicts=True,
    )


def streams_lock(user_ids: Iterable[int]) -> dict[int, int]:
    """Lock the members' change streams in user-id order; return their last stamps.

    Every change that touches a user's conversations holds this lock from before it
    draws its stamp until it commits, so one user's stamps become visible in order.
    """
    ids = sorted(set(user_ids))
    rows = ChangeStream.objects.select_for_update().filter(user_id__in=ids).order_by("user_id")
    last = {row.user_id: row.last_seq for row in rows}
    if len(last) != len(ids):
        streams_ensure(uid for uid in ids if uid not in last)
        rows = ChangeStream.objects.select_for_update().filter(user_id__in=ids).order_by("user_id")
        last = {row.user_id: row.last_seq for row in rows}
    return last


def streams_lock_members(conversation_id: int) -> dict[int, int]:
    """As streams_lock, for the members of a conversation.

    The conversation's row is locked first, as group changes do: on PostgreSQL a query
    that waited on a lock would otherwise see the members of before the wait, and a
    message could miss someone just added or reach someone just removed.
    """
    _conversation_lock(conversation_id)
    rows = (
        ChangeStream.objects.select_for_update(of=("self",))
        .filter(user__memberships__conversation_id=conversation_id)
        .order_by("user_id")
        .values_list("user_id", "last_seq")
    )
    return dict(rows)


def _conversation_lock(conversation_id: int) -> None:
    list(
        Conversation.objects.select_for_update()
        .filter(pk=conversation_id)
        .values_list("pk", flat=True)
    )


def draw_stamp(last_seqs: dict[int, int], conversation_id: int) -> int:
    """Draw the next stamp for a change to a conversation seen by these users and record
    it as their last."""
    seq = send_rules.stamp(last_seqs)
    ChangeStream.objects.filter(user_id__in=last_seqs).update(
        last_seq=seq, last_conversation_id=conversation_id
    )
    return seq


def member_ids(conversation_id: int) -> list[int]:
    """Return the ids of a conversation's members."""
    return sorted(members_of([conversation_id]).get(conversation_id, ()))


def members_of(conversation_ids: Iterable[int]) -> dict[int, set[int]]:
    """Return the members' ids of each of these conversations that has any."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return {}
    # Written out: every `typing` and `read` frame asks it, and the ORM took longer to build
    # the query than the database to answer it.
    among, params = sql_values.one_of("conversation_id", ids)
    members: dict[int, set[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT conversation_id, user_id FROM {Membership._meta.db_table} WHERE {among}",
            params,
        )
        for conversation_id, user_id in cursor:
            members.setdefault(conversation_id, set()).add(user_id)
    return members
