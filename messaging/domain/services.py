"""The one write path: every change to conversations and messages goes through here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from messaging.domain import presence, visibility
from messaging.domain.blocks import blocked_between, cut_off_ids
from messaging.domain.events import frame_event, publish_on_commit, user_group
from messaging.domain.ratelimit import check_rate_sync
from messaging.domain.selectors import conversation_for_member
from messaging.models import Block, ChangeStream, Conversation, Membership, Message
from messaging.protocol import ChatError, ErrorCode, check_body, message_data, user_data

User = get_user_model()


@dataclass(frozen=True)
class SendResult:
    """A stored message and whether this call stored it (False: a retry)."""

    message: Message
    created: bool


def _not_found(what: str, client_id: str | None = None) -> ChatError:
    return ChatError(ErrorCode.NOT_FOUND, f"no such {what}", client_id=client_id)


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


def _stamp(last_seqs: dict[int, int]) -> int:
    """Draw the next stamp for a change seen by these users and record it as their last."""
    seq = max(last_seqs.values(), default=0) + 1
    ChangeStream.objects.filter(user_id__in=last_seqs).update(last_seq=seq)
    return seq


def member_ids(conversation_id: int) -> list[int]:
    return list(
        Membership.objects.filter(conversation_id=conversation_id).values_list(
            "user_id", flat=True
        )
    )


def message_events(message: Message, previous: dict[int, int], kind: str) -> list:
    """Build one push per member, each carrying that member's own `prev_seq`."""
    data = message_data(message)
    frame_key = "message"
    return [
        frame_event(
            user_group(user_id),
            {"type": kind, frame_key: data, "prev_seq": prev_seq},
        )
        for user_id, prev_seq in previous.items()
    ]


def _user_named(username: str, client_id: str | None = None):
    user = User.objects.filter(username=username).first()
    if user is None:
        raise _not_found("user", client_id)
    return user


def conversation_open_direct(*, user, other) -> tuple[Conversation, bool]:
    """Find or create the one direct conversation of two people."""
    if other.pk == user.pk:
        raise ChatError(ErrorCode.BAD_FRAME, "you cannot start a conversation with yourself")
    key = Conversation.direct_key_for(user.pk, other.pk)
    existing = Conversation.objects.filter(direct_key=key).first()
    if existing is not None:
        return existing, False
    if not other.is_active:
        raise ChatError(ErrorCode.CANNOT_SEND, f"{other.username} cannot receive messages")
    if blocked_between(user.pk, other.pk):
        raise ChatError(ErrorCode.CANNOT_SEND, f"you and {other.username} cannot message")
    check_rate_sync("conversation", user.pk, settings.CHAT_CONVERSATION_RATE)
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                kind=Conversation.Kind.DIRECT,
                direct_key=key,
                created_by=user,
                last_activity_at=timezone.now(),
            )
            Membership.objects.bulk_create(
                [
                    # The opener shows themselves; the other only once they answer.
                    Membership(conversation=conversation, user=user, visible_to_members=True),
                    Membership(conversation=conversation, user=other),
                ]
            )
            streams_ensure([user.pk, other.pk])
            presence.announce_shown([(conversation.pk, user.pk)])
    except IntegrityError:
        # Someone opened the same pair at the same moment: theirs is the one.
        return Conversation.objects.get(direct_key=key), False
    return conversation, True


def conversation_create_group(*, creator, others: list, title: str = "") -> Conversation:
    """Create a group of the creator and at least two others."""
    members = {creator.pk: creator, **{other.pk: other for other in others}}
    if len(members) < 3:
        raise ChatError(ErrorCode.BAD_FRAME, "a group needs at least two other people")
    if len(members) > settings.CHAT_MAX_GROUP_SIZE:
        raise ChatError(
            ErrorCode.BAD_FRAME, f"a group has at most {settings.CHAT_MAX_GROUP_SIZE} members"
        )
    if cut_off_ids(creator.pk, among=members):
        raise ChatError(
            ErrorCode.CANNOT_SEND, "you cannot add someone you block or who blocks you"
        )
    check_rate_sync("conversation", creator.pk, settings.CHAT_CONVERSATION_RATE)
    with transaction.atomic():
        conversation = Conversation.objects.create(
            kind=Conversation.Kind.GROUP,
            title=title.strip()[:100],
            created_by=creator,
            last_activity_at=timezone.now(),
        )
        # The creator shows themselves with the line below (store_message), the others not.
        Membership.objects.bulk_create(
            [Membership(conversation=conversation, user=member) for member in members.values()]
        )
        streams_ensure(members)
        others_named = ", ".join(sorted(o.username for o in members.values() if o != creator))
        announce_change(
            conversation,
            actor=creator,
            line=f"{creator.username} created the group with {others_named}",
            change={"kind": "created"},
            audience=list(members),
        )
    return conversation


