"""Seed a big chat database on PostgreSQL: many users, conversations and messages, fast.

Run with the product's settings against a migrated database, from the repository root:

    DATABASE_URL=postgres://... python manage.py migrate
    DATABASE_URL=postgres://... python bench/seed_bigdb.py --size full   # or smoke

`full` is 100,000 people, 198,000 direct and 2,000 group conversations (10 to 50 members)
and at least 5,000,000 messages, with ten heavy users (heavy1, heavy2, ...) in 2,000
conversations and 52,000 messages each; the last heavy user's conversations all went
quiet long ago. `smoke` is the same shape, small enough to seed in a few seconds. Every
size can be changed by an option (--help).

People, conversations and memberships are drawn in Python and sent with COPY; the
messages are generated inside PostgreSQL from a plan per conversation. The tables'
secondary indexes and constraints are dropped during the load and made again after it
(one build instead of millions of updates), all in one transaction, then ANALYZE.

The data keeps what the product relies on: message ids and change stamps rise together
in time, each person's change stream holds the largest stamp of their conversations, a
conversation's last activity is its last message's time, read pointers name messages of
their conversation (most read to the end, some a few messages behind, some never read),
members who wrote (or created the conversation) are visible to the others, and every
@mention in a group message has its Mention row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import time
from dataclasses import dataclass, replace

# Seeded tables: their secondary indexes and constraints are made again after the load.
LOADED_TABLES = (
    "messaging_message",
    "messaging_mention",
    "messaging_membership",
    "messaging_conversation",
    "messaging_changestream",
)

# Words of the seeded messages. "project" is in about a fifth of them (a common word);
# RARE_WORD in about one in 5,000.
WORDS = (
    "the a we you they it is are was will can should meet call lunch today tomorrow "
    "tonight later soon now here there good great fine thanks sorry yes no maybe sure "
    "project project project release review draft plan budget report idea question "
    "answer photo music weekend train coffee office home trip ticket game news"
).split()
COMMON_WORD = "project"
RARE_WORD = "zanzibar"


@dataclass(frozen=True)
class Size:
    """How much to seed."""

    users: int
    conversations: int
    groups: int
    messages: int
    heavy_users: int
    heavy_conversations: int
    heavy_groups: int
    heavy_messages: int
    group_min: int = 10
    group_max: int = 50
    days: int = 365


SIZES = {
    "full": Size(
        users=100_000,
        conversations=200_000,
        groups=2_000,
        messages=5_000_000,
        heavy_users=10,
        heavy_conversations=2_000,
        heavy_groups=100,
        heavy_messages=52_000,
    ),
    "smoke": Size(
        users=3_000,
        conversations=6_000,
        groups=60,
        messages=120_000,
        heavy_users=2,
        heavy_conversations=200,
        heavy_groups=10,
        heavy_messages=4_000,
    ),
}


@dataclass(frozen=True)
class Seeded:
    """What was seeded: counts, and the heavy users' names (the last one's are all old)."""

    users: int
    conversations: int
    memberships: int
    messages: int
    heavy_usernames: list[str]
    seconds: float


def heavy_username(index: int) -> str:
    return f"heavy{index + 1}"


def seed(connection, size: Size, *, rng_seed: int = 21, log=print) -> Seeded:
    """Seed the database behind a psycopg connection (no commit: the caller's transaction)."""
    started = time.monotonic()
    _check(size)
    rng = random.Random(rng_seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    with connection.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM messaging_message)")
        if cur.fetchone()[0]:
            raise SystemExit("seed_bigdb: the database already has messages; seed a fresh one")
        cur.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute("SET LOCAL synchronous_commit = off")
        base = _id_bases(cur)
        saved = _drop_indexes_and_constraints(cur)
        log(f"seed: dropped {len(saved)} indexes and constraints for the load")

        user_ids = _seed_users(cur, size, base["auth_user"], now)
        log(f"seed: {len(user_ids)} users ({time.monotonic() - started:.1f} s)")
        plan = _plan_conversations(size, rng, user_ids, now)
        _copy_conversations(cur, plan, base["messaging_conversation"], now)
        memberships = _copy_memberships(cur, plan, base["messaging_conversation"])
        log(f"seed: {len(plan)} conversations, {memberships} memberships")
        messages = _generate_messages(cur, base)
        log(f"seed: {messages} messages ({time.monotonic() - started:.1f} s)")
        _derive(cur, user_ids)
        log(f"seed: read pointers, streams, activity ({time.monotonic() - started:.1f} s)")

        for statement in saved:
            cur.execute(statement)
        log(f"seed: indexes and constraints made again ({time.monotonic() - started:.1f} s)")
        # The next rows the product makes take ids after the seeded ones.
        for table in ("auth_user", *LOADED_TABLES[:-1]):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST((SELECT MAX(id) FROM {table}), 1))"
            )
        cur.execute("DROP TABLE seed_plan, seed_message")
    return Seeded(
        users=len(user_ids),
        conversations=len(plan),
        memberships=memberships,
        messages=messages,
        heavy_usernames=[heavy_username(i) for i in range(size.heavy_users)],
        seconds=round(time.monotonic() - started, 1),
    )


