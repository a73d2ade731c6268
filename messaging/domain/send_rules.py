"""The rules of sending a message, once, for both send paths.

A send is decided from what is known about it (SendFacts): who sends, where, to whom,
whether either blocks the other, what the sender stored before with the same
`client_id`. services.message_send reads those facts through the ORM, the batch
(messaging.sending.batch) with its own statements; both ask `decide` what to do and
stamp and write the message as `stamp` and `message_fields` say. Nothing here reads the
database or has an effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from messaging.models import Conversation, Message
from messaging.protocol import ChatError, ErrorCode, check_body

# The descriptions below are made for every send, in the batch's hot loop: named tuples,
# immutable like frozen dataclasses, cost a fraction of one to build.


class Person(NamedTuple):
    """A user as a send sees them."""

    id: int
    active: bool
    username: str = ""


class Place(NamedTuple):
    """A conversation as a send sees it: its kind and its members' ids."""

    id: int
    direct: bool
    members: frozenset[int]


class Earlier(NamedTuple):
    """The message the sender already stored with this `client_id`.

    `direct_key` is its conversation's (None for a group); `sent_hash` is empty once it
    was deleted, hidden or purged.
    """

    conversation_id: int
    direct_key: str | None
    sent_hash: str


class SendFacts(NamedTuple):
    """What is known about one send when it is decided.

    Exactly one of `to` (a username) and `conversation_id` names where it goes. `place` is
    the conversation named, or for `to` the direct conversation of the pair (None: there
    is none, or none of that id). `other` is the other person of a direct send: the user
    named `to` (None: nobody has that name), or the other member of a direct `place`.
    `blocked`: either of the sender and `other` blocks the other.

    A reply names the message it answers (`reply_to`); `reply_in` is that message's
    conversation, None when there is no such message or it is deleted. `attachments` is
    how many uploads the send names; `attachable`, whether all are the sender's own and
    not sent yet.
    """

    sender: Person
    body: str
    max_chars: int
    to: str | None = None
    conversation_id: int | None = None
    place: Place | None = None
    other: Person | None = None
    blocked: bool = False
    earlier: Earlier | None = None
    reply_to: int | None = None
    reply_in: int | None = None
    attachments: int = 0
    attachable: bool = True


class Action(Enum):
    """What a send does."""

    STORE = "store"  # stamp and insert it in `place`
    OPEN = "open"  # open the direct conversation of the pair, then store it there
    ACK_EARLIER = "ack_earlier"  # a retry: answer with the message stored before
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    """The answer to one send: an action, and for a refusal its code and detail."""

    action: Action
    code: str = ""
    detail: str = ""

    def error(self, client_id: str | None) -> ChatError:
        """Build the refusal of this send."""
        return ChatError(self.code, self.detail, client_id=client_id)


STORE = Decision(Action.STORE)
OPEN = Decision(Action.OPEN)
ACK_EARLIER = Decision(Action.ACK_EARLIER)


def refuse(code: str, detail: str) -> Decision:
    """Decide a refusal with its error code and detail."""
    return Decision(Action.REFUSE, code, detail)


def decide(facts: SendFacts) -> Decision:
    """Decide one send, checking as PROTOCOL.md orders it: body, sender, place, people.

    A retry (`earlier`) is answered before the place is checked, so that it is acked as
    the first send was even if the recipient is gone since; only a name that no longer
    exists, or is the sender's own, is refused first.
    """
    refused = body_refusal(
        facts.body, max_chars=facts.max_chars, attachments=facts.attachments
    ) or sender_refusal(facts.sender)
    if refused is not None:
        return refused
    if facts.to is not None:
        return _decide_direct(facts)
    if facts.earlier is not None:
        return retry_answer(
            facts, same_place=facts.earlier.conversation_id == facts.conversation_id
        )
    refused = _member_refusal(facts)
    if refused is None and facts.place.direct and facts.other is not None:
        refused = direct_refusal(facts.other, blocked=facts.blocked)
    return refused or _parts_refusal(facts) or STORE


def _parts_refusal(facts: SendFacts) -> Decision | None:
    """Refuse a reply to a message not in the send's conversation, or uploads not its own.

    Both are `not_found`: a message of another conversation, or someone else's upload,
    must look the same as one that does not exist.
    """
    place_id = facts.place.id if facts.place is not None else None
    if facts.reply_to is not None and (place_id is None or facts.reply_in != place_id):
        return refuse(ErrorCode.NOT_FOUND, "no such message to reply to")
    if facts.attachments and not facts.attachable:
        return refuse(ErrorCode.NOT_FOUND, "no such upload (or it was sent already)")
    return None


def _member_refusal(facts: SendFacts) -> Decision | None:
    """Refuse a send to a conversation the sender is not in (or that is not there)."""
    if facts.place is None or facts.sender.id not in facts.place.members:
        return refuse(ErrorCode.NOT_FOUND, "no such conversation")
    return None


