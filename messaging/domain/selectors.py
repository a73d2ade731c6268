"""Reads: inbox, history, sync, people; the views and the socket both call these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, F, IntegerField, OuterRef, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber

from messaging.domain import visibility
from messaging.domain.message_parts import ShownMessage, shown_rows, with_parts
from messaging.models import ChangeStream, Conversation, Membership, Mention, Message
from messaging.protocol import ChatError, ErrorCode, iso_utc, message_data, user_row_data
from messaging.sql_values import is_one_of, one_of

User = get_user_model()


def conversation_for_member(*, user, conversation_id: int) -> Conversation:
    """Return the conversation if the user is a member, else raise `not_found`."""
    conversation = Conversation.objects.filter(pk=conversation_id, memberships__user=user).first()
    if conversation is None:
        raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
    return conversation


def _unread_count_subquery(user) -> Subquery:
    unread = (
        Message.objects.filter(
            conversation_id=OuterRef("conversation_id"),
            id__gt=OuterRef("last_read_message_id"),
            deleted_at__isnull=True,
            kind=Message.Kind.TEXT,
        )
        .exclude(sender=user)
        .order_by()
        .values("conversation_id")
        .annotate(count=Count("id"))
        .values("count")
    )
    return Coalesce(Subquery(unread, output_field=IntegerField()), 0)


def _unread_mentions_subquery(user) -> Subquery:
    # From the mentions' own index (user, conversation, message): no message is read but
    # to leave out the deleted ones.
    mentions = (
        Mention.objects.filter(
            user=user,
            conversation_id=OuterRef("conversation_id"),
            message_id__gt=OuterRef("last_read_message_id"),
            message__deleted_at__isnull=True,
        )
        .order_by()
        .values("conversation_id")
        .annotate(count=Count("id"))
        .values("count")
    )
    return Coalesce(Subquery(mentions, output_field=IntegerField()), 0)


def conversation_list_for_user(
    *, user, conversation_ids=None, members_listed: int | None = None
) -> list[dict[str, Any]]:
    """List the user's conversations, newest activity first, with last message and unread.

    With `members_listed`, a group lists at most that many members (its `member_count`
    says how many it has): the inbox of someone in many big groups stays small.
    """
    rows = (
        Membership.objects.filter(user=user)
        .annotate(
            unread=_unread_count_subquery(user),
            unread_mentions=_unread_mentions_subquery(user),
            last_message_id=Subquery(
                Message.objects.filter(conversation_id=OuterRef("conversation_id"))
                .order_by("-id")
                .values("id")[:1]
            ),
        )
        .order_by("-conversation__last_activity_at", "-conversation_id")
    )
    if conversation_ids is not None:
        rows = rows.filter(is_one_of(Membership, "conversation_id", list(conversation_ids)))
    # Plain rows of what conversation_data shows: a heavy user's page is a hundred rows, and
    # a model each for the membership, the conversation and its creator cost more than the
    # rest of the page.
    listed = list(
        rows.values(
            "conversation_id",
            "last_read_message_id",
            "muted",
            "unread",
            "unread_mentions",
            "last_message_id",
            kind=F("conversation__kind"),
            title=F("conversation__title"),
            created_at=F("conversation__created_at"),
            last_activity_at=F("conversation__last_activity_at"),
            creator_id=F("conversation__created_by_id"),
            creator_name=F("conversation__created_by__username"),
        )
    )
    conversation_ids = [row["conversation_id"] for row in listed]
    last_ids = [row["last_message_id"] for row in listed if row["last_message_id"]]
    last_messages = {
        message.pk: message
        for message in with_parts(
            shown_rows(Message.objects.filter(is_one_of(Message, "id", last_ids)))
        )
    }
    members = _members_by_conversation(conversation_ids, listed=members_listed)
    counts = _member_counts(conversation_ids, members, listed=members_listed)
    return [
        conversation_data(
            row,
            members=members.get(row["conversation_id"], []),
            last_message=last_messages.get(row["last_message_id"]),
            member_count=counts.get(row["conversation_id"], 0),
        )
        for row in listed
    ]


def conversation_page_for_user(
    *, user, limit: int, cursor: tuple[dt.datetime, int] | None = None
) -> tuple[list[dict[str, Any]], bool, str | None]:
    """Return a page of the user's inbox, newest activity first, and where the next begins.

    The order is (last activity, conversation id), both descending, so a cursor made from
    the last entry of a page names one place; answers (conversations, has_more, next_cursor).
    """
    ids = _inbox_page_ids(user_id=user.pk, limit=limit + 1, cursor=cursor)
    has_more = len(ids) > limit
    page = conversation_list_for_user(
        user=user, conversation_ids=ids[:limit], members_listed=INBOX_MEMBERS_LISTED
    )
    next_cursor = inbox_cursor(page[-1]) if has_more and page else None
    return page, has_more, next_cursor


def _inbox_page_ids(
    *, user_id: int, limit: int, cursor: tuple[dt.datetime, int] | None
) -> list[int]:
    """Return the ids of the user's next `limit` conversations by (activity, id), descending."""
    after = "AND (c.last_activity_at, c.id) < (%s, %s)" if cursor else ""
    # The user's conversations are read first (MATERIALIZED: their memberships, each one's
    # activity from conversation_activity_idx) and sorted by the database. Left to plan
    # ORDER BY with LIMIT, PostgreSQL may walk every conversation by activity looking for the
    # user's (all of them, for someone whose talk went quiet long ago); sorted in Python, a
    # heavy user's 2,000 timestamps cost more CPU to read than the rest of the page to build.
    sql = f"""
        WITH mine AS MATERIALIZED (
            SELECT c.last_activity_at AS at, c.id
            FROM {Membership._meta.db_table} m
            JOIN {Conversation._meta.db_table} c ON c.id = m.conversation_id
            WHERE m.user_id = %s {after}
        )
        SELECT id FROM mine ORDER BY at DESC, id DESC LIMIT %s
    """
    params: list[Any] = [user_id]
    if cursor:
        at, conversation_id = cursor
        params += [connection.ops.adapt_datetimefield_value(at), conversation_id]
    with connection.cursor() as rows:
        rows.execute(sql, [*params, limit])
        return [conversation_id for (conversation_id,) in rows.fetchall()]


