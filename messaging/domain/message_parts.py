"""Read what messages show beside their text, for a whole page of them at once.

A page (history, sync, search, the inbox's last messages) costs at most four queries more,
whatever its length: the quoted messages, the reactions, the files and the mentions. A
plain message just sent has none and is shown without reading them
(messaging.protocol.NO_PARTS).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import QuerySet

from messaging.domain import uploads
from messaging.models import Mention, Message, Reaction
from messaging.protocol import MessageParts, quote_data
from messaging.sql_values import is_one_of

# A quote of a message purged since: its row is gone, so is who wrote it.
_PURGED_SENDER = None

# The columns messaging.protocol.message_data and with_parts read, and the sender's two.
SHOWN_FIELDS = (
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
    "sender__id",
    "sender__username",
)


def shown_messages(*also: str) -> QuerySet[Message]:
    """Give messages with what they show loaded, and `also` these fields of related rows.

    For reads only (a message saved from it would write only these columns). A page of
    messages is most of a read's CPU: the sender's other columns (two timestamps, the
    password hash) and the message's own would be parsed for every message and never shown.
    """
    related = {field.split("__")[0] for field in also}
    return Message.objects.select_related("sender", *related).only(*SHOWN_FIELDS, *also)


def with_parts(messages: Sequence[Message]) -> Sequence[Message]:
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
        for original in shown_messages().filter(is_one_of(Message, "id", list(original_ids)))
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
