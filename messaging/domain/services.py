"""The writes of conversations and messages, through the ORM: the single path.

Sends also have a fast path, the batch (messaging.sending.batch), which writes with its
own SQL; both decide each send with the same rules (send_rules), and a property test runs
the same sends through both and compares them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.domain import presence, send_rules, streams, uploads
from messaging.domain.blocks import blocked_between, cut_off_ids
from messaging.domain.events import frame_event, publish_on_commit, user_group
from messaging.domain.mentions import mentioned
from messaging.domain.message_parts import with_parts
from messaging.domain.ratelimit import check_rate_sync
from messaging.models import Conversation, Membership, Mention, Message
from messaging.protocol import ChatError, ErrorCode, message_data, user_data

User = get_user_model()


@dataclass(frozen=True)
class SendResult:
    """A stored message and whether this call stored it (False: a retry)."""

    message: Message
    created: bool
    # The message as the protocol shows it, when the caller built it already (the batch
    # builds it once for the ack and every push).
    shown: dict | None = None

    def message_shown(self) -> dict:
        """Return the message as the protocol shows it."""
        return self.shown if self.shown is not None else message_data(self.message)


def _not_found(what: str, client_id: str | None = None) -> ChatError:
    return ChatError(ErrorCode.NOT_FOUND, f"no such {what}", client_id=client_id)


def message_events(
    message: Message, previous: dict[int, int], kind: str, *, shown: dict | None = None
) -> list:
    """Build one push per member, each carrying that member's own `prev_seq`."""
    data = message_data(message) if shown is None else shown
    frame_key = "message"
    return [
        frame_event(
            user_group(user_id),
            {"type": kind, frame_key: data, "prev_seq": prev_seq},
        )
        for user_id, prev_seq in previous.items()
    ]


def conversation_open_direct(*, user, other) -> tuple[Conversation, bool]:
    """Find or create the one direct conversation of two people."""
    if other.pk == user.pk:
        raise ChatError(ErrorCode.BAD_FRAME, "you cannot start a conversation with yourself")
    key = Conversation.direct_key_for(user.pk, other.pk)
    existing = Conversation.objects.filter(direct_key=key).first()
    if existing is not None:
        return existing, False
    refused = send_rules.opening_refusal(
        send_rules.Person(other.pk, other.is_active, other.username),
        blocked=blocked_between(user.pk, other.pk),
    )
    if refused is not None:
        raise refused.error(None)
    return _direct_create(user=user, other_id=other.pk)


def _direct_create(*, user, other_id: int, client_id: str | None = None):
    """Create the direct conversation of two people the rules let meet; count the opening.

    Return it and True, or the one someone opened at the same moment and False.
    """
    try:
        check_rate_sync("conversation", user.pk, settings.CHAT_CONVERSATION_RATE)
    except ChatError as error:
        error.client_id = client_id
        raise
    key = Conversation.direct_key_for(user.pk, other_id)
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
                    Membership(conversation=conversation, user_id=other_id),
                ]
            )
            streams.streams_ensure([user.pk, other_id])
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
        streams.streams_ensure(members)
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
        previous=streams.streams_lock(audience),
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


def message_send(
    *,
    sender,
    body: str,
    client_id: str,
    to: str | None = None,
    conversation_id: int | None = None,
    reply_to: int | None = None,
    attachments: Sequence[str] = (),
) -> SendResult:
    """Store a message and tell its members once it is committed.

    Exactly one of `to` (a username) and `conversation_id` names where it goes. A second
    call with the same sender and `client_id` stores nothing: it returns the message stored
    the first time, or raises `conflict` if it names another place or body. What to do is
    decided by send_rules.decide, from what is read here.
    """
    read = _SendReading(
        sender=sender,
        body=body,
        client_id=client_id,
        reply_to=reply_to,
        attachments=list(attachments),
    )
    facts = read.facts(to=to, conversation_id=conversation_id)
    decision = send_rules.decide(facts)
    if decision.action is send_rules.Action.OPEN:
        # The rules passed: open the pair's conversation (theirs, if opened just now).
        _direct_create(user=sender, other_id=facts.other.id, client_id=client_id)
        facts = read.facts(to=to, conversation_id=conversation_id)
        decision = send_rules.decide(facts)
    if decision.action is not send_rules.Action.STORE:
        return read.answer(decision)
    return _store_decided(read, facts)


def _store_decided(read: _SendReading, facts: send_rules.SendFacts) -> SendResult:
    """Store a send the rules store, deciding it again behind its members' locks."""
    with transaction.atomic():
        previous = streams.streams_lock_members(facts.place.id)
        # Behind the lock a member may have left and a concurrent send of the same
        # client_id may have been stored: decide again with both read anew.
        # So may its files have been sent by another message: they are read locked.
        place = facts.place._replace(members=frozenset(previous))
        files = uploads.attachable(read.sender.pk, read.attachments, lock=True)
        facts = facts._replace(place=place, earlier=read.earlier(), attachable=files is not None)
        decision = send_rules.decide(facts)
        if decision.action is not send_rules.Action.STORE:
            return read.answer(decision)
        message = store_message(
            conversation=read.conversation,
            sender=read.sender,
            body=read.body,
            client_id=read.client_id,
            previous=previous,
            reply_to=read.reply_to,
            files=files or [],
        )
    return SendResult(message=message, created=True)


