"""Changes to messages already sent: edits, deletes, staff hides and restores, purges.

Each locks the members' change streams, redraws the message's stamp and tells the members
(`message.updated`) once committed; `change_message` is the one way they do it.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from messaging.domain import services, streams, uploads
from messaging.domain.blocks import blocked_between
from messaging.domain.events import publish_on_commit
from messaging.domain.message_parts import with_parts
from messaging.models import Conversation, Membership, Message, Upload
from messaging.protocol import ChatError, ErrorCode, check_body


def _not_found(what: str) -> ChatError:
    return ChatError(ErrorCode.NOT_FOUND, f"no such {what}")


def change_message(message_id: int, *, apply, previous_check) -> Message:
    """Lock, re-check and change one message, restamping it and telling its members.

    `apply` returning False means it changed nothing: no stamp is drawn, nobody is told.
    """
    conversation_id = (
        Message.objects.filter(pk=message_id).values_list("conversation_id", flat=True).first()
    )
    if conversation_id is None:
        raise _not_found("message")
    with transaction.atomic():
        previous = streams.streams_lock_members(conversation_id)
        message = Message.objects.select_related("sender").get(pk=message_id)
        previous_check(message)
        if apply(message) is False:
            return message
        message.seq = streams.draw_stamp(previous, conversation_id)
        message.save()
        with_parts([message])
        publish_on_commit(services.message_events(message, previous, "message.updated"))
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
        services.mentions_store(message, message.conversation, edited=True)

    return change_message(message_id, apply=apply, previous_check=check)


def _erase_unless_kept(message: Message) -> None:
    """Erase a message being deleted or hidden: its text and files, at once.

    With CHAT_DELETED_RETENTION_DAYS set, staff keep them that long (to judge a report, to
    restore a hide); purge_deleted_messages erases them then. The hash of the text goes
    either way: a retry is then acked as the message is now.
    """
    message.sent_hash = ""
    if settings.CHAT_DELETED_RETENTION_DAYS > 0:
        return
    message.body = ""
    uploads.attachments_remove([message.pk])


def message_delete(*, actor, message_id: int) -> Message:
    """Delete the actor's own message for everyone and tell its members."""
    _check_own_live_message(actor)(_visible_message(actor, message_id))

    def apply(message: Message) -> None:
        message.deleted_at = timezone.now()
        _erase_unless_kept(message)

    return change_message(message_id, apply=apply, previous_check=_check_own_live_message(actor))


def message_hide(*, moderator, message_id: int) -> Message:
    """Hide a message as staff: it is deleted for everyone, live, as by its sender."""

    def check(message: Message) -> None:
        if message.is_deleted:
            raise _not_found("message")

    def apply(message: Message) -> None:
        message.deleted_at = timezone.now()
        message.hidden_by = moderator
        _erase_unless_kept(message)

    return change_message(message_id, apply=apply, previous_check=check)


def message_restore(*, moderator, message_id: int) -> Message:
    """Undo a staff hide: the message shows again for everyone, live, while it is kept."""

    def check(message: Message) -> None:
        if message.hidden_by_id is None:
            raise ChatError(ErrorCode.NOT_FOUND, "that message is not hidden by staff")
        if not message.body and not message.attachments.exists():
            raise ChatError(
                ErrorCode.FORBIDDEN,
                "its text was erased when it was hidden (CHAT_DELETED_RETENTION_DAYS keeps "
                "hidden messages for staff)",
            )

    def apply(message: Message) -> None:
        message.deleted_at = None
        message.hidden_by = None

    return change_message(message_id, apply=apply, previous_check=check)


def deleted_messages_purge(*, batch_size: int = 500) -> int:
    """Erase what deleted and hidden messages kept past CHAT_DELETED_RETENTION_DAYS; count them.

    They are deleted for everyone already: nobody is told. In batches, one transaction each.
    """
    cutoff = timezone.now() - timedelta(days=settings.CHAT_DELETED_RETENTION_DAYS)
    kept = Message.objects.filter(deleted_at__lt=cutoff).exclude(
        Q(body="") & ~Exists(Upload.objects.filter(message_id=OuterRef("pk")))
    )
    erased = 0
    while True:
        with transaction.atomic():
            ids = list(kept.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                return erased
            Message.objects.filter(pk__in=ids).update(body="", sent_hash="")
            uploads.attachments_remove(ids)
        erased += len(ids)


def messages_purge(*, conversation_id: int, message_ids: list[int]) -> int:
    """Erase the bodies of some messages of one conversation, for retention.

    A message still shown becomes deleted for everyone, live, as if its sender had deleted
    it; one already deleted just loses the body it kept. Return how many were erased.
    """
    with transaction.atomic():
        previous = streams.streams_lock_members(conversation_id)
        messages = list(
            Message.objects.select_for_update()
            .select_related("sender")
            .filter(conversation_id=conversation_id, pk__in=message_ids)
            # What a message still shows: its text, or files (a message of files alone
            # has an empty body).
            .exclude(Q(body="") & ~Exists(Upload.objects.filter(message_id=OuterRef("pk"))))
            .order_by("pk")
        )
        now = timezone.now()
        events = []
        for message in messages:
            message.body = ""
            message.sent_hash = ""
            if message.deleted_at is None:
                message.deleted_at = now
                message.seq = streams.draw_stamp(previous, conversation_id)
                events.extend(services.message_events(message, previous, "message.updated"))
                previous = dict.fromkeys(previous, message.seq)
            message.save(update_fields=["body", "sent_hash", "deleted_at", "seq"])
        publish_on_commit(events)
    return len(messages)
