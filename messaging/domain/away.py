"""Who hears of a message while away: the rules of pushes, missed-message emails and mute.

A person is away when no socket of theirs is open in any process: the presence rows of
the database say so (messaging/domain/presence.py), whichever process holds the sockets,
and a process that died stops counting once its heartbeat is older than
CHAT_PRESENCE_TTL. Hidden tabs count as present: a browser does not tell reliably
whether anyone looks at a tab, and a socket that is open gets every message live.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.functions import Greatest
from django.utils import timezone

from messaging.domain.events import frame_event, publish_on_commit, user_group
from messaging.domain.selectors import member_data
from messaging.models import (
    Block,
    Conversation,
    Membership,
    Mention,
    Message,
    PresenceProcess,
    PushShown,
    PushSubscription,
    SocketPresence,
    UserSettings,
    VerifiedEmail,
)
from messaging.protocol import ChatError, ErrorCode, user_data

User = get_user_model()

# Messages older than this when a worker first sees them are not pushed: after a long
# outage of the workers a phone should not ring for every message of the day (the
# missed-message email tells of them).
PUSH_MAX_AGE = timedelta(minutes=15)
# Conversations quiet for longer are not looked at for missed-message emails.
EMAIL_HORIZON = timedelta(days=2)
DEFAULT_EMAIL_DELAY = UserSettings._meta.get_field("email_delay_minutes").default


def conversation_mute(*, user, conversation_id: int, muted: bool) -> None:
    """Mute or unmute one of the user's conversations; `not_found` if not a member.

    The user's other sockets (tabs, devices) are told with `conversation.updated`, so each
    shows the change at once; nobody else is told, mute being the user's own business.
    """
    changed = Membership.objects.filter(user=user, conversation_id=conversation_id).update(
        muted=muted
    )
    if not changed:
        raise ChatError(ErrorCode.NOT_FOUND, "no such conversation")
    conversation = Conversation.objects.select_related("created_by").get(pk=conversation_id)
    members = User.objects.filter(memberships__conversation=conversation).order_by("username")
    frame = {
        "type": "conversation.updated",
        "conversation": {
            "id": conversation.pk,
            "kind": conversation.kind,
            "title": conversation.title,
            "members": [member_data(member) for member in members],
            "created_by": user_data(conversation.created_by) if conversation.created_by else None,
            "muted": muted,
        },
        "change": {"kind": "muted" if muted else "unmuted", "by": user_data(user)},
    }
    publish_on_commit([frame_event(user_group(user.pk), frame)])


def online_ids(user_ids: Iterable[int]) -> set[int]:
    """Return which of these users have a socket open in a live process, anywhere."""
    live_since = timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL)
    live = PresenceProcess.objects.filter(heartbeat_at__gte=live_since).values("id")
    return set(
        SocketPresence.objects.filter(process__in=live, user_id__in=list(user_ids)).values_list(
            "user_id", flat=True
        )
    )


@dataclass(frozen=True)
class Reader:
    """What decides whether one member hears of one message while away."""

    user_id: int
    muted: bool
    read_up_to: int
    push_on: bool
    online: bool


def should_push(
    *, message_id: int, sender_id: int, reader: Reader, mentioned: bool, blocked: bool
) -> bool:
    """Decide whether a member is pushed a message: only while away, never their own, not
    when they turned pushes off, across a block, or muted the conversation (unless the
    message names them), and not once they read it."""
    return (
        reader.user_id != sender_id
        and reader.push_on
        and not reader.online
        and not blocked
        and (not reader.muted or mentioned)
        and reader.read_up_to < message_id
    )


@dataclass(frozen=True)
class NewMessage:
    """A message a worker looks at once, for pushes."""

    id: int
    conversation_id: int
    sender_id: int
    created_at: datetime


@dataclass(frozen=True)
class PushTarget:
    """One push to make: a message, to one subscription."""

    message_id: int
    conversation_id: int
    subscription_id: int
    endpoint: str


def new_messages_after(
    *, after: int, also: Sequence[int] = (), limit: int
) -> list[tuple[int, NewMessage | None]]:
    """Return (id, message) of the messages above `after` and of the ids `also`, by id.

    The message is None where it is not one to push (deleted, written by the server, or
    too old).
    """
    rows = (
        Message.objects.filter(Q(pk__gt=after) | Q(pk__in=list(also)))
        .order_by("pk")
        .values_list("pk", "conversation_id", "sender_id", "created_at", "kind", "deleted_at")
    )[:limit]
    oldest = timezone.now() - PUSH_MAX_AGE
    found = []
    for pk, conversation_id, sender_id, created_at, kind, deleted_at in rows:
        pushable = kind == Message.Kind.TEXT and deleted_at is None and created_at >= oldest
        message = NewMessage(pk, conversation_id, sender_id, created_at) if pushable else None
        found.append((pk, message))
    return found


def newest_message_id() -> int:
    """Return the id of the newest message (0 if none)."""
    return Message.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def push_targets(messages: Sequence[NewMessage]) -> list[PushTarget]:
    """Decide who is pushed these messages, on which subscriptions (a few queries in all)."""
    if not messages:
        return []
    conversation_ids = {message.conversation_id for message in messages}
    subscribed = PushSubscription.objects.filter(user_id=OuterRef("user_id"))
    members = list(
        Membership.objects.filter(
            Exists(subscribed), conversation_id__in=conversation_ids, user__is_active=True
        ).values_list("conversation_id", "user_id", "muted", "last_read_message_id")
    )
    if not members:
        return []
    user_ids = {user_id for _, user_id, _, _ in members}
    push_off = set(
        UserSettings.objects.filter(user_id__in=user_ids, push=False).values_list(
            "user_id", flat=True
        )
    )
    online = online_ids(user_ids - push_off)
    message_ids = [message.id for message in messages]
    mentioned = set(
        Mention.objects.filter(message_id__in=message_ids, user_id__in=user_ids).values_list(
            "message_id", "user_id"
        )
    )
    sender_ids = {message.sender_id for message in messages}
    blocks = set(
        Block.objects.filter(
            Q(blocker_id__in=user_ids, blocked_id__in=sender_ids)
            | Q(blocker_id__in=sender_ids, blocked_id__in=user_ids)
        ).values_list("blocker_id", "blocked_id")
    )
    readers: dict[int, list[Reader]] = {}
    for conversation_id, user_id, muted, read_up_to in members:
        readers.setdefault(conversation_id, []).append(
            Reader(user_id, muted, read_up_to, user_id not in push_off, user_id in online)
        )
    chosen: list[tuple[NewMessage, int]] = [
        (message, reader.user_id)
        for message in messages
        for reader in readers.get(message.conversation_id, [])
        if should_push(
            message_id=message.id,
            sender_id=message.sender_id,
            reader=reader,
            mentioned=(message.id, reader.user_id) in mentioned,
            blocked=(reader.user_id, message.sender_id) in blocks
            or (message.sender_id, reader.user_id) in blocks,
        )
    ]
    if not chosen:
        return []
    subscriptions: dict[int, list[tuple[int, str]]] = {}
    for pk, user_id, endpoint in PushSubscription.objects.filter(
        user_id__in={user_id for _, user_id in chosen}
    ).values_list("pk", "user_id", "endpoint"):
        subscriptions.setdefault(user_id, []).append((pk, endpoint))
    return [
        PushTarget(message.id, message.conversation_id, pk, endpoint)
        for message, user_id in chosen
        for pk, endpoint in subscriptions.get(user_id, [])
    ]


@dataclass(frozen=True)
class ToClose:
    """A notification to close: its conversation was read up to `up_to` somewhere."""

    shown_id: int
    subscription_id: int
    endpoint: str
    conversation_id: int
    up_to: int


def notifications_read(*, limit: int = 500) -> list[ToClose]:
    """Return the notifications shown whose conversation their person has since read."""
    read = Membership.objects.filter(
        conversation_id=OuterRef("conversation_id"),
        user_id=OuterRef("subscription__user_id"),
        last_read_message_id__gte=OuterRef("message_id"),
    )
    rows = (
        PushShown.objects.filter(Exists(read))
        .annotate(
            up_to=Subquery(
                Membership.objects.filter(
                    conversation_id=OuterRef("conversation_id"),
                    user_id=OuterRef("subscription__user_id"),
                ).values("last_read_message_id")[:1]
            )
        )
        .order_by("pk")
        .values_list("pk", "subscription_id", "subscription__endpoint", "conversation_id", "up_to")
    )[:limit]
    return [ToClose(*row) for row in rows]


@dataclass(frozen=True)
class EmailDue:
    """A conversation to email a member about: its messages above `after`, to `up_to`."""

    membership_id: int
    user_id: int
    conversation_id: int
    after: int
    up_to: int
    due_at: datetime


def emails_due(*, now: datetime | None = None, limit: int = 200) -> list[EmailDue]:
    """Find the conversations whose unread messages waited past their reader's delay.

    Only for people away, with email on and a verified address, and never for messages an
    earlier email told of (Membership.emailed_up_to). A muted conversation only when one of
    those messages names the person.
    """
    now = now or timezone.now()
    unread = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"),
        pk__gt=Greatest(OuterRef("last_read_message_id"), OuterRef("emailed_up_to")),
        deleted_at__isnull=True,
        kind=Message.Kind.TEXT,
    ).exclude(sender_id=OuterRef("user_id"))
    verified = VerifiedEmail.objects.filter(
        user_id=OuterRef("user_id"), address=OuterRef("user__email")
    )
    candidates = list(
        Membership.objects.filter(
            Exists(verified),
            user__is_active=True,
            conversation__last_activity_at__gte=now - EMAIL_HORIZON,
        )
        .exclude(user__chat_settings__email=False)
        .annotate(
            first_unread_at=Subquery(unread.order_by("pk").values("created_at")[:1]),
            newest_unread=Subquery(unread.order_by("-pk").values("pk")[:1]),
            delay=Subquery(
                UserSettings.objects.filter(user_id=OuterRef("user_id")).values(
                    "email_delay_minutes"
                )[:1]
            ),
        )
        .filter(first_unread_at__isnull=False)
        .order_by("first_unread_at")
        .values_list(
            "pk",
            "user_id",
            "conversation_id",
            "last_read_message_id",
            "emailed_up_to",
            "muted",
            "first_unread_at",
            "newest_unread",
            "delay",
        )[: limit * 4]
    )
    due = []
    for pk, user_id, conversation_id, read, emailed, muted, first_at, newest, delay in candidates:
        due_at = first_at + timedelta(minutes=delay or DEFAULT_EMAIL_DELAY)
        if due_at <= now:
            due.append(
                (EmailDue(pk, user_id, conversation_id, max(read, emailed), newest, due_at), muted)
            )
    if not due:
        return []
    away = {item.user_id for item, _ in due} - online_ids({item.user_id for item, _ in due})
    muted_ones = [item for item, muted in due if muted and item.user_id in away]
    named = set()
    if muted_ones:
        named = set(
            Mention.objects.filter(
                Q(
                    *[
                        Q(
                            user_id=item.user_id,
                            conversation_id=item.conversation_id,
                            message_id__gt=item.after,
                            message_id__lte=item.up_to,
                        )
                        for item in muted_ones
                    ],
                    _connector=Q.OR,
                )
            ).values_list("user_id", "conversation_id")
        )
    return [
        item
        for item, muted in due
        if item.user_id in away and (not muted or (item.user_id, item.conversation_id) in named)
    ][:limit]


def emailed_up_to_move(item: EmailDue) -> bool:
    """Note that an email tells of the item's messages; False if another worker did first."""
    return bool(
        Membership.objects.filter(pk=item.membership_id, emailed_up_to__lt=item.up_to).update(
            emailed_up_to=item.up_to
        )
    )