# A group in the inbox lists this many members at most; the rest come with its detail.
INBOX_MEMBERS_LISTED = 5


def inbox_cursor(conversation: dict[str, Any]) -> str:
    """Name the place after a listed conversation: its activity in microseconds, and its id."""
    at = dt.datetime.fromisoformat(conversation["last_activity_at"].replace("Z", "+00:00"))
    micros = (at - EPOCH) // dt.timedelta(microseconds=1)
    return f"{micros}.{conversation['id']}"


def parse_inbox_cursor(raw: str) -> tuple[dt.datetime, int]:
    """Read a cursor inbox_cursor made; raise ValueError for anything else."""
    micros, _, conversation_id = raw.partition(".")
    if not (micros.isascii() and micros.isdigit() and conversation_id.isascii()):
        raise ValueError(raw)
    if not conversation_id.isdigit() or len(micros) > 18 or len(conversation_id) > 19:
        raise ValueError(raw)
    return EPOCH + dt.timedelta(microseconds=int(micros)), int(conversation_id)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _members_by_conversation(
    conversation_ids: list[int], *, listed: int | None = None
) -> dict[int, list[dict[str, Any]]]:
    members: dict[int, list[dict[str, Any]]] = {}
    rows = Membership.objects.filter(is_one_of(Membership, "conversation_id", conversation_ids))
    if listed is not None:
        # The first `listed` by name in each conversation, not every member of big groups.
        rows = rows.annotate(
            place=Window(
                RowNumber(), partition_by=[F("conversation_id")], order_by="user__username"
            )
        ).filter(place__lte=listed)
    # Only what member_data shows, as plain rows: a big group's users' other columns are
    # not read, and no model is built for each of them.
    rows = rows.order_by("user__username").values_list(
        "conversation_id", "user_id", "user__username", "user__is_active"
    )
    for conversation_id, *member in rows:
        members.setdefault(conversation_id, []).append(member_row_data(*member))
    return members


