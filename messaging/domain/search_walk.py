"""PostgreSQL's search of one user's messages, newest first, fast whatever the words.

Left to the planner, the search of someone in 2,000 conversations either probed each
conversation's every message (a rare word: 0.5 s) or walked everyone's messages backwards
by id until enough of the user's matched (a common one: 8.6 s for someone whose messages
are all old). Here the query's shape is chosen, not left to the planner:

- A word rare among all messages (the planner's statistics of the two word indexes put it
  in at most RARE_ROWS of them; for a word they do not list, only a bound, its messages
  are counted up to RARE_ROWS): its index reads its few messages, then the other words
  and the user's memberships keep the hits.
- Otherwise the user's own conversations drive a walk back in windows of ids. First each
  conversation's newest message id below `before` (one probe of the history index each,
  from the index alone). The first window holds what the WALK_FIRST conversations with
  the newest messages wrote after the next conversation's newest message (no other
  conversation wrote then); each next one reaches WALK_GROWTH times as many conversations
  back. In a window each conversation's messages are read newest first from the history
  index, the words tested on each and the reading stopped at a page of hits. Words the
  user's messages often hold fill the page in a window or two, however old the messages;
  words common elsewhere but rare for the user cost at most one read of each of the
  user's messages, where the word indexes would read everyone's (seconds for a word in
  a fifth of all messages).
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

from messaging.models import Message

WALK_FIRST = 16
WALK_GROWTH = 4
RARE_ROWS = 10_000
# Above every message id: `before` when the caller gave none.
NO_BOUND = 2**63 - 1

NEWEST_IDS = """
SELECT newest.id, membership.conversation_id
FROM messaging_membership AS membership
CROSS JOIN LATERAL (
    SELECT max(message.id) AS id FROM messaging_message AS message
    WHERE message.conversation_id = membership.conversation_id AND message.id < %s
) AS newest
WHERE membership.user_id = %s AND newest.id IS NOT NULL
ORDER BY newest.id DESC
"""

# OFFSET 0 keeps the words' test out of the inner scan: the history index gives the rows
# newest first, and the test stops at the LIMIT (the planner cannot pick the word indexes).
WINDOW_HITS = """
SELECT hit.id
FROM unnest(%s::bigint[]) AS conversation(id)
CROSS JOIN LATERAL (
    SELECT candidate.id FROM (
        SELECT message.id, message.body, message.search_vector
        FROM messaging_message AS message
        WHERE message.conversation_id = conversation.id
          AND message.id > %s AND message.id < %s
          AND message.deleted_at IS NULL AND message.kind = %s
        ORDER BY message.id DESC
        OFFSET 0
    ) AS candidate
    WHERE {match}
    LIMIT %s
) AS hit
ORDER BY hit.id DESC
LIMIT %s
"""

# MATERIALIZED: the rare word's indexes find its few messages first, then the other words
# and the membership keep the user's hits. Inlined, the planner went back to probing every
# conversation, or read every common word's index too (1.2 million rows rechecked).
INDEXED_HITS = """
WITH candidate AS MATERIALIZED (
    SELECT message.id, message.conversation_id, message.body, message.search_vector
    FROM messaging_message AS message
    WHERE {rare} AND message.id < %s
      AND message.deleted_at IS NULL AND message.kind = %s
)
SELECT candidate.id FROM candidate
WHERE {match} AND candidate.conversation_id IN (
    SELECT conversation_id FROM messaging_membership WHERE user_id = %s
)
ORDER BY candidate.id DESC
LIMIT %s
"""

# A word's messages, counted from its two indexes up to a limit.
WORD_ROWS = """
SELECT count(*) FROM (
    SELECT 1 FROM messaging_message AS message WHERE {word} LIMIT %s
) AS found
"""

# The planner's statistics of the two word indexes (most common lexemes and their
# frequencies, kept by ANALYZE), each word's stem, the number of messages, and each
# index's statistics target (its own if an operator set one, else the default).
WORD_STATISTICS = """
WITH stats AS (
    SELECT tablename, most_common_elems::text::text[] AS lexemes,
        most_common_elem_freqs AS shares, avg_width
    FROM pg_stats
    WHERE schemaname = current_schema() AND (
        tablename = 'messaging_message' AND attname = 'search_vector'
        OR tablename = 'messaging_message_search_words')
)
SELECT
    (SELECT lexemes FROM stats WHERE tablename = 'messaging_message'),
    (SELECT shares FROM stats WHERE tablename = 'messaging_message'),
    (SELECT avg_width FROM stats WHERE tablename = 'messaging_message'),
    (SELECT lexemes FROM stats WHERE tablename <> 'messaging_message'),
    (SELECT shares FROM stats WHERE tablename <> 'messaging_message'),
    (SELECT avg_width FROM stats WHERE tablename <> 'messaging_message'),
    array(SELECT plainto_tsquery(%s::regconfig, word)::text FROM unnest(%s::text[]) AS word),
    (SELECT reltuples FROM pg_class WHERE oid = 'messaging_message'::regclass),
    (SELECT coalesce(nullif(attstattarget, -1), current_setting('default_statistics_target')::int)
     FROM pg_attribute
     WHERE attrelid = 'messaging_message'::regclass AND attname = 'search_vector'),
    (SELECT coalesce(nullif(attstattarget, -1), current_setting('default_statistics_target')::int)
     FROM pg_attribute
     WHERE attrelid = to_regclass('messaging_message_search_words') AND attnum = 1)
