"""Read what messages show beside their text, for a whole page of them at once.

A page (history, sync, search, the inbox's last messages) is read as plain rows
(`shown_rows`), and costs at most four queries more, whatever its length: the quoted
messages, the reactions, the files and the mentions. A plain message just sent has none
and is shown without reading them (messaging.protocol.NO_PARTS).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db.models import QuerySet

from messaging.domain import uploads
from messaging.models import Mention, Message, Reaction
from messaging.protocol import NO_PARTS, MessageParts, quote_data
from messaging.sql_values import is_one_of

# A quote of a message purged since: its row is gone, so is who wrote it.
_PURGED_SENDER = None


@dataclass(slots=True)
class ShownSender:
    """Who wrote a message read for showing: what messaging.protocol.user_data reads."""

    pk: int
    username: str


@dataclass(slots=True)
class ShownMessage:
    """A message read for showing: the columns messaging.protocol.message_data reads.

    Read as a plain row rather than a model: a page of messages is most of a read's CPU,
    and a model costs its signals and field conversions for each message (and the
    sender's) and is never saved from here.
    """

    pk: int
    seq: int
    conversation_id: int
    body: str
    client_id: str
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    hidden_by_id: int | None
    kind: str
    reply_to_id: int | None
    sender: ShownSender
    # Read only for search, which shows it beside each hit.
    conversation_title: str = ""
    parts: MessageParts = NO_PARTS


# A page's rows, or a message being sent or changed (a model), given its parts alike.
Shown = TypeVar("Shown", Message, ShownMessage)

_COLUMNS = (
    "id",
    "seq",
    "conversation_id",
    "body",
    "client_id",
    "created_at",
    "edited_at",
    "deleted_at",
    "hidden_by_id",
    "kind",
    "reply_to_id",
    "sender_id",
    "sender__username",
)


def shown_rows(messages: QuerySet[Message], *, with_title: bool = False) -> list[ShownMessage]:
    """Read these messages (filtered, ordered, sliced) as what a page shows of them."""
    columns = (*_COLUMNS, "conversation__title") if with_title else _COLUMNS
    return [
        ShownMessage(
            *row[:11],
            sender=ShownSender(row[11], row[12]),
            conversation_title=row[13] if with_title else "",
        )
        for row in messages.values_list(*columns)
    ]


def with_parts(messages: Sequence[Shown]) -> Sequence[Shown]:
    """Give each message its `parts` (quote, reactions, files, mentions); return them."""
    live = [message for message in messages if message.deleted_at is None]
    if not live:
        return messages
    ids = [message.pk for message in live]
    quotes = _quotes({m.reply_to_id for m in live if m.reply_to_id is not None})
    reactions = reactions_of(ids)
    files = uploads.attachments_of(ids)
    mentions = _mentions_of(ids)
    for message in live:
        message.parts = MessageParts(
            reply_to=quotes.get(message.reply_to_id) if message.reply_to_id else None,
            reactions=reactions.get(message.pk, []),
            attachments=files.get(message.pk, []),
            mentions=mentions.get(message.pk, []),
        )
    return messages


def reactions_of(message_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Return each message's reactions: per emoji, in the order each was first used."""
    by_message: dict[int, dict[str, list[int]]] = defaultdict(dict)
    rows = (
        Reaction.objects.filter(is_one_of(Reaction, "message_id", list(message_ids)))
        .order_by("id")
        .values_list("message_id", "emoji", "user_id")
    )
    for message_id, emoji, user_id in rows:
        by_message[message_id].setdefault(emoji, []).append(user_id)
    return {
        message_id: [
            {"emoji": emoji, "count": len(users), "users": users}
            for emoji, users in emojis.items()
        ]
        for message_id, emojis in by_message.items()
    }


def _quotes(original_ids: set[int]) -> dict[int, dict[str, Any]]:
    if not original_ids:
        return {}
    found = {
        original.pk: quote_data(original)
        for original in shown_rows(
            Message.objects.filter(is_one_of(Message, "id", [*original_ids]))
        )
    }
    for missing in original_ids - found.keys():
        found[missing] = {"id": missing, "sender": _PURGED_SENDER, "body": "", "deleted": True}
    return found


def _mentions_of(message_ids: list[int]) -> dict[int, list[int]]:
    if not message_ids:
        return {}
    by_message: dict[int, list[int]] = defaultdict(list)
    rows = (
        Mention.objects.filter(is_one_of(Mention, "message_id", message_ids))
        .order_by("id")
        .values_list("message_id", "user_id")
    )
    for message_id, user_id in rows:
        by_message[message_id].append(user_id)
    return by_message