def _decide_direct(facts: SendFacts) -> Decision:
    """Decide a send to a username, once body and sender passed."""
    other = facts.other
    if other is None:
        return refuse(ErrorCode.NOT_FOUND, "no such user")
    if other.id == facts.sender.id:
        return refuse(ErrorCode.BAD_FRAME, "you cannot send a message to yourself")
    if facts.earlier is not None:
        key = Conversation.direct_key_for(facts.sender.id, other.id)
        return retry_answer(facts, same_place=facts.earlier.direct_key == key)
    if facts.place is None:
        refused = opening_refusal(other, blocked=facts.blocked)
        if refused is None and facts.reply_to is not None:
            # Nothing can be answered in a conversation that is not there yet.
            refused = refuse(ErrorCode.NOT_FOUND, "no such message to reply to")
        if refused is None and facts.attachments and not facts.attachable:
            refused = _parts_refusal(facts)
        return refused or OPEN
    return (
        direct_refusal(other, blocked=facts.blocked)
        or _member_refusal(facts)
        or _parts_refusal(facts)
        or STORE
    )


def body_refusal(body: str, *, max_chars: int, attachments: int = 0) -> Decision | None:
    """Refuse a body too long, or blank without files (`too_long`, `empty`)."""
    if attachments and len(body) <= max_chars and (not body or body.isspace()):
        return None  # Files may go without a word.
    try:
        check_body(body, max_chars=max_chars)
    except ChatError as error:
        return refuse(error.code, error.detail)
    return None


def writing_refusal(
    writer: Person, place: Place | None, other: Person | None, *, blocked: bool
) -> Decision | None:
    """Refuse someone changing a conversation as writing in it would be refused.

    Reactions follow it: an active member, and in a direct conversation someone still
    there and not cut off by a block.
    """
    refused = sender_refusal(writer)
    if refused is None and (place is None or writer.id not in place.members):
        refused = refuse(ErrorCode.NOT_FOUND, "no such message")
    if refused is None and place.direct and other is not None:
        refused = direct_refusal(other, blocked=blocked)
    return refused


def sender_refusal(sender: Person) -> Decision | None:
    """Refuse a sender whose account was deactivated, even on a socket still open.

    `forbidden`, not `cannot_send`: that one speaks of the recipient or of a block between
    the two, this of the sender's own account.
    """
    if not sender.active:
        return refuse(ErrorCode.FORBIDDEN, "this account can no longer send messages")
    return None


def retry_answer(facts: SendFacts, *, same_place: bool) -> Decision:
    """Answer a retry: the message as it is now, or `conflict` if it asks for another.

    A deleted, hidden or purged message keeps no hash of its text: a retry of it in the
    same place is acked as the message is now, whatever its body.
    """
    earlier = facts.earlier
    assert earlier is not None
    if not same_place or (
        earlier.sent_hash and earlier.sent_hash != Message.hash_body(facts.body)
    ):
        return refuse(ErrorCode.CONFLICT, "this client_id was already used for another message")
    return ACK_EARLIER


def opening_refusal(other: Person, *, blocked: bool) -> Decision | None:
    """Refuse opening a direct conversation with someone deactivated or across a block."""
    if not other.active:
        return refuse(ErrorCode.CANNOT_SEND, f"{other.username} cannot receive messages")
    if blocked:
        return refuse(ErrorCode.CANNOT_SEND, f"you and {other.username} cannot message")
    return None


def direct_refusal(other: Person, *, blocked: bool) -> Decision | None:
    """Refuse writing in a direct conversation whose other member is gone or cut off."""
    if not other.active:
        return refuse(ErrorCode.CANNOT_SEND, f"{other.username} cannot receive messages")
    if blocked:
        return refuse(ErrorCode.CANNOT_SEND, f"you and {other.username} cannot message each other")
    return None


def blocked_either_way(first: int, second: int, blocks: Iterable[tuple[int, int]]) -> bool:
    """Tell whether either user blocks the other, among (blocker, blocked) pairs."""
    pairs = blocks if isinstance(blocks, set | frozenset) else set(blocks)
    return (first, second) in pairs or (second, first) in pairs


def other_member(place: Place, sender_id: int) -> int | None:
    """Return the member of a direct conversation who is not the sender, if any."""
    if not place.direct:
        return None
    if len(place.members) == 2 and sender_id in place.members:
        first, second = place.members
        return second if first == sender_id else first
    others = [member for member in place.members if member != sender_id]
    return others[0] if len(others) == 1 else None


def first_opening_of_each(openings: Mapping[int, str]) -> dict[str, int]:
    """Map each conversation to be opened (by key) to the first send that opens it.

    Sends are numbered in the order they came. A conversation opened counts once against
    the conversation limit, of the sender of its first send, as it would one by one: the
    later sends find it open.
    """
    first: dict[str, int] = {}
    for index in sorted(openings):
        first.setdefault(openings[index], index)
    return first


def stamp(last_seqs: Mapping[int, int]) -> int:
    """Draw the stamp of a change seen by these users, from their last stamps.

    Each user's stamps rise in commit order (the caller holds their streams' locks), and
    the new stamp becomes the last of every one of them.
    """
    return max(last_seqs.values(), default=0) + 1


def message_fields(
    *,
    conversation_id: int,
    sender_id: int,
    body: str,
    client_id: str,
    seq: int,
    kind: str = Message.Kind.TEXT,
    reply_to: int | None = None,
) -> dict:
    """Return the columns of a new message's row (its conversation's activity takes its time)."""
    return {
        "conversation_id": conversation_id,
        "sender_id": sender_id,
        "kind": kind,
        "body": body,
        "client_id": client_id,
        "sent_hash": Message.hash_body(body),
        "seq": seq,
        "reply_to_id": reply_to,
    }