"""

# Per search: the word indexes' row estimates for a prefix are far too high, which made
# PostgreSQL compile the query (JIT, ~10 ms) and start parallel workers for a few rows.
PLAIN_PLANS = (
    "SELECT set_config('jit', 'off', true),"
    " set_config('max_parallel_workers_per_gather', '0', true)"
)


def match_sql(words: list[str], table: str = "") -> tuple[str, list[str]]:
    """Give the condition that a message (of alias `table`) holds every word, and its params."""
    # Each word's own clause, every one required; the words are letters and digits only
    # (search.WORD), so quoting one as a tsquery term cannot change the query's syntax.
    of = f"{table}." if table else ""
    clauses = " AND ".join(
        f"({of}search_vector @@ plainto_tsquery(%s::regconfig, %s)"
        f" OR to_tsvector('simple'::regconfig, {of}body) @@ to_tsquery('simple', %s))"
        for _ in words
    )
    params: list[str] = []
    for word in words:
        params += [settings.CHAT_SEARCH_CONFIG, word, f"'{word}':*"]
    return clauses, params


def walked_hit_ids(user, words: list[str], before: int | None, want: int) -> list[int]:
    """Give the ids of the user's newest `want` hits below `before`, newest first."""
    on_candidate, params = match_sql(words, "candidate")
    upper = NO_BOUND if before is None else before
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(PLAIN_PLANS)
        rare = rarest_word(cursor, words)
        if rare is not None:
            on_rare, rare_params = match_sql([rare], "message")
            cursor.execute(
                INDEXED_HITS.format(rare=on_rare, match=on_candidate),
                [*rare_params, upper, Message.Kind.TEXT, *params, user.pk, want],
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(NEWEST_IDS, [upper, user.pk])
        newest = cursor.fetchall()
        if not newest:
            return []
        # Messages sent from now on are not in `newest`: leave them out everywhere.
        upper = newest[0][0] + 1
        found: list[int] = []
        reach = WALK_FIRST
        while True:
            # Conversations from `reach` on wrote nothing after `lower`.
            lower = newest[reach][0] if reach < len(newest) else 0
            conversations = [conversation for _, conversation in newest[:reach]]
            left = want - len(found)
            cursor.execute(
                WINDOW_HITS.format(match=on_candidate),
                [conversations, lower, upper, Message.Kind.TEXT, *params, left, left],
            )
            found += [row[0] for row in cursor.fetchall()]
            if len(found) >= want or lower == 0:
                return found
            upper = lower + 1
            reach *= WALK_GROWTH


def rarest_word(cursor, words: list[str]) -> str | None:
    """Give the word in the fewest messages if it is in RARE_ROWS at most, else None.

    The statistics decide, except for a word they only bound: its messages are counted.
    """
    cursor.execute(WORD_STATISTICS, [settings.CHAT_SEARCH_CONFIG, words])
    (stemmed, stemmed_shares, stemmed_width, written, written_shares, written_width, stems, rows,
     stemmed_target, written_target) = cursor.fetchone()  # fmt: skip
    if rows is None or rows <= 0:
        return max(words, key=len)  # Never analyzed: a small table, every word is cheap.
    stemmed_of = lexeme_shares(stemmed, stemmed_shares, stemmed_width, stemmed_target)
    written_of = lexeme_shares(written, written_shares, written_width, written_target)
    estimates = sorted(
        (estimated_share(word, stem, stemmed_of, written_of) * rows, word, stem)
        for word, stem in zip(words, stems, strict=True)
    )
    least, word, _ = estimates[0]
    if least <= RARE_ROWS:
        return word
    # A word the statistics do not list has only a bound, often ten times its real count,
    # and the same word fell on either side of RARE_ROWS from one ANALYZE to the next
    # (its search taking 22 or 302 ms): one word's messages counted tells.
    unlisted = [
        word for _, word, stem in estimates if not is_listed(word, stem, stemmed_of, written_of)
    ]
    if unlisted and word_rows(cursor, unlisted[0], RARE_ROWS + 1) <= RARE_ROWS:
        return unlisted[0]
    return None


def word_rows(cursor, word: str, limit: int) -> int:
    """Count the messages holding a word (as a search matches it), up to `limit`."""
    on_word, params = match_sql([word], "message")
    cursor.execute(WORD_ROWS.format(word=on_word), [*params, limit])
    return cursor.fetchone()[0]


def is_listed(word: str, stem: str, stemmed: dict[str, float], written: dict[str, float]) -> bool:
    """Tell whether the statistics list the word's stem or a word it starts."""
    stem = stem.strip("'")
    # "" in the maps is the bound of every lexeme not listed, not a lexeme.
    by_stem = stem != "" and stem in stemmed
    return by_stem or any(lexeme and lexeme.startswith(word) for lexeme in written)


def lexeme_shares(
    lexemes: list[str] | None,
    shares: list[float] | None,
    avg_width: int | None = None,
    target: int | None = None,
) -> dict[str, float]:
    """Map each of a column's most common lexemes to its share of the rows.

    The lexeme "" holds the most a lexeme not listed may have: the smallest share listed
    when ANALYZE listed as many as it keeps (10 per unit of `target`), else the cut-off
    below which it lists none. A small vocabulary (a few dozen words in most messages) has
    them all listed, the smallest at several per cent, while a word not listed is in a few
    rows in ten thousand: taken at that smallest share, no word would ever count as rare.
    """
    if not lexemes or not shares:
        return {"": 1.0}
    # After the lexemes' shares come the smallest, the largest and the share of nulls.
    unlisted = shares[-3]
    if avg_width and target and len(lexemes) < target * 10:
        unlisted = min(unlisted, analyze_cutoff_share(avg_width, target))
    return {**dict(zip(lexemes, shares, strict=False)), "": unlisted}


def analyze_cutoff_share(avg_width: int, target: int) -> float:
    """Give the most rows, as a share, that a lexeme ANALYZE did not list may be in.

    PostgreSQL's compute_tsvector_stats (ts_typanalyze.c) counts lexemes with lossy
    counting, in buckets of (10 target + 10) 1000 / 7 lexemes, and lists only those counted
    more than 9 per bucket's worth of lexemes read; with the count's error of one per
    bucket's worth, a lexeme not listed is in at most 10 lexemes-per-row / bucket rows.
    Every lexeme takes at least 5 bytes of a tsvector (its entry and a letter), so the
    column's average width / 5 is at least its lexemes per row.
    """
    bucket = (target * 10 + 10) * 1000 // 7
    return 10 * (avg_width / 5) / bucket


def estimated_share(
    word: str, stem: str, stemmed: dict[str, float], written: dict[str, float]
) -> float:
    """Estimate the share of messages a word matches: by its stem, or a word it starts."""
    stem = stem.strip("'")
    by_stem = stemmed.get(stem, stemmed[""]) if stem else 0.0
    by_prefix = sum(share for lexeme, share in written.items() if lexeme.startswith(word))
    return by_stem + max(by_prefix, written[""])
