"""Reactions: an emoji a member puts on a message, a change of that message like an edit.

Each change draws the message a new stamp and pushes `message.updated` to the members, so
that `sync` brings it to a device that was away. Reacting follows the rules of writing
(send_rules.writing_refusal): members only, not across a block in a direct conversation.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from messaging.domain import message_changes, send_rules, services
from messaging.domain.blocks import blocked_between
from messaging.models import Conversation, Message, Reaction
from messaging.protocol import ChatError, ErrorCode

User = get_user_model()

# PROTOCOL.md: at most this many different emoji on one message.
MAX_EMOJI_PER_MESSAGE = 20


def reaction_add(*, user, message_id: int, emoji: str) -> Message:
    """Put the user's emoji on a message; adding it twice changes nothing."""

    def apply(message: Message) -> bool:
        if Reaction.objects.filter(message=message, user=user, emoji=emoji).exists():
            return False
        used = set(Reaction.objects.filter(message=message).values_list("emoji", flat=True))
        if emoji not in used and len(used) >= MAX_EMOJI_PER_MESSAGE:
            raise ChatError(
                ErrorCode.FORBIDDEN,
                f"a message has at most {MAX_EMOJI_PER_MESSAGE} different reactions",
            )
        Reaction.objects.create(message=message, user=user, emoji=emoji)
        return True

    return message_changes.change_message(message_id, apply=apply, previous_check=_may_react(user))


def reaction_remove(*, user, message_id: int, emoji: str) -> Message:
    """Take the user's emoji off a message; removing one they did not add changes nothing."""

    def apply(message: Message) -> bool:
        removed, _ = Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()
        return removed > 0

    return message_changes.change_message(message_id, apply=apply, previous_check=_may_react(user))


def _may_react(user):
    def check(message: Message) -> None:
        if message.is_deleted:
            raise ChatError(ErrorCode.NOT_FOUND, "no such message")
        refused = _writing_refusal(user, message.conversation_id)
        if refused is not None:
            raise refused.error(None)

    return check


def _writing_refusal(user, conversation_id: int) -> send_rules.Decision | None:
    """Read who may write in the message's conversation, and ask the rules."""
    active = User.objects.filter(pk=user.pk, is_active=True).exists()
    writer = send_rules.Person(user.pk, active, user.username)
    place, members = services.place_of(Conversation.objects.filter(pk=conversation_id).first())
    other_id = send_rules.other_member(place, user.pk) if place is not None else None
    other = members.get(other_id)
    blocked = other is not None and blocked_between(user.pk, other.id)
    return send_rules.writing_refusal(writer, place, other, blocked=blocked)
