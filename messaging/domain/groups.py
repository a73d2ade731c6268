"""Group conversations: rename, add people, remove people, leave.

Each change is stored as a system line in the conversation (stamped and synced like any
message) and pushed as `conversation.updated` to everyone it concerns, the removed included.
Any member may rename the group, add people and leave; only the group's creator may remove
someone else. Someone removed, or gone, loses access to the group altogether: its history,
its new messages and its frames.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from messaging.domain import presence
from messaging.domain.blocks import cut_off_ids
from messaging.domain.services import announce_change
from messaging.domain.streams import member_ids, streams_ensure
from messaging.models import Conversation, Membership
from messaging.protocol import ChatError, ErrorCode, user_data

User = get_user_model()

MAX_TITLE = 100


def _locked_group(*, actor, conversation_id: int) -> Conversation:
    """Return the actor's group, locked so that membership changes queue one after another."""
    conversation = (
        Conversation.objects.select_for_update()
        .filter(pk=conversation_id, memberships__user=actor)
        .first()
    )
    if conversation is None:
        raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
    if conversation.kind != Conversation.Kind.GROUP:
        raise ChatError(ErrorCode.FORBIDDEN, "a direct conversation has no members to change")
    return conversation


@transaction.atomic
def group_rename(*, actor, conversation_id: int, title: str) -> Conversation:
    """Give the group a new title (blank: none)."""
    title = title.strip()
    if len(title) > MAX_TITLE:
        raise ChatError(ErrorCode.TOO_LONG, f"a title has at most {MAX_TITLE} characters")
    conversation = _locked_group(actor=actor, conversation_id=conversation_id)
    conversation.title = title
    conversation.save(update_fields=["title"])
    line = (
        f'{actor.username} renamed the group to "{title}"'
        if title
        else (f"{actor.username} removed the group's name")
    )
    announce_change(
        conversation,
        actor=actor,
        line=line,
        change={"kind": "renamed", "title": title},
        audience=member_ids(conversation.pk),
    )
    return conversation


@transaction.atomic
def group_add(*, actor, conversation_id: int, usernames: list[str]) -> Conversation:
    """Add people to the group; those already in it are skipped."""
    conversation = _locked_group(actor=actor, conversation_id=conversation_id)
    current = set(member_ids(conversation.pk))
    found = {user.username: user for user in User.objects.filter(username__in=set(usernames))}
    missing = sorted(set(usernames) - set(found))
    if missing:
        raise ChatError(ErrorCode.NOT_FOUND, f"no user named {', '.join(missing)}")
    inactive = sorted(name for name, user in found.items() if not user.is_active)
    if inactive:
        raise ChatError(ErrorCode.CANNOT_SEND, f"{', '.join(inactive)} cannot join")
    blocked = cut_off_ids(actor.pk, among=[user.pk for user in found.values()])
    if blocked:
        raise ChatError(
            ErrorCode.CANNOT_SEND, "you cannot add someone you block or who blocks you"
        )
    new = [user for user in found.values() if user.pk not in current]
    if not new:
        return conversation
    if len(current) + len(new) > settings.CHAT_MAX_GROUP_SIZE:
        raise ChatError(
            ErrorCode.FORBIDDEN, f"a group has at most {settings.CHAT_MAX_GROUP_SIZE} members"
        )
    # The newcomers see at once who showed themselves here; the actor shows themselves by
    # the line below (store_message), if not yet.
    with presence.announcing_sight_changes(_shown_member_ids(conversation.pk)):
        Membership.objects.bulk_create(
            [Membership(conversation=conversation, user=user) for user in new]
        )
        streams_ensure(user.pk for user in new)
        names = ", ".join(sorted(user.username for user in new))
        announce_change(
            conversation,
            actor=actor,
            line=f"{actor.username} added {names}",
            change={"kind": "added", "users": [user_data(user) for user in new]},
            audience=current | {user.pk for user in new},
        )
    return conversation


def _shown_member_ids(conversation_id: int) -> list[int]:
    return list(
        Membership.objects.filter(
            conversation_id=conversation_id, visible_to_members=True
        ).values_list("user_id", flat=True)
    )


@transaction.atomic
def group_remove(*, actor, conversation_id: int, username: str) -> Conversation:
    """Remove someone from the group (only its creator may), or leave it (anyone)."""
    conversation = _locked_group(actor=actor, conversation_id=conversation_id)
    membership = (
        Membership.objects.select_related("user")
        .filter(conversation=conversation, user__username=username)
        .first()
    )
    if membership is None:
        raise ChatError(ErrorCode.NOT_FOUND, f"{username} is not in this group")
    leaving = membership.user_id == actor.pk
    if not leaving and conversation.created_by_id != actor.pk:
        raise ChatError(ErrorCode.FORBIDDEN, "only the group's creator can remove people")
    audience = member_ids(conversation.pk)
    membership.delete()
    line = (
        f"{actor.username} left"
        if leaving
        else f"{actor.username} removed {membership.user.username}"
    )
    announce_change(
        conversation,
        actor=actor,
        line=line,
        change={"kind": "left" if leaving else "removed", "users": [user_data(membership.user)]},
        audience=audience,
    )
    return conversation
