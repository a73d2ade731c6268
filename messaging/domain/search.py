"""Full-text search of the messages a user can read, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL

from messaging.domain.message_parts import ShownMessage, shown_rows, with_parts
from messaging.domain.search_walk import match_sql, walked_hit_ids
from messaging.models import Membership, Message
from messaging.protocol import ChatError, ErrorCode, message_data

MAX_WORDS = 10
SNIPPET_CHARS = 140
# Words: runs of letters and digits, as the database tokenizers see them.
WORD = re.compile(r"\w+", re.UNICODE)
# The stemmed index (migration 0005) and the index of words as written (0010).
STEMMED_SQLITE = "SELECT rowid FROM messaging_message_fts WHERE messaging_message_fts MATCH %s"
WORDS_SQLITE = "SELECT rowid FROM messaging_message_words WHERE messaging_message_words MATCH %s"


def query_words(query: str) -> list[str]:
    """Split a search box's text into the words that must all match."""
    words = [word.lower() for word in WORD.findall(query)][:MAX_WORDS]
    if not words:
        raise ChatError(ErrorCode.BAD_FRAME, "search for at least one word")
    return words


def matching(messages: QuerySet, words: list[str]) -> QuerySet:
    """Keep the messages whose body holds every word, using the database's own indexes.

    A word matches a body word it starts ("hell" finds "Hello", as the search box is typed)
    or, through the stemmed index, another form of it ("meetings" finds "meeting").
    """
    if connection.vendor == "postgresql":
        clauses, params = match_sql(words)
        return messages.annotate(
            search_hit=RawSQL(clauses, params, output_field=BooleanField()),
        ).filter(search_hit=True)
    if connection.vendor == "sqlite":
        # Each word quoted: FTS5 then reads it as a plain term, never as query syntax.
        for word in words:
            term = '"' + word.replace('"', '""') + '"'
            messages = messages.filter(
                Q(id__in=RawSQL(STEMMED_SQLITE, (term,)))
                | Q(id__in=RawSQL(WORDS_SQLITE, (term + "*",)))
            )
        return messages
    raise NotImplementedError(f"no message search on {connection.vendor}")


def message_search(
    *, user, query: str, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Find the user's messages holding every word of the query, newest first."""
    words = query_words(query)
    if connection.vendor == "postgresql":
        ids = walked_hit_ids(user, words, before, limit + 1)
    else:
        ids = list(
            matching(searchable(user, before), words)
            .order_by("-id")
            .values_list("id", flat=True)[: limit + 1]
        )
    page = shown_rows(
        Message.objects.filter(id__in=ids[:limit], deleted_at__isnull=True).order_by("-id"),
        with_title=True,
    )
    hits = with_parts(page)
    return [search_hit(message, words) for message in hits], len(ids) > limit


def searchable(user, before: int | None) -> QuerySet:
    """Give the messages search may show the user: their conversations' live texts."""
    conversations = Membership.objects.filter(user=user).values("conversation_id")
    messages = Message.objects.filter(
        conversation_id__in=conversations,
        deleted_at__isnull=True,
        kind=Message.Kind.TEXT,
    )
    return messages if before is None else messages.filter(pk__lt=before)


def search_hit(message: ShownMessage, words: list[str]) -> dict[str, Any]:
    """Show a hit: the message, its conversation's title, and a snippet with highlights."""
    snippet, highlights = make_snippet(message.body, words)
    return {
        **message_data(message),
        "conversation_title": message.conversation_title,
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
