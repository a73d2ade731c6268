"""Read pointers and typing: what members tell each other as they read and write."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists

from messaging.domain import streams, visibility
from messaging.domain.events import frame_event, publish_on_commit, user_group
from messaging.models import Membership, Message
from messaging.protocol import ChatError, ErrorCode, user_data


def _not_found(what: str) -> ChatError:
    return ChatError(ErrorCode.NOT_FOUND, f"no such {what}")


def conversation_mark_read(*, user, conversation_id: int, up_to: int) -> bool:
    """Move the user's read pointer forward to a message and tell the members.

    An older or equal pointer changes nothing, tells no one, and returns False.
    """
    # The move and its frames commit together: a failure after the UPDATE undoes the move,
    # so that the client's retry moves it again and everyone is told.
    with transaction.atomic():
        # One statement on the common path (a reader's pointer moving on): the checks that
        # tell a missing conversation from a missing message run only when nothing moved.
        in_conversation = Message.objects.filter(pk=up_to, conversation_id=conversation_id)
        moved = (
            Membership.objects.filter(
                conversation_id=conversation_id, user=user, last_read_message_id__lt=up_to
            )
            .filter(Exists(in_conversation))
            .update(last_read_message_id=up_to)
        )
        if not moved:
            if not Membership.objects.filter(conversation_id=conversation_id, user=user).exists():
                raise _not_found("conversation")
            if not in_conversation.exists():
                raise _not_found("message")
            return False
        frame = {
            "type": "read",
            "conversation": conversation_id,
            "user": user_data(user),
            "up_to": up_to,
        }
        # The reader's own sockets always; the others as the privacy rule lets them.
        told = {user.pk} | visibility.watchers(
            user_ids=[user.pk],
            setting=visibility.RECEIPTS,
            among=streams.member_ids(conversation_id),
        )[user.pk]
        publish_on_commit(frame_event(user_group(member_id), frame) for member_id in sorted(told))
        return True


def conversation_typing(*, user, conversation_id: int) -> None:
    """Tell the other members the user is typing; nothing is stored."""
    members = streams.member_ids(conversation_id)
    if user.pk not in members:
        raise _not_found("conversation")
    frame = {"type": "typing", "conversation": conversation_id, "user": user_data(user)}
    told = visibility.watchers(user_ids=[user.pk], setting=visibility.TYPING, among=members)
    publish_on_commit(
        frame_event(user_group(member_id), frame) for member_id in sorted(told[user.pk])
    )
