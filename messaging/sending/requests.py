"""A batch's sends, what becomes of them, and what the batch notes while it decides them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from messaging.domain import services
from messaging.domain.events import Event
from messaging.protocol import ChatError


@dataclass(frozen=True)
class SendRequest:
    """One `message.send`: who sends what, where (`to` a username or a conversation id)."""

    sender: Any
    body: str
    client_id: str
    to: str | None = None
    conversation_id: int | None = None
    reply_to: int | None = None
    attachments: tuple[str, ...] = ()

    @property
    def has_parts(self) -> bool:
        """Tell whether the send quotes a message or carries files (the single path stores
        those: plain text, by far the most common, keeps the batch's round trips)."""
        return self.reply_to is not None or bool(self.attachments)


@dataclass
class SendOutcome:
    """What became of one send: stored (or found stored) with its events, or refused."""

    result: services.SendResult | None = None
    error: ChatError | None = None
    events: list[Event] = field(default_factory=list)


@dataclass
class HandedOn:
    """The sends a batch leaves to services.message_send, after it, and what they hold back.

    Such a send is decided after the batch's own, so a later send that could change its
    answer must not be decided before it: the later sends of its sender (its client_ids,
    its limits, its place) and those that would open the same conversation go after it
    too. A retry or a refusal changes nothing and holds nothing back.
    """

    # sender id, or direct key of a conversation to open -> the first send handed on
    firsts: dict[int | str, int] = field(default_factory=dict)

    def hand_on(self, index: int, sender: int, key: str | None = None) -> None:
        """Leave a send that may store to the single path, holding back the later ones."""
        self.firsts.setdefault(sender, index)
        if key is not None:
            self.firsts.setdefault(key, index)

    def holds(self, index: int, sender: int, key: str | None = None) -> bool:
        """Tell whether a send handed on before this one holds it back."""
        return any(self.firsts.get(subject, index) < index for subject in (sender, key) if subject)


@dataclass(frozen=True)
class Opening:
    """A direct conversation a send would open."""

    key: str
    sender: int
    other: int