def announce_change(
    conversation: Conversation, *, actor, line: str, change: dict, audience
) -> None:
    """Store the system line and push `conversation.updated` to the audience, on commit."""
    store_message(
        conversation=conversation,
        sender=actor,
        body=line,
        client_id=f"system:{uuid.uuid4().hex}",
        previous=streams_lock(audience),
        kind="system",
    )
    conversation.refresh_from_db()
    members = [
        user_data(user)
        for user in User.objects.filter(memberships__conversation=conversation).order_by(
            "username"
        )
    ]
    frame = {
        "type": "conversation.updated",
        "conversation": {
            "id": conversation.pk,
            "kind": conversation.kind,
            "title": conversation.title,
            "members": members,
            "created_by": user_data(conversation.created_by) if conversation.created_by else None,
        },
        "change": {"by": user_data(actor), **change},
    }
    publish_on_commit(frame_event(user_group(user_id), frame) for user_id in audience)


def _check_can_send(sender, conversation: Conversation, client_id: str | None) -> None:
    if conversation.kind != Conversation.Kind.DIRECT:
        return
    blocked = Block.objects.filter(
        Q(blocker=sender, blocked=OuterRef("pk")) | Q(blocker=OuterRef("pk"), blocked=sender)
    )
    other = (
        User.objects.filter(memberships__conversation=conversation)
        .exclude(pk=sender.pk)
        .annotate(blocked=Exists(blocked))
        .only("is_active", "username")
        .first()
    )
    if other is None:
        return
    if not other.is_active:
        raise ChatError(
            ErrorCode.CANNOT_SEND,
            f"{other.username} cannot receive messages",
            client_id=client_id,
        )
    if other.blocked:
        raise ChatError(
            ErrorCode.CANNOT_SEND,
            f"you and {other.username} cannot message each other",
            client_id=client_id,
        )


def _check_sender_active(sender, client_id: str | None) -> None:
    """Refuse a sender whose account was deactivated, even on a socket still open.

    `forbidden`, not `cannot_send`: that one speaks of the recipient or of a block between
    the two, this of the sender's own account. The account is read again, not taken from
    the socket, which may hold the user as they were at its handshake.
    """
    if not User.objects.filter(pk=sender.pk, is_active=True).exists():
        raise ChatError(
            ErrorCode.FORBIDDEN, "this account can no longer send messages", client_id=client_id
        )


def _retry_result(
    existing: Message, *, body: str, client_id: str, conversation_id: int | None, to_user
) -> SendResult:
    """Answer a retry: the message as it is now, or `conflict` if it asks for another."""
    if to_user is not None:
        same_place = existing.conversation.direct_key == Conversation.direct_key_for(
            existing.sender_id, to_user.pk
        )
    else:
        same_place = existing.conversation_id == conversation_id
    # A deleted, hidden or purged message keeps no hash of its text: a retry of it in the
    # same place is acked as the message is now.
    if not same_place or (existing.sent_hash and existing.sent_hash != Message.hash_body(body)):
        raise ChatError(
            ErrorCode.CONFLICT,
            "this client_id was already used for another message",
            client_id=client_id,
        )
    return SendResult(message=existing, created=False)


def _find_sent(sender, client_id: str) -> Message | None:
    return (
        Message.objects.select_related("conversation", "sender")
        .filter(sender=sender, client_id=client_id)
        .first()
    )