def _member_counts(
    conversation_ids: list[int], members: dict[int, list], *, listed: int | None
) -> dict[int, int]:
    counts = {conversation_id: len(found) for conversation_id, found in members.items()}
    if listed is None:
        return counts
    # Only a conversation that filled its listed places can have more members.
    full = [conversation_id for conversation_id, n in counts.items() if n >= listed]
    counts.update(
        Membership.objects.filter(is_one_of(Membership, "conversation_id", full))
        .order_by()
        .values("conversation_id")
        .annotate(n=Count("id"))
        .values_list("conversation_id", "n")
    )
    return counts


def member_data(user) -> dict[str, Any]:
    """Show a member as the protocol does, marking one who can no longer use the chat.

    `"active": false` appears only on a deactivated person, so clients can say why a message
    to them is refused; the usual shape is left as the protocol fixes it.
    """
    return member_row_data(user.pk, user.username, user.is_active)


def member_row_data(user_id: int, username: str, is_active: bool) -> dict[str, Any]:
    """Show a member read as plain columns, as member_data shows a user."""
    data = user_row_data(user_id, username)
    if not is_active:
        data["active"] = False
    return data


def conversation_data(
    row: dict[str, Any],
    *,
    members: list[dict[str, Any]],
    last_message: ShownMessage | None,
    member_count: int | None = None,
) -> dict[str, Any]:
    """Show a conversation as the API does, from its row of conversation_list_for_user."""
    creator = row["creator_id"]
    return {
        "id": row["conversation_id"],
        "kind": row["kind"],
        "title": row["title"],
        "members": members,
        "created_by": user_row_data(creator, row["creator_name"]) if creator else None,
        "created_at": iso_utc(row["created_at"]),
        "last_activity_at": iso_utc(row["last_activity_at"]),
        "last_message": message_data(last_message) if last_message else None,
        "unread": row["unread"],
        "last_read": row["last_read_message_id"],
        "mentions": row["unread_mentions"],
        "muted": row["muted"],
        "member_count": len(members) if member_count is None else member_count,
    }


def conversation_detail(*, user, conversation_id: int) -> dict[str, Any]:
    """Show one of the user's conversations, or raise `not_found`."""
    found = conversation_list_for_user(user=user, conversation_ids=[conversation_id])
    if not found:
        raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
    return found[0]


def read_pointers(*, conversation_id: int, viewer=None) -> dict[int, int]:
    """Return how far each member has read, by user id.

    With a `viewer`, only the pointers the privacy rule lets them see: their own, and those
    of members who send read receipts, showed themselves to them and are not cut off by a
    block (messaging.domain.visibility).
    """
    pointers = dict(
        Membership.objects.filter(conversation_id=conversation_id).values_list(
            "user_id", "last_read_message_id"
        )
    )
    if viewer is None:
        return pointers
    seen = visibility.seen_by(viewer_id=viewer.pk, setting=visibility.RECEIPTS, among=pointers)
    return {
        user_id: up_to
        for user_id, up_to in pointers.items()
        if user_id == viewer.pk or user_id in seen
    }


def message_history(
    *, conversation_id: int, before: int | None, limit: int, after: int | None = None
) -> tuple[list[ShownMessage], bool]:
    """Return a page of messages, ascending: older than `before` (the newest page if
    neither is given), or newer than `after`; `has_more` says whether more lie beyond it."""
    messages = Message.objects.filter(conversation_id=conversation_id)
    if after is not None:
        page = shown_rows(messages.filter(pk__gt=after).order_by("id")[: limit + 1])
        return list(with_parts(page[:limit])), len(page) > limit
    if before is not None:
        messages = messages.filter(pk__lt=before)
    page = shown_rows(messages.order_by("-id")[: limit + 1])
    has_more = len(page) > limit
    return list(with_parts(page[:limit][::-1])), has_more


def messages_after(*, user, after: int, limit: int) -> tuple[list[ShownMessage], bool]:
    """Return the changes to the user's conversations stamped after `after`, ascending."""
    conversation_ids = Membership.objects.filter(user=user).values("conversation_id")
    # The page's ids first, from the index alone (changes_idx holds conversation, seq and
    # id): a heavy user's whole history is then never read from the table to keep 201 rows.
    ids = list(
        Message.objects.filter(conversation_id__in=conversation_ids, seq__gt=after)
        .order_by("seq")
        .values_list("id", flat=True)[: limit + 1]
    )
    if not ids:
        return [], False
    page = shown_rows(
        Message.objects.filter(is_one_of(Message, "id", ids[:limit])).order_by("seq")
    )
    return list(with_parts(page)), len(ids) > limit