class _SendReading:
    """What message_send reads through the ORM to decide one send (send_rules.SendFacts)."""

    def __init__(
        self,
        *,
        sender,
        body: str,
        client_id: str,
        reply_to: int | None = None,
        attachments: list[str] | None = None,
    ) -> None:
        self.sender = sender
        self.body = body
        self.client_id = client_id
        self.reply_to = reply_to
        self.attachments = attachments or []
        self.stored: Message | None = None
        self.conversation: Conversation | None = None

    def facts(self, *, to: str | None, conversation_id: int | None) -> send_rules.SendFacts:
        """Read the facts of the send as they are now."""
        # The account is read again, not taken from the socket, which may hold the user
        # as they were at its handshake.
        active = User.objects.filter(pk=self.sender.pk, is_active=True).exists()
        sender = send_rules.Person(self.sender.pk, active, self.sender.username)
        self.conversation = None
        if to is not None:
            other = _person(User.objects.filter(username=to))
            if other is not None and other.id != sender.id:
                key = Conversation.direct_key_for(sender.id, other.id)
                self.conversation = Conversation.objects.filter(direct_key=key).first()
            place, _ = place_of(self.conversation)
        else:
            self.conversation = Conversation.objects.filter(pk=conversation_id).first()
            place, members = place_of(self.conversation)
            other_id = send_rules.other_member(place, sender.id) if place else None
            other = members.get(other_id)
        return send_rules.SendFacts(
            sender=sender,
            body=self.body,
            max_chars=settings.CHAT_MAX_BODY,
            to=to,
            conversation_id=conversation_id,
            place=place,
            other=other,
            blocked=other is not None and blocked_between(sender.id, other.id),
            earlier=self.earlier(),
            reply_to=self.reply_to,
            reply_in=self._reply_in(),
            attachments=len(self.attachments),
            attachable=self._attachable(),
        )

    def _attachable(self) -> bool:
        """Tell whether the uploads named are the sender's own and not sent yet."""
        return uploads.attachable(self.sender.pk, self.attachments) is not None

    def _reply_in(self) -> int | None:
        """Return the conversation of the message answered, if it is there and not deleted."""
        if self.reply_to is None:
            return None
        return (
            Message.objects.filter(pk=self.reply_to, deleted_at__isnull=True)
            .values_list("conversation_id", flat=True)
            .first()
        )

    def earlier(self) -> send_rules.Earlier | None:
        """Read the message the sender stored before with this client_id, if any."""
        self.stored = (
            Message.objects.select_related("conversation", "sender")
            .filter(sender=self.sender, client_id=self.client_id)
            .first()
        )
        if self.stored is None:
            return None
        return send_rules.Earlier(
            conversation_id=self.stored.conversation_id,
            direct_key=self.stored.conversation.direct_key,
            sent_hash=self.stored.sent_hash,
        )

    def answer(self, decision: send_rules.Decision) -> SendResult:
        """Answer a send that stores nothing: the earlier message, or the refusal."""
        if decision.action is send_rules.Action.ACK_EARLIER:
            with_parts([self.stored])
            return SendResult(message=self.stored, created=False)
        raise decision.error(self.client_id)


def _person(users) -> send_rules.Person | None:
    row = users.values_list("pk", "is_active", "username").first()
    return None if row is None else send_rules.Person(*row)


def place_of(
    conversation: Conversation | None,
) -> tuple[send_rules.Place | None, dict[int, send_rules.Person]]:
    """Describe a conversation and its members for the send rules."""
    if conversation is None:
        return None, {}
    rows = Membership.objects.filter(conversation_id=conversation.pk).values_list(
        "user_id", "user__is_active", "user__username"
    )
    members = {row[0]: send_rules.Person(*row) for row in rows}
    place = send_rules.Place(
        id=conversation.pk,
        direct=conversation.kind == Conversation.Kind.DIRECT,
        members=frozenset(members),
    )
    return place, members


def store_message(
    *,
    conversation: Conversation,
    sender,
    body: str,
    client_id: str,
    previous: dict[int, int],
    kind: str = Message.Kind.TEXT,
    reply_to: int | None = None,
    files: Sequence = (),
) -> Message:
    """Stamp and insert a message, and tell everyone in `previous` once committed.

    The caller holds, inside a transaction, the stream locks of `previous` (from
    streams_lock): the people who see this message, with their last stamps. `files` are
    the uploads the rules let it carry (uploads.attachable, read locked).
    """
    fields = send_rules.message_fields(
        conversation_id=conversation.pk,
        sender_id=sender.pk,
        body=body,
        client_id=client_id,
        seq=streams.draw_stamp(previous, conversation.pk),
        kind=kind,
        reply_to=reply_to,
    )
    message = Message.objects.create(**fields)
    Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=message.created_at)
    message.conversation = conversation
    message.sender = sender
    uploads.attach(files, message.pk)
    named = mentions_store(message, conversation) if kind == Message.Kind.TEXT else []
    if reply_to is not None or files or named:
        with_parts([message])
    publish_on_commit(message_events(message, previous, "message.new"))
    members_show(conversation_id=conversation.pk, user_ids=[sender.pk])
    return message


def mentions_store(
    message: Message, conversation: Conversation, *, edited: bool = False
) -> list[int]:
    """Record the members a group message names (none in a direct conversation).

    After an edit the names are read again: someone no longer named is no longer mentioned.
    """
    named: list[int] = []
    if conversation.kind == Conversation.Kind.GROUP and "@" in message.body:
        members = [
            send_rules.Person(*row)
            for row in Membership.objects.filter(conversation_id=conversation.pk).values_list(
                "user_id", "user__is_active", "user__username"
            )
        ]
        named = mentioned(message.body, members, message.sender_id)
    if edited:
        Mention.objects.filter(message=message).exclude(user_id__in=named).delete()
    Mention.objects.bulk_create(
        [Mention(message=message, user_id=user, conversation=conversation) for user in named],
        ignore_conflicts=True,
    )
    return named


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