def message_send(
    *,
    sender,
    body: str,
    client_id: str,
    to: str | None = None,
    conversation_id: int | None = None,
) -> SendResult:
    """Store a message and tell its members once it is committed.

    Exactly one of `to` (a username) and `conversation_id` names where it goes. A second
    call with the same sender and `client_id` stores nothing: it returns the message stored
    the first time, or raises `conflict` if it names another place or body.
    """
    check_body(body, max_chars=settings.CHAT_MAX_BODY, client_id=client_id)
    _check_sender_active(sender, client_id)
    to_user = None
    if to is not None:
        to_user = _user_named(to, client_id)
        if to_user.pk == sender.pk:
            raise ChatError(
                ErrorCode.BAD_FRAME, "you cannot send a message to yourself", client_id=client_id
            )

    def earlier_send() -> SendResult | None:
        existing = _find_sent(sender, client_id)
        if existing is None:
            return None
        return _retry_result(
            existing,
            body=body,
            client_id=client_id,
            conversation_id=conversation_id,
            to_user=to_user,
        )

    if to_user is not None:
        # Look for a retry first: opening a conversation with someone new has effects.
        retry = earlier_send()
        if retry is not None:
            return retry
    try:
        if to_user is not None:
            conversation, _ = conversation_open_direct(user=sender, other=to_user)
        else:
            conversation = conversation_for_member(user=sender, conversation_id=conversation_id)
        _check_can_send(sender, conversation, client_id)
    except ChatError as exc:
        # A retry is acked as the first send was, even if the recipient is gone since.
        retry = earlier_send() if to_user is None else None
        if retry is not None:
            return retry
        exc.client_id = client_id
        raise

    with transaction.atomic():
        previous = streams_lock_members(conversation.pk)
        if sender.pk not in previous:
            # Left the conversation between the check and the lock.
            raise _not_found("conversation", client_id)
        # Concurrent sends of one sender queue on its stream lock: look again behind it.
        existing = _find_sent(sender, client_id)
        if existing is not None:
            return _retry_result(
                existing,
                body=body,
                client_id=client_id,
                conversation_id=conversation.pk,
                to_user=None,
            )
        message = store_message(
            conversation=conversation,
            sender=sender,
            body=body,
            client_id=client_id,
            previous=previous,
        )
    return SendResult(message=message, created=True)


def store_message(
    *,
    conversation: Conversation,
    sender,
    body: str,
    client_id: str,
    previous: dict[int, int],
    kind: str = Message.Kind.TEXT,
) -> Message:
    """Stamp and insert a message, and tell everyone in `previous` once committed.

    The caller holds, inside a transaction, the stream locks of `previous` (from
    streams_lock): the people who see this message, with their last stamps.
    """
    message = Message.objects.create(
        conversation=conversation,
        sender=sender,
        kind=kind,
        body=body,
        client_id=client_id,
        sent_hash=Message.hash_body(body),
        seq=_stamp(previous),
    )
    Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=message.created_at)
    message.sender = sender
    publish_on_commit(message_events(message, previous, "message.new"))
    members_show(conversation_id=conversation.pk, user_ids=[sender.pk])
    return message


def members_show(*, conversation_id: int, user_ids: Iterable[int]) -> None:
    """Show these members to the others of the conversation (they wrote in it or made it).

    From then on the others see their presence, typing and reading; whoever could not
    see them before is told at once, on commit, if they are online.
    """
    hidden = Membership.objects.filter(
        conversation_id=conversation_id, user_id__in=list(user_ids), visible_to_members=False
    )
    shown = list(hidden.values_list("user_id", flat=True))
    if not shown:
        return
    hidden.filter(user_id__in=shown).update(visible_to_members=True)
    presence.announce_shown((conversation_id, user_id) for user_id in shown)


def _change_message(message_id: int, *, apply, previous_check) -> Message:
    """Lock, re-check and change one message, restamping it and telling its members."""
    conversation_id = (
        Message.objects.filter(pk=message_id).values_list("conversation_id", flat=True).first()
    )
    if conversation_id is None:
        raise _not_found("message")
    with transaction.atomic():
        previous = streams_lock_members(conversation_id)
        message = Message.objects.select_related("sender").get(pk=message_id)
        previous_check(message)
        message.seq = _stamp(previous)
        apply(message)
        message.save()
        publish_on_commit(message_events(message, previous, "message.updated"))
    return message


def _visible_message(actor, message_id: int) -> Message:
    message = (
        Message.objects.select_related("sender")
        .filter(pk=message_id, conversation__memberships__user=actor)
        .first()
    )
    if message is None or message.is_deleted:
        raise _not_found("message")
    return message


def _check_own_live_message(actor):
    def check(message: Message) -> None:
        if message.is_deleted:
            raise _not_found("message")
        if message.kind == Message.Kind.SYSTEM:
            raise ChatError(ErrorCode.FORBIDDEN, "lines about the conversation cannot be changed")
        if message.sender_id != actor.pk:
            raise ChatError(ErrorCode.FORBIDDEN, "only the sender can change a message")

    return check


def _check_not_cut_off(actor, message: Message) -> None:
    """Refuse a change that would reach the other one of a direct conversation across a block."""
    conversation = Conversation.objects.only("kind").get(pk=message.conversation_id)
    if conversation.kind != Conversation.Kind.DIRECT:
        return  # A block does not stop a group (PROTOCOL.md, Details).
    other_id = (
        Membership.objects.filter(conversation_id=conversation.pk)
        .exclude(user_id=actor.pk)
        .values_list("user_id", flat=True)
        .first()
    )
    if other_id is not None and blocked_between(actor.pk, other_id):
        raise ChatError(
            ErrorCode.CANNOT_SEND, "you and the other person cannot message each other"
        )


