"""Who may see whom: presence, typing and read receipts (PROTOCOL.md, Privacy).

The one rule: a viewer may see a user's presence, typing and reading when the user's
settings allow it (`show_presence` for presence, `send_read_receipts` for reading; typing
has no setting of its own), neither of the two blocks the other, and they share a
conversation in which the user has shown themselves (wrote in it or created it:
Membership.visible_to_members). A stranger who opens a conversation with someone, or puts
them in a group, learns nothing of them until they answer there.

The rule is one written-out statement (`_sight`), asked from either side: who sees these
users, or whom these viewers see. Every handshake, `typing` and `read` frame and presence
change asks it, and the ORM took longer to build its three queries than the database to
answer them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from django.db import connection

from messaging.models import Block, Membership, UserSettings
from messaging.sql_values import WrittenQuery, one_of, table

# What is seen, named by the setting that allows it (None: no setting, only the rule).
PRESENCE = "show_presence"
RECEIPTS = "send_read_receipts"
TYPING = None
_SETTINGS = frozenset({PRESENCE, RECEIPTS})

# (conversation id, user id) of memberships to count as not shown (see watchers).
Hidden = Collection[tuple[int, int]]

# Users named by ids, or by a written-out query of user ids that stays inside the statement.
Users = Iterable[int] | WrittenQuery


def _users_condition(column: str, users: Users) -> tuple[str, list]:
    """Build the condition `column` is one of `users`, and its parameters."""
    if isinstance(users, WrittenQuery):
        return f"{column} IN ({users.sql})", list(users.params)
    return one_of(column, sorted(set(users)))


def _sight(
    setting: str | None,
    *,
    seen: Users | None = None,
    viewers: Users | None = None,
    hidden: Hidden = (),
) -> list[tuple[int, int, bool]]:
    """Return (user, viewer, only_through_hidden) for every viewer who may see a user.

    `seen` narrows the users, `viewers` the viewers. The third column is true when the
    viewer sees the user only through memberships in `hidden` (always false without it).
    """
    if setting is not None and setting not in _SETTINGS:
        raise ValueError(f"no such setting: {setting}")
    memberships = Membership._meta.db_table
    blocks = Block._meta.db_table
    conditions = ["s.visible_to_members", "v.user_id <> s.user_id"]
    params: list = []
    for column, users in (("s.user_id", seen), ("v.user_id", viewers)):
        if users is not None:
            condition, more = _users_condition(column, users)
            conditions.append(condition)
            params += more
    if setting is not None:
        conditions.append(
            f"NOT EXISTS (SELECT 1 FROM {UserSettings._meta.db_table} r"
            f" WHERE r.user_id = s.user_id AND NOT r.{setting})"
        )
    # Both ways, each on its own index: (blocker, blocked) and (blocked, blocker).
    conditions.append(
        f"NOT EXISTS (SELECT 1 FROM {blocks} b"
        " WHERE b.blocker_id = s.user_id AND b.blocked_id = v.user_id)"
    )
    conditions.append(
        f"NOT EXISTS (SELECT 1 FROM {blocks} b"
        " WHERE b.blocker_id = v.user_id AND b.blocked_id = s.user_id)"
    )
    joins = f"{memberships} s JOIN {memberships} v ON v.conversation_id = s.conversation_id"
    if hidden:
        hidden_rows, hidden_params = table("h", {"c": "bigint", "u": "bigint"}, list(hidden))
        sql = (
            "SELECT s.user_id, v.user_id, MIN(CASE WHEN h.c IS NULL THEN 0 ELSE 1 END)"
            f" FROM {joins} LEFT JOIN {hidden_rows}"
            " ON h.c = s.conversation_id AND h.u = s.user_id"
            f" WHERE {' AND '.join(conditions)} GROUP BY s.user_id, v.user_id"
        )
        params = hidden_params + params
    else:
        where = " AND ".join(conditions)
        sql = f"SELECT DISTINCT s.user_id, v.user_id, 0 FROM {joins} WHERE {where}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            (user_id, viewer_id, bool(hidden_only))
            for user_id, viewer_id, hidden_only in cursor.fetchall()
        ]


def watchers(
    *,
    user_ids: Iterable[int],
    setting: str | None,
    among: Users | None = None,
    hidden: Hidden = (),
) -> dict[int, set[int]]:
    """Return, for each user, who may see their presence, typing or reading (per `setting`).

    `among` narrows the viewers (a query of user ids stays inside the one statement);
    `hidden` counts some memberships as not shown yet, to ask who saw the users before those
    memberships were shown.
    """
    ids = set(user_ids)
    seen_by: dict[int, set[int]] = {user_id: set() for user_id in ids}
    if not ids:
        return seen_by
    if len(ids) == 1 and among is not None and not isinstance(among, WrittenQuery):
        # No one watches themselves: without them the statement need not walk the one
        # user's own memberships (2,000 for a heavy user) to find the viewers.
        among = set(among) - ids
    for user_id, viewer_id, hidden_only in _sight(setting, seen=ids, viewers=among, hidden=hidden):
        if not hidden_only:
            seen_by[user_id].add(viewer_id)
    return seen_by


def watchers_gained(
    *, user_ids: Iterable[int], setting: str | None, shown: Hidden
) -> dict[int, tuple[set[int], set[int]]]:
    """Return, for each user, who saw them before the memberships `shown` were shown and
    who sees them now: watchers(hidden=shown) and watchers() in one statement.
    """
    ids = set(user_ids)
    seen: dict[int, tuple[set[int], set[int]]] = {user_id: (set(), set()) for user_id in ids}
    if not ids:
        return seen
    for user_id, viewer_id, hidden_only in _sight(setting, seen=ids, hidden=shown or ()):
        before, after = seen[user_id]
        after.add(viewer_id)
        if not hidden_only:
            before.add(viewer_id)
    return seen


def seen_by(*, viewer_id: int, setting: str | None, among: Users | None = None) -> set[int]:
    """Return whose presence, typing or reading (per `setting`) the viewer may see."""
    return seen_by_each(viewer_ids=[viewer_id], setting=setting, among=among)[viewer_id]


def seen_by_each(
    *, viewer_ids: Iterable[int], setting: str | None, among: Users | None = None
) -> dict[int, set[int]]:
    """Return, for each viewer, whose presence, typing or reading they may see.

    `among` narrows those seen (a query of user ids stays inside the one statement).
    """
    ids = set(viewer_ids)
    seen: dict[int, set[int]] = {viewer_id: set() for viewer_id in ids}
    if not ids:
        return seen
    for user_id, viewer_id, _ in _sight(setting, seen=among, viewers=ids):
        seen[viewer_id].add(user_id)
    return seen