def last_seqs_of(*, user_ids: Iterable[int]) -> dict[int, int]:
    """Return each user's largest change stamp of their current conversations (0 if none)."""
    ids = sorted(set(user_ids))
    latest = dict.fromkeys(ids, 0)
    if not ids:
        return latest
    confirmed = _streams_confirmed(ids)
    latest.update(confirmed)
    rest = [user_id for user_id in ids if user_id not in confirmed]
    if rest:
        latest.update(_newest_stamps(rest))
    return latest


def _streams_confirmed(ids: list[int]) -> dict[int, int]:
    """Return the last stamps of the users' streams that still name their newest change.

    No change to a user's conversations is stamped above their stream's last stamp (every
    change raises the streams of all the members it reaches, a member's join included).
    So while the user is still in the stream's last conversation, and a change there holds
    that stamp, it is the largest: two index steps instead of one per conversation. A
    stream still at 0 has seen no change at all.
    """
    # Written out: every pong asks this (idle tabs ping every 15 s), and the ORM took
    # longer to build the statement than the database to answer it.
    streams, params = one_of("s.user_id", ids)
    sql = f"""
        SELECT s.user_id, s.last_seq FROM {ChangeStream._meta.db_table} s
        WHERE {streams} AND (s.last_seq = 0 OR (
            EXISTS (
                SELECT 1 FROM {Membership._meta.db_table} m
                WHERE m.user_id = s.user_id AND m.conversation_id = s.last_conversation_id
            )
            AND EXISTS (
                SELECT 1 FROM {Message._meta.db_table} g
                WHERE g.conversation_id = s.last_conversation_id AND g.seq = s.last_seq
            )
        ))
    """
    with connection.cursor() as rows:
        rows.execute(sql, params)
        return dict(rows.fetchall())


def _newest_stamps(ids: list[int]) -> dict[int, int]:
    """Return each user's newest stamp among their conversations, one by one."""
    # Each conversation's newest stamp is one step down its (conversation, seq) index: a
    # heavy user's 2,000 conversations cost 2,000 steps, not a read of their 50,000 messages.
    members, params = one_of("m.user_id", ids)
    sql = f"""
        SELECT m.user_id, MAX((
            SELECT seq FROM {Message._meta.db_table}
            WHERE conversation_id = m.conversation_id ORDER BY seq DESC LIMIT 1
        ))
        FROM {Membership._meta.db_table} m WHERE {members} GROUP BY m.user_id
    """
    with connection.cursor() as rows:
        rows.execute(sql, params)
        return {user_id: seq for user_id, seq in rows.fetchall() if seq is not None}


# Shorter lookups match from the start of a name only: one letter is in most names.
SUBSTRING_FROM = 2


def users_by_prefix(*, user, prefix: str, limit: int = 20) -> list:
    """Find active people whose username holds the text, those it starts first.

    Both lookups are indexed on PostgreSQL (migration 0011: the upper-cased name for
    prefixes, its trigrams for the rest), so a list of 100,000 people stays cheap to ask.
    """
    people = User.objects.filter(is_active=True).exclude(pk=user.pk)
    found = list(people.filter(username__istartswith=prefix).order_by("username")[:limit])
    if len(found) < limit and len(prefix) >= SUBSTRING_FROM:
        found += list(
            people.filter(username__icontains=prefix)
            .exclude(username__istartswith=prefix)
            .order_by("username")[: limit - len(found)]
        )
    return found


def peer_ids(*, user_id: int) -> set[int]:
    """Return the ids of everyone who shares a conversation with the user."""
    conversation_ids = Membership.objects.filter(user_id=user_id).values("conversation_id")
    return set(
        Membership.objects.filter(conversation_id__in=conversation_ids)
        .exclude(user_id=user_id)
        .values_list("user_id", flat=True)
    )
