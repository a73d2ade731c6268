"""Full-text search of the messages a user can read, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, FloatField, QuerySet
from django.db.models.expressions import RawSQL

from messaging.models import Membership, Message
from messaging.protocol import ChatError, ErrorCode, message_data

MAX_WORDS = 10
SNIPPET_CHARS = 140
# Words: runs of letters and digits, as the database tokenizers see them.
WORD = re.compile(r"\w+", re.UNICODE)


def query_words(query: str) -> list[str]:
    """Split a search box's text into the words that must all match."""
    words = [word.lower() for word in WORD.findall(query)][:MAX_WORDS]
    if not words:
        raise ChatError(ErrorCode.BAD_FRAME, "search for at least one word")
    return words


def matching(messages: QuerySet, words: list[str]) -> QuerySet:
    """Keep the messages whose body holds every word, using the database's own index."""
    if connection.vendor == "postgresql":
        text = " ".join(words)
        return messages.annotate(
            search_hit=RawSQL(
                "search_vector @@ plainto_tsquery(%s::regconfig, %s)",
                (settings.CHAT_SEARCH_CONFIG, text),
                output_field=BooleanField(),
            ),
            search_rank=RawSQL(
                "ts_rank(search_vector, plainto_tsquery(%s::regconfig, %s))",
                (settings.CHAT_SEARCH_CONFIG, text),
                output_field=FloatField(),
            ),
        ).filter(search_hit=True)
    if connection.vendor == "sqlite":
        # Each word quoted: FTS5 then reads it as a plain term, never as query syntax.
        fts_query = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        return messages.filter(
            id__in=RawSQL(
                "SELECT rowid FROM messaging_message_fts WHERE messaging_message_fts MATCH %s",
                (fts_query,),
            )
        )
    raise NotImplementedError(f"no message search on {connection.vendor}")


def message_search(
    *, user, query: str, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Find the user's messages holding every word of the query, newest first."""
    words = query_words(query)
    conversations = Membership.objects.filter(user=user).values("conversation_id")
    messages = Message.objects.select_related("sender", "conversation").filter(
        conversation_id__in=conversations,
        deleted_at__isnull=True,
        kind=Message.Kind.TEXT,
    )
    if before is not None:
        messages = messages.filter(pk__lt=before)
    page = list(matching(messages, words).order_by("-id")[: limit + 1])
    return [search_hit(message, words) for message in page[:limit]], len(page) > limit


def search_hit(message: Message, words: list[str]) -> dict[str, Any]:
    """Show a hit: the message, its conversation's title, and a snippet with highlights."""
    snippet, highlights = make_snippet(message.body, words)
    return {
        **message_data(message),
        "conversation_title": message.conversation.title,
        "snippet": snippet,
        "highlights": highlights,
    }


def make_snippet(body: str, words: list[str]) -> tuple[str, list[list[int]]]:
    """Cut the body around its first hit; return it with [start, end) ranges of the hits.

    A body word counts as a hit when it starts with a query word, which also covers the
    stemmed forms the index matched ("meet" in "meeting").
    """
    spans = [
        (match.start(), match.end())
        for match in WORD.finditer(body)
        if any(match.group().lower().startswith(word) for word in words)
    ]
    start = 0
    if len(body) > SNIPPET_CHARS and spans:
        start = max(0, min(spans[0][0] - SNIPPET_CHARS // 3, len(body) - SNIPPET_CHARS))
    end = min(len(body), start + SNIPPET_CHARS)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(body) else ""
    shift = len(prefix) - start
    highlights = [[s + shift, e + shift] for s, e in spans if s >= start and e <= end]
    return prefix + body[start:end] + suffix, highlights