def message_edit(*, editor, message_id: int, body: str) -> Message:
    """Replace the body of the editor's own message and tell its members.

    In a direct conversation a block either way refuses it (`cannot_send`), as it refuses
    sending: the blocker gets no edit live or by `sync`. Deleting stays allowed.
    """
    check_body(body, max_chars=settings.CHAT_MAX_BODY)
    _check_own_live_message(editor)(_visible_message(editor, message_id))

    def check(message: Message) -> None:
        _check_own_live_message(editor)(message)
        _check_not_cut_off(editor, message)

    def apply(message: Message) -> None:
        message.body = body
        message.edited_at = timezone.now()

    return _change_message(message_id, apply=apply, previous_check=check)


def message_delete(*, actor, message_id: int) -> Message:
    """Delete the actor's own message for everyone and tell its members."""
    _check_own_live_message(actor)(_visible_message(actor, message_id))

    def apply(message: Message) -> None:
        # The text goes for good, and so does its hash: a retry is then acked as it is now.
        message.deleted_at = timezone.now()
        message.body = ""
        message.sent_hash = ""

    return _change_message(message_id, apply=apply, previous_check=_check_own_live_message(actor))


def message_hide(*, moderator, message_id: int) -> Message:
    """Hide a message as staff: it is deleted for everyone, live, as by its sender."""

    def check(message: Message) -> None:
        if message.is_deleted:
            raise _not_found("message")

    def apply(message: Message) -> None:
        message.deleted_at = timezone.now()
        message.hidden_by = moderator

    return _change_message(message_id, apply=apply, previous_check=check)


def message_restore(*, moderator, message_id: int) -> Message:
    """Undo a staff hide: the message shows again for everyone, live."""

    def check(message: Message) -> None:
        if message.hidden_by_id is None:
            raise ChatError(ErrorCode.NOT_FOUND, "that message is not hidden by staff")

    def apply(message: Message) -> None:
        message.deleted_at = None
        message.hidden_by = None

    return _change_message(message_id, apply=apply, previous_check=check)


def messages_purge(*, conversation_id: int, message_ids: list[int]) -> int:
    """Erase the bodies of some messages of one conversation, for retention.

    A message still shown becomes deleted for everyone, live, as if its sender had deleted
    it; one already deleted just loses the body it kept. Return how many were erased.
    """
    with transaction.atomic():
        previous = streams_lock_members(conversation_id)
        messages = list(
            Message.objects.select_for_update()
            .select_related("sender")
            .filter(conversation_id=conversation_id, pk__in=message_ids)
            .exclude(body="")
            .order_by("pk")
        )
        now = timezone.now()
        events = []
        for message in messages:
            message.body = ""
            message.sent_hash = ""
            if message.deleted_at is None:
                message.deleted_at = now
                message.seq = _stamp(previous)
                events.extend(message_events(message, previous, "message.updated"))
                previous = dict.fromkeys(previous, message.seq)
            message.save(update_fields=["body", "sent_hash", "deleted_at", "seq"])
        publish_on_commit(events)
    return len(messages)


def conversation_mark_read(*, user, conversation_id: int, up_to: int) -> bool:
    """Move the user's read pointer forward to a message and tell the members.

    An older or equal pointer changes nothing, tells no one, and returns False.
    """
    membership = Membership.objects.filter(conversation_id=conversation_id, user=user).first()
    if membership is None:
        raise _not_found("conversation")
    if not Message.objects.filter(pk=up_to, conversation_id=conversation_id).exists():
        raise _not_found("message")
    with transaction.atomic():
        moved = Membership.objects.filter(pk=membership.pk, last_read_message_id__lt=up_to).update(
            last_read_message_id=up_to
        )
        if moved:
            frame = {
                "type": "read",
                "conversation": conversation_id,
                "user": user_data(user),
                "up_to": up_to,
            }
            # The reader's own sockets always; the others as the privacy rule lets them.
            told = {user.pk} | visibility.watchers(
                user_ids=[user.pk], setting=visibility.RECEIPTS, among=member_ids(conversation_id)
            )[user.pk]
            publish_on_commit(
                frame_event(user_group(member_id), frame) for member_id in sorted(told)
            )
    return bool(moved)


def conversation_typing(*, user, conversation_id: int) -> None:
    """Tell the other members the user is typing; nothing is stored."""
    members = member_ids(conversation_id)
    if user.pk not in members:
        raise _not_found("conversation")
    frame = {"type": "typing", "conversation": conversation_id, "user": user_data(user)}
    told = visibility.watchers(user_ids=[user.pk], setting=visibility.TYPING, among=members)
    publish_on_commit(
        frame_event(user_group(member_id), frame) for member_id in sorted(told[user.pk])
    )