def analyze(connection) -> None:
    """Bring the planner's statistics of the seeded tables up to date (after the commit)."""
    with connection.cursor() as cur:
        for table in ("auth_user", *LOADED_TABLES):
            cur.execute(f"ANALYZE {table}")


def _check(size: Size) -> None:
    ordinary = size.users - size.heavy_users
    direct_per_heavy = size.heavy_conversations - size.heavy_groups
    if size.heavy_users * size.heavy_groups > size.groups:
        raise SystemExit("seed_bigdb: more heavy users' groups than groups")
    if direct_per_heavy < 0 or direct_per_heavy > ordinary:
        raise SystemExit("seed_bigdb: heavy users' direct conversations do not fit the users")
    if size.group_max > ordinary or size.group_min < 3 or size.group_min > size.group_max:
        raise SystemExit("seed_bigdb: group sizes do not fit the users")
    direct = size.conversations - size.groups
    if direct < size.heavy_users * direct_per_heavy or direct > ordinary * (ordinary - 1) // 4:
        raise SystemExit("seed_bigdb: too few or too many direct conversations for the users")
    heavy_total = size.heavy_users * size.heavy_conversations
    if size.messages < size.conversations or heavy_total > size.conversations:
        raise SystemExit("seed_bigdb: fewer messages or conversations than heavy users need")


def _id_bases(cur) -> dict[str, int]:
    bases = {}
    for table in ("auth_user", "messaging_conversation", "messaging_message"):
        cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
        bases[table] = cur.fetchone()[0]
    cur.execute("SELECT COALESCE(MAX(last_seq), 0) FROM messaging_changestream")
    bases["seq"] = cur.fetchone()[0]
    return bases


def _drop_indexes_and_constraints(cur) -> list[str]:
    """Drop the loaded tables' secondary indexes and constraints; return how to remake them."""
    remake: list[str] = []
    cur.execute(
        """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype
           FROM pg_constraint
           WHERE conrelid::regclass::text = ANY(%s) AND contype IN ('f', 'u', 'c')
           ORDER BY contype = 'f'""",
        [list(LOADED_TABLES)],
    )
    constraints = cur.fetchall()
    cur.execute(
        """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
           FROM pg_index i
           WHERE i.indrelid::regclass::text = ANY(%s) AND NOT i.indisprimary
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""",
        [list(LOADED_TABLES)],
    )
    indexes = cur.fetchall()
    # Foreign keys first (they lean on the unique ones), then the rest.
    for table, name, _definition, _kind in sorted(constraints, key=lambda c: c[3] != "f"):
        cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        cur.execute(f"DROP INDEX {name}")
    remake += [definition for _name, definition in indexes]
    remake += [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for table, name, definition, _kind in sorted(constraints, key=lambda c: c[3] == "f")
    ]
    return remake


