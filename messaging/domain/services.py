"""The writes of conversations and messages, through the ORM: the single path.

Sends also have a fast path, the batch (messaging.sending.batch), which writes with its
own SQL; both decide each send with the same rules (send_rules), and a property test runs
the same sends through both and compares them.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.domain import presence, send_rules, visibility
from messaging.domain.blocks import blocked_between, cut_off_ids
from messaging.domain.events import frame_event, publish_on_commit, user_group
from messaging.domain.ratelimit import check_rate_sync
from messaging.models import ChangeStream, Conversation, Membership, Message
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
    seq = send_rules.stamp(last_seqs)
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
            streams_ensure([user.pk, other_id])
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
    the first time, or raises `conflict` if it names another place or body. What to do is
    decided by send_rules.decide, from what is read here.
    """
    read = _SendReading(sender=sender, body=body, client_id=client_id)
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
        previous = streams_lock_members(facts.place.id)
        # Behind the lock a member may have left and a concurrent send of the same
        # client_id may have been stored: decide again with both read anew.
        place = dataclasses.replace(facts.place, members=frozenset(previous))
        facts = dataclasses.replace(facts, place=place, earlier=read.earlier())
        decision = send_rules.decide(facts)
        if decision.action is not send_rules.Action.STORE:
            return read.answer(decision)
        message = store_message(
            conversation=read.conversation,
            sender=read.sender,
            body=read.body,
            client_id=read.client_id,
            previous=previous,
        )
    return SendResult(message=message, created=True)


class _SendReading:
    """What message_send reads through the ORM to decide one send (send_rules.SendFacts)."""

    def __init__(self, *, sender, body: str, client_id: str) -> None:
        self.sender = sender
        self.body = body
        self.client_id = client_id
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
            place, _ = _place(self.conversation)
        else:
            self.conversation = Conversation.objects.filter(pk=conversation_id).first()
            place, members = _place(self.conversation)
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
            return SendResult(message=self.stored, created=False)
        raise decision.error(self.client_id)


def _person(users) -> send_rules.Person | None:
    row = users.values_list("pk", "is_active", "username").first()
    return None if row is None else send_rules.Person(*row)


def _place(
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
) -> Message:
    """Stamp and insert a message, and tell everyone in `previous` once committed.

    The caller holds, inside a transaction, the stream locks of `previous` (from
    streams_lock): the people who see this message, with their last stamps.
    """
    fields = send_rules.message_fields(
        conversation_id=conversation.pk,
        sender_id=sender.pk,
        body=body,
        client_id=client_id,
        seq=_stamp(previous),
        kind=kind,
    )
    message = Message.objects.create(**fields)
    Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=message.created_at)
    message.conversation = conversation
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
