"""Reads: inbox, history, sync, people; the views and the socket both call these."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, IntegerField, Max, OuterRef, Subquery
from django.db.models.functions import Coalesce

from messaging.domain import visibility
from messaging.models import Conversation, Membership, Message
from messaging.protocol import ChatError, ErrorCode, iso_utc, message_data, user_data

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


def conversation_list_for_user(*, user, conversation_ids=None) -> list[dict[str, Any]]:
    """List the user's conversations, newest activity first, with last message and unread."""
    memberships = (
        Membership.objects.filter(user=user)
        .select_related("conversation__created_by")
        .annotate(
            unread=_unread_count_subquery(user),
            last_message_id=Subquery(
                Message.objects.filter(conversation_id=OuterRef("conversation_id"))
                .order_by("-id")
                .values("id")[:1]
            ),
        )
        .order_by("-conversation__last_activity_at", "-conversation_id")
    )
    if conversation_ids is not None:
        memberships = memberships.filter(conversation_id__in=conversation_ids)
    memberships = list(memberships)
    conversation_ids = [membership.conversation_id for membership in memberships]
    last_messages = {
        message.pk: message
        for message in Message.objects.select_related("sender").filter(
            pk__in=[m.last_message_id for m in memberships if m.last_message_id]
        )
    }
    members = _members_by_conversation(conversation_ids)
    return [
        conversation_data(
            membership.conversation,
            members=members.get(membership.conversation_id, []),
            last_message=last_messages.get(membership.last_message_id),
            unread=membership.unread,
            last_read=membership.last_read_message_id,
        )
        for membership in memberships
    ]


def _members_by_conversation(conversation_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    members: dict[int, list[dict[str, Any]]] = {}
    rows = (
        Membership.objects.filter(conversation_id__in=conversation_ids)
        .select_related("user")
        .order_by("user__username")
    )
    for row in rows:
        members.setdefault(row.conversation_id, []).append(member_data(row.user))
    return members


def member_data(user) -> dict[str, Any]:
    """Show a member as the protocol does, marking one who can no longer use the chat.

    `"active": false` appears only on a deactivated person, so clients can say why a message
    to them is refused; the usual shape is left as the protocol fixes it.
    """
    data = user_data(user)
    if not user.is_active:
        data["active"] = False
    return data


def conversation_data(
    conversation: Conversation,
    *,
    members: list[dict[str, Any]],
    last_message: Message | None = None,
    unread: int = 0,
    last_read: int = 0,
) -> dict[str, Any]:
    """Show a conversation as the API does."""
    return {
        "id": conversation.pk,
        "kind": conversation.kind,
        "title": conversation.title,
        "members": members,
        "created_by": user_data(conversation.created_by) if conversation.created_by else None,
        "created_at": iso_utc(conversation.created_at),
        "last_activity_at": iso_utc(conversation.last_activity_at),
        "last_message": message_data(last_message) if last_message else None,
        "unread": unread,
        "last_read": last_read,
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
) -> tuple[list[Message], bool]:
    """Return a page of messages, ascending: older than `before` (the newest page if
    neither is given), or newer than `after`; `has_more` says whether more lie beyond it."""
    messages = Message.objects.select_related("sender").filter(conversation_id=conversation_id)
    if after is not None:
        page = list(messages.filter(pk__gt=after).order_by("id")[: limit + 1])
        return page[:limit], len(page) > limit
    if before is not None:
        messages = messages.filter(pk__lt=before)
    page = list(messages.order_by("-id")[: limit + 1])
    has_more = len(page) > limit
    return list(reversed(page[:limit])), has_more


def messages_after(*, user, after: int, limit: int) -> tuple[list[Message], bool]:
    """Return the changes to the user's conversations stamped after `after`, ascending."""
    conversation_ids = Membership.objects.filter(user=user).values("conversation_id")
    page = list(
        Message.objects.select_related("sender")
        .filter(conversation_id__in=conversation_ids, seq__gt=after)
        .order_by("seq")[: limit + 1]
    )
    return page[:limit], len(page) > limit


def last_seq_for_user(*, user) -> int:
    """Return the largest change stamp of the user's current conversations (0 if none)."""
    conversation_ids = Membership.objects.filter(user=user).values("conversation_id")
    latest = Message.objects.filter(conversation_id__in=conversation_ids).aggregate(
        latest=Max("seq")
    )["latest"]
    return latest or 0


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
