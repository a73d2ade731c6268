"""What a batch reads under its locks, and how it decides and stamps each send from that."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings

from messaging.domain import send_rules
from messaging.models import Conversation
from messaging.sending.remembered import known_ids
from messaging.sending.requests import HandedOn, SendOutcome, SendRequest


@dataclass
class Locked:
    """What a batch reads once it holds its locks."""

    kinds: dict[int, str]
    # conversation id -> member id -> the member as a send sees them
    members: dict[int, dict[int, send_rules.Person]]
    blocks: set[tuple[int, int]]
    last_seqs: dict[int, int]
    # (sender id, client_id) -> the message stored with it, by now or by this batch
    sent: dict[tuple[int, str], send_rules.Earlier]
    # sender id -> the sender, member or not
    senders: dict[int, send_rules.Person]
    # (conversation id, member id) -> membership id, of the members not shown there yet
    # (Membership.visible_to_members): writing there shows them.
    hidden: dict[tuple[int, int], int] = field(default_factory=dict)
    places: dict[int, send_rules.Place] = field(default_factory=dict)
    # conversation id -> its direct key (None for a group), as its sends' retries name it
    direct_keys: dict[int, str | None] = field(default_factory=dict)

    def decide(self, request: SendRequest, conversation_id: int) -> send_rules.Decision | None:
        """Decide a send as message_send alone would; None if the batch cannot describe it.

        It cannot when the sender is in none of the batch's conversations (or is gone), a
        name changed hands, a member lacks a change stream, or the send quotes a message,
        carries files or may name people in a group: the send goes alone.
        """
        facts = self.facts(request, conversation_id)
        if facts is None:
            return None
        decision = send_rules.decide(facts)
        members = self.members.get(conversation_id, {})
        if (
            decision.action is send_rules.Action.STORE
            and not members.keys() <= self.last_seqs.keys()
        ):
            return None
        return decision

    def facts(self, request: SendRequest, conversation_id: int) -> send_rules.SendFacts | None:
        """Describe a send to a conversation, from what was read under lock."""
        sender = self.senders.get(request.sender.pk)
        if sender is None or request.has_parts:
            return None
        place = self.place(conversation_id) if conversation_id in self.kinds else None
        if place is not None and not place.direct and "@" in request.body:
            return None  # It may name people: the single path stores its mentions.
        other_id = send_rules.other_member(place, sender.id) if place is not None else None
        other = self.members[conversation_id].get(other_id) if other_id is not None else None
        if request.to is not None and (other is None or other.username != request.to):
            known_ids().direct_conversations.pop((sender.id, request.to), None)
            known_ids().user_ids.pop(request.to, None)
            return None
        return send_rules.SendFacts(
            sender=sender,
            body=request.body,
            max_chars=settings.CHAT_MAX_BODY,
            to=request.to,
            conversation_id=request.conversation_id,
            place=place,
            other=other,
            blocked=other is not None
            and send_rules.blocked_either_way(sender.id, other.id, self.blocks),
            earlier=self.sent.get((sender.id, request.client_id)),
        )

    def place(self, conversation_id: int) -> send_rules.Place:
        # Once per conversation: the sends of a batch mostly go to a few of them.
        place = self.places.get(conversation_id)
        if place is None:
            place = self.places[conversation_id] = send_rules.Place(
                id=conversation_id,
                direct=self.kinds[conversation_id] == Conversation.Kind.DIRECT,
                members=frozenset(self.members.get(conversation_id, ())),
            )
            self.direct_keys[conversation_id] = (
                Conversation.direct_key_for(*place.members)
                if place.direct and len(place.members) == 2
                else None
            )
        return place

    def stamp(self, index: int, request: SendRequest, conversation_id: int) -> Stamped:
        """Stamp a send the batch stores, and note it: a later one with its client_id is
        its retry."""
        previous = {user: self.last_seqs[user] for user in self.members[conversation_id]}
        seq = send_rules.stamp(previous)
        self.last_seqs.update(dict.fromkeys(previous, seq))
        fields = send_rules.message_fields(
            conversation_id=conversation_id,
            sender_id=request.sender.pk,
            body=request.body,
            client_id=request.client_id,
            seq=seq,
        )
        self.taken(request, conversation_id, sent_hash=fields["sent_hash"])
        return Stamped(index, fields, previous)

    def taken(self, request: SendRequest, conversation_id: int, *, sent_hash: str) -> None:
        """Note a send the batch stores: a later one with its client_id is its retry."""
        self.place(conversation_id)
        self.sent[(request.sender.pk, request.client_id)] = send_rules.Earlier(
            conversation_id, self.direct_keys[conversation_id], sent_hash
        )


@dataclass(frozen=True)
class Stamped:
    """A send the batch stores: its request's place, its row, whom it reaches."""

    index: int
    fields: dict
    # member id -> their stamp before this message (its prev_seq in their push)
    previous: dict[int, int]


def stamp_taken(
    requests: Sequence[SendRequest],
    conversation_of: dict[int, int],
    locked: Locked,
    outcomes: list[SendOutcome | None],
    handed_on: HandedOn,
) -> tuple[list[Stamped], list[int]]:
    """Decide, in the order they came, the sends to conversations; stamp those stored.

    Answer the refusals; leave the retries and what the batch cannot describe alone.
    Return the stamped sends, and the memberships of the senders who write where they
    were not shown.
    """
    stamped = []
    to_show = []
    for index in sorted(conversation_of):
        request, conversation_id = requests[index], conversation_of[index]
        held = handed_on.holds(index, request.sender.pk)
        decision = None if held else locked.decide(request, conversation_id)
        if decision is None or decision.action is send_rules.Action.OPEN:
            handed_on.hand_on(index, request.sender.pk)
            continue
        if decision.action is send_rules.Action.REFUSE:
            outcomes[index] = SendOutcome(error=decision.error(request.client_id))
        if decision.action is not send_rules.Action.STORE:
            continue
        membership = locked.hidden.pop((conversation_id, request.sender.pk), None)
        if membership is not None:
            to_show.append(membership)
        stamped.append(locked.stamp(index, request, conversation_id))
    return stamped, to_show