def _seed_users(cur, size: Size, base: int, now: dt.datetime) -> list[int]:
    joined = now - dt.timedelta(days=size.days + 30)
    ids = list(range(base + 1, base + size.users + 1))
    with cur.copy(
        "COPY auth_user (id, password, is_superuser, username, first_name, last_name, email,"
        " is_staff, is_active, date_joined) FROM STDIN"
    ) as copy:
        for index, user_id in enumerate(ids):
            name = heavy_username(index) if index < size.heavy_users else f"user{index:06d}"
            # "!": an unusable password, as set_unusable_password() makes.
            copy.write_row((user_id, "!", False, name, "", "", "", False, True, joined))
    return ids


@dataclass
class _Conversation:
    kind: str
    members: list[int]
    messages: int
    start: float  # days before now
    span: float  # days


def _plan_conversations(
    size: Size, rng: random.Random, user_ids: list[int], now: dt.datetime
) -> list[_Conversation]:
    heavy = user_ids[: size.heavy_users]
    ordinary = user_ids[size.heavy_users :]
    old_heavy = heavy[-1] if size.heavy_users >= 2 else None
    plan: list[_Conversation] = []
    heavy_of: list[int | None] = []
    for group in range(size.groups):
        owned = group < len(heavy) * size.heavy_groups
        owner = heavy[group // size.heavy_groups] if owned else None
        count = rng.randint(size.group_min, size.group_max)
        members = rng.sample(ordinary, count - (owner is not None))
        if owner is not None:
            members.insert(0, owner)
        plan.append(_Conversation("group", members, 0, 0.0, 0.0))
        heavy_of.append(owner)
    pairs: set[tuple[int, int]] = set()
    for user in heavy:
        for other in rng.sample(ordinary, size.heavy_conversations - size.heavy_groups):
            pairs.add((user, other))
            plan.append(_Conversation("direct", [user, other], 0, 0.0, 0.0))
            heavy_of.append(user)
    while len(plan) < size.conversations:
        first, second = rng.sample(ordinary, 2)
        pair = (min(first, second), max(first, second))
        if pair in pairs:
            continue
        pairs.add(pair)
        plan.append(_Conversation("direct", [first, second], 0, 0.0, 0.0))
        heavy_of.append(None)

    per_heavy = -(-size.heavy_messages // size.heavy_conversations)
    rest = [index for index, owner in enumerate(heavy_of) if owner is None]
    rest_total = size.messages - per_heavy * (len(plan) - len(rest))
    base, extra = divmod(max(rest_total, len(rest)), max(len(rest), 1))
    counts = [base] * len(rest)
    for index in range(0, len(rest) - 1, 2):
        swing = rng.randint(0, base - 1)
        counts[index] += swing
        counts[index + 1] -= swing
    for index in range(extra):
        counts[index] += 1
    for index, count in zip(rest, counts, strict=True):
        plan[index].messages = count
    for index, conversation in enumerate(plan):
        owner = heavy_of[index]
        if owner is not None:
            conversation.messages = per_heavy
        if owner is not None and owner == old_heavy:
            # All old: the quiet heavy user's talk ended more than 300 days ago.
            conversation.start = rng.uniform(size.days * 0.85, size.days * 0.99)
            conversation.span = rng.uniform(0.1, size.days * 0.02)
        else:
            conversation.start = rng.uniform(1.0, size.days * 0.99)
            conversation.span = rng.uniform(0.01, conversation.start - 0.01)
    return plan


def _copy_conversations(cur, plan: list[_Conversation], base: int, now: dt.datetime) -> None:
    with cur.copy(
        "COPY messaging_conversation (id, kind, title, direct_key, created_by_id, created_at,"
        " last_activity_at) FROM STDIN"
    ) as copy:
        for offset, conversation in enumerate(plan, start=1):
            created = now - dt.timedelta(days=conversation.start + 0.001)
            first, second = conversation.members[0], conversation.members[1]
            if conversation.kind == "group":
                copy.write_row(
                    (base + offset, "group", f"Group {offset}", None, first, created, created)
                )
            else:
                key = f"{min(first, second)}:{max(first, second)}"
                copy.write_row((base + offset, "direct", "", key, first, created, created))
    cur.execute(
        "CREATE TEMP TABLE seed_plan (conversation_id bigint PRIMARY KEY, n int, t0 timestamptz,"
        " span interval, members int[], names text[])"
    )
    with cur.copy("COPY seed_plan (conversation_id, n, t0, span, members) FROM STDIN") as copy:
        for offset, conversation in enumerate(plan, start=1):
            copy.write_row(
                (
                    base + offset,
                    conversation.messages,
                    now - dt.timedelta(days=conversation.start),
                    dt.timedelta(days=conversation.span),
                    conversation.members,
                )
            )
    cur.execute(
        """UPDATE seed_plan p SET names = (
               SELECT array_agg(u.username ORDER BY m.ord) FROM unnest(p.members)
               WITH ORDINALITY m(id, ord) JOIN auth_user u ON u.id = m.id)
           WHERE cardinality(p.members) > 2"""
    )


def _copy_memberships(cur, plan: list[_Conversation], base: int) -> int:
    rows = 0
    with cur.copy(
        "COPY messaging_membership (conversation_id, user_id, last_read_message_id, joined_at,"
        " visible_to_members, muted, emailed_up_to) FROM STDIN"
    ) as copy:
        for offset, conversation in enumerate(plan, start=1):
            for position, user in enumerate(conversation.members):
                # The creator is visible from the start; writers become visible below.
                copy.write_row((base + offset, user, 0, "epoch", position == 0, False, 0))
                rows += 1
    cur.execute(
        """UPDATE messaging_membership m SET joined_at = c.created_at
           FROM messaging_conversation c WHERE c.id = m.conversation_id"""
    )
    return rows


def _generate_messages(cur, base: dict[str, int]) -> int:
    """Make each conversation's messages inside PostgreSQL, ids and stamps in time order."""
    words = "ARRAY[" + ",".join(f"'{word}'" for word in WORDS) + "]"
    cur.execute(
        f"""CREATE TEMP TABLE seed_message AS
        WITH raw AS (
            SELECT p.conversation_id, g.i, p.n, p.members, p.names,
                   cardinality(p.members) AS size,
                   (p.conversation_id * 1000003 + g.i * 7919) AS x,
                   p.t0 + p.span * ((g.i - 1)::float8 / p.n) AS created_at
            FROM seed_plan p, generate_series(1, p.n) AS g(i)
        ), picked AS (
            SELECT *, CASE WHEN size = 2 THEN (i % 2) ELSE (x % size)::int END AS s
            FROM raw
        )
        SELECT row_number() OVER (ORDER BY created_at, conversation_id, i) AS k,
               conversation_id, i, n, created_at,
               members[1 + s] AS sender_id,
               CASE WHEN size > 2 AND i % 20 = 0 THEN members[1 + (s + 1) % size] END
                   AS mentioned_id,
               concat_ws(' ',
                   CASE WHEN size > 2 AND i % 20 = 0 THEN '@' || names[1 + (s + 1) % size] END,
                   ({words})[1 + x % {len(WORDS)}],
                   ({words})[1 + (x / 7) % {len(WORDS)}],
                   ({words})[1 + (x / 53) % {len(WORDS)}],
                   ({words})[1 + (x / 401) % {len(WORDS)}],
                   CASE WHEN x % 5 < 2 THEN ({words})[1 + (x / 3041) % {len(WORDS)}] END,
                   CASE WHEN x % 4999 = 0 THEN '{RARE_WORD}' END) AS body
        FROM picked"""
    )
    message_base, seq_base = base["messaging_message"], base["seq"]
    cur.execute(
        f"""INSERT INTO messaging_message (id, conversation_id, sender_id, kind, body,
               client_id, sent_hash, seq, created_at)
           SELECT {message_base} + k, conversation_id, sender_id, 'text', body,
                  'seed-' || k, '', {seq_base} + k, created_at
           FROM seed_message"""
    )
    count = cur.rowcount
    cur.execute(
        f"""INSERT INTO messaging_mention (conversation_id, message_id, user_id)
           SELECT conversation_id, {message_base} + k, mentioned_id
           FROM seed_message WHERE mentioned_id IS NOT NULL"""
    )
    cur.execute("ALTER TABLE seed_message ADD COLUMN id bigint")
    cur.execute(f"UPDATE seed_message SET id = {message_base} + k")
    cur.execute("ANALYZE seed_message")
    return count


def _derive(cur, user_ids: list[int]) -> None:
    """Set what follows from the messages: activity, visibility, read pointers, streams."""
    cur.execute(
        """CREATE TEMP TABLE seed_last AS
           SELECT conversation_id, MAX(id) AS last_id, MAX(n) AS n,
                  MAX(created_at) AS last_at
           FROM seed_message GROUP BY conversation_id"""
    )
    cur.execute(
        """UPDATE messaging_conversation c SET last_activity_at = l.last_at
           FROM seed_last l WHERE l.conversation_id = c.id"""
    )
    cur.execute(
        """UPDATE messaging_membership m SET visible_to_members = true
           FROM (SELECT DISTINCT conversation_id, sender_id FROM seed_message) s
           WHERE s.conversation_id = m.conversation_id AND s.sender_id = m.user_id"""
    )
    # Most members read to the end; one in six is 1 to 10 messages behind; one in twenty
    # has read nothing.
    cur.execute(
        """CREATE TEMP TABLE seed_read AS
           SELECT m.id, CASE
               WHEN m.id % 20 = 0 THEN 0
               WHEN m.id % 6 = 0 THEN COALESCE(s.id, 0)
               ELSE l.last_id END AS up_to
           FROM messaging_membership m
           JOIN seed_last l ON l.conversation_id = m.conversation_id
           LEFT JOIN seed_message s ON s.conversation_id = m.conversation_id
               AND s.i = GREATEST(l.n - 1 - (m.id % 10), 1) AND m.id % 6 = 0"""
    )
    cur.execute(
        """UPDATE messaging_membership m SET last_read_message_id = r.up_to
           FROM seed_read r WHERE r.id = m.id AND r.up_to <> 0"""
    )
    # The seeded stamps equal the message ids' order, so a stream's last stamp is the
    # largest stamp of its member's conversations, and its conversation the one holding it.
    cur.execute(
        """INSERT INTO messaging_changestream (user_id, last_seq, last_conversation_id)
           SELECT u.id, COALESCE(MAX(msg.seq), 0),
               (ARRAY_AGG(msg.conversation_id ORDER BY msg.seq DESC NULLS LAST))[1]
           FROM auth_user u
           LEFT JOIN messaging_membership m ON m.user_id = u.id
           LEFT JOIN seed_last l ON l.conversation_id = m.conversation_id
           LEFT JOIN messaging_message msg ON msg.id = l.last_id
           WHERE u.id = ANY(%s)
           GROUP BY u.id""",
        [user_ids],
    )
    cur.execute("DROP TABLE seed_last, seed_read")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    for field in Size.__dataclass_fields__:
        parser.add_argument("--" + field.replace("_", "-"), type=int)
    parser.add_argument("--seed", type=int, default=21, help="random seed")
    args = parser.parse_args()
    size = SIZES[args.size]
    changes = {f: getattr(args, f) for f in Size.__dataclass_fields__ if getattr(args, f)}
    size = replace(size, **changes)

    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        raise SystemExit("seed_bigdb: DATABASE_URL must name a PostgreSQL database")
    with transaction.atomic():
        seeded = seed(connection, size, rng_seed=args.seed)
    analyze(connection)
    print(
        f"seeded {seeded.users} users, {seeded.conversations} conversations, "
        f"{seeded.memberships} memberships, {seeded.messages} messages in {seeded.seconds} s; "
        f"heavy users: {', '.join(seeded.heavy_usernames)}"
    )


if __name__ == "__main__":
    main()
