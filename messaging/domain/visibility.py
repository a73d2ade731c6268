"""Who may see whom: presence, typing and read receipts (PROTOCOL.md, Privacy).

The one rule: a viewer may see a user's presence, typing and reading when the user's
settings allow it (`show_presence` for presence, `send_read_receipts` for reading; typing
has no setting of its own), neither of the two blocks the other, and they share a
conversation in which the user has shown themselves (wrote in it or created it:
Membership.visible_to_members). A stranger who opens a conversation with someone, or puts
them in a group, learns nothing of them until they answer there.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from django.db.models import Exists, OuterRef, Q, QuerySet

from messaging.models import Block, Membership, UserSettings
from messaging.sql_values import is_one_of

# What is seen, named by the setting that allows it (None: no setting, only the rule).
PRESENCE = "show_presence"
RECEIPTS = "send_read_receipts"
TYPING = None

# (conversation id, user id) of memberships to count as not shown (see watchers).
Hidden = Collection[tuple[int, int]]


def _shown_memberships(setting: str | None, hidden: Hidden = ()) -> QuerySet[Membership]:
    """Return the memberships through which the members are seen, as far as `setting` lets."""
    memberships = Membership.objects.filter(visible_to_members=True)
    if setting is not None:
        refused = UserSettings.objects.filter(user_id=OuterRef("user_id"), **{setting: False})
        memberships = memberships.exclude(Exists(refused))
    if hidden:
        not_these = Q()
        for conversation_id, user_id in hidden:
            not_these |= Q(conversation_id=conversation_id, user_id=user_id)
        memberships = memberships.exclude(not_these)
    return memberships


def _blocked_pairs(user_ids: Iterable[int]) -> set[tuple[int, int]]:
    """Return (a, b) for every block between one of these users and anyone, both ways."""
    ids = list(user_ids)
    either = Q(is_one_of(Block, "blocker_id", ids)) | Q(is_one_of(Block, "blocked_id", ids))
    rows = Block.objects.filter(either).values_list("blocker_id", "blocked_id")
    return {pair for blocker, blocked in rows for pair in ((blocker, blocked), (blocked, blocker))}


def watchers(
    *,
    user_ids: Iterable[int],
    setting: str | None,
    among: Iterable[int] | QuerySet | None = None,
    hidden: Hidden = (),
) -> dict[int, set[int]]:
    """Return, for each user, who may see their presence, typing or reading (per `setting`).

    `among` narrows the viewers (a QuerySet of user ids stays inside the one query);
    `hidden` counts some memberships as not shown yet, to ask who saw the users before those
    memberships were shown.
    """
    ids = set(user_ids)
    seen_by: dict[int, set[int]] = {user_id: set() for user_id in ids}
    if not ids:
        return seen_by
    shown = list(
        _shown_memberships(setting, hidden)
        .filter(is_one_of(Membership, "user_id", list(ids)))
        .values_list("conversation_id", "user_id")
    )
    if not shown:
        return seen_by
    shown_in: dict[int, set[int]] = {}
    for conversation_id, user_id in shown:
        shown_in.setdefault(conversation_id, set()).add(user_id)
    viewers = Membership.objects.filter(is_one_of(Membership, "conversation_id", list(shown_in)))
    if isinstance(among, QuerySet):
        viewers = viewers.filter(user_id__in=among)
    elif among is not None:
        viewers = viewers.filter(is_one_of(Membership, "user_id", list(set(among))))
    blocked = _blocked_pairs(ids)
    for conversation_id, viewer_id in viewers.values_list("conversation_id", "user_id"):
        for user_id in shown_in[conversation_id]:
            if viewer_id != user_id and (user_id, viewer_id) not in blocked:
                seen_by[user_id].add(viewer_id)
    return seen_by


def watchers_gained(
    *, user_ids: Iterable[int], setting: str | None, shown: Hidden
) -> dict[int, tuple[set[int], set[int]]]:
    """Return, for each user, who saw them before the memberships `shown` were shown and
    who sees them now: watchers(hidden=shown) and watchers() in one pass of three queries.
    """
    ids = set(user_ids)
    just_shown = set(shown)
    seen: dict[int, tuple[set[int], set[int]]] = {user_id: (set(), set()) for user_id in ids}
    rows = list(
        _shown_memberships(setting)
        .filter(is_one_of(Membership, "user_id", list(ids)))
        .values_list("conversation_id", "user_id")
    )
    if not rows:
        return seen
    shown_in: dict[int, list[tuple[int, bool]]] = {}
    for conversation_id, user_id in rows:
        is_new = (conversation_id, user_id) in just_shown
        shown_in.setdefault(conversation_id, []).append((user_id, is_new))
    blocked = _blocked_pairs(ids)
    viewers = Membership.objects.filter(is_one_of(Membership, "conversation_id", list(shown_in)))
    for conversation_id, viewer_id in viewers.values_list("conversation_id", "user_id"):
        for user_id, is_new in shown_in[conversation_id]:
            if viewer_id != user_id and (user_id, viewer_id) not in blocked:
                before, after = seen[user_id]
                after.add(viewer_id)
                if not is_new:
                    before.add(viewer_id)
    return seen


def seen_by(
    *, viewer_id: int, setting: str | None, among: Iterable[int] | None = None
) -> set[int]:
    """Return whose presence, typing or reading (per `setting`) the viewer may see."""
    return seen_by_each(viewer_ids=[viewer_id], setting=setting, among=among)[viewer_id]


def seen_by_each(
    *, viewer_ids: Iterable[int], setting: str | None, among: Iterable[int] | None = None
) -> dict[int, set[int]]:
    """Return, for each viewer, whose presence, typing or reading they may see.

    `among` narrows those seen (a QuerySet of user ids stays inside the one query).
    """
    ids = set(viewer_ids)
    seen: dict[int, set[int]] = {viewer_id: set() for viewer_id in ids}
    if not ids:
        return seen
    conversations = Membership.objects.filter(user_id__in=ids).values("conversation_id")
    shown = _shown_memberships(setting).filter(conversation_id__in=conversations)
    if among is not None:
        shown = shown.filter(user_id__in=among if isinstance(among, QuerySet) else set(among))
    if len(ids) == 1:
        # One viewer is in every conversation asked: no need to ask who is where.
        (viewer_id,) = ids
        shown_ids = shown.exclude(user_id=viewer_id).values_list("user_id", flat=True)
        rows = ((viewer_id, user_id) for user_id in shown_ids.distinct())
    else:
        viewers_in: dict[int, list[int]] = {}
        for conversation_id, viewer_id in conversations.values_list("conversation_id", "user_id"):
            viewers_in.setdefault(conversation_id, []).append(viewer_id)
        rows = (
            (viewer_id, user_id)
            for conversation_id, user_id in shown.values_list("conversation_id", "user_id")
            for viewer_id in viewers_in.get(conversation_id, ())
        )
    pairs = {(viewer_id, user_id) for viewer_id, user_id in rows if viewer_id != user_id}
    if not pairs:
        return seen
    blocked = _blocked_pairs(ids)
    for viewer_id, user_id in pairs - blocked:
        seen[viewer_id].add(user_id)
    return seen
