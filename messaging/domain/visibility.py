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
    rows = Block.objects.filter(Q(blocker_id__in=ids) | Q(blocked_id__in=ids)).values_list(
        "blocker_id", "blocked_id"
    )
    return {pair for blocker, blocked in rows for pair in ((blocker, blocked), (blocked, blocker))}


def watchers(
    *,
    user_ids: Iterable[int],
    setting: str | None,
    among: Iterable[int] | None = None,
    hidden: Hidden = (),
) -> dict[int, set[int]]:
    """Return, for each user, who may see their presence, typing or reading (per `setting`).

    `among` narrows the viewers; `hidden` counts some memberships as not shown yet, to ask
    who saw the users before those memberships were shown.
    """
    ids = set(user_ids)
    seen_by: dict[int, set[int]] = {user_id: set() for user_id in ids}
    if not ids:
        return seen_by
    shown = list(
        _shown_memberships(setting, hidden)
        .filter(user_id__in=ids)
        .values_list("conversation_id", "user_id")
    )
    if not shown:
        return seen_by
    shown_in: dict[int, set[int]] = {}
    for conversation_id, user_id in shown:
        shown_in.setdefault(conversation_id, set()).add(user_id)
    viewers = Membership.objects.filter(conversation_id__in=shown_in)
    if among is not None:
        viewers = viewers.filter(user_id__in=set(among))
    blocked = _blocked_pairs(ids)
    for conversation_id, viewer_id in viewers.values_list("conversation_id", "user_id"):
        for user_id in shown_in[conversation_id]:
            if viewer_id != user_id and (user_id, viewer_id) not in blocked:
                seen_by[user_id].add(viewer_id)
    return seen_by


def seen_by(
    *, viewer_id: int, setting: str | None, among: Iterable[int] | None = None
) -> set[int]:
    """Return whose presence, typing or reading (per `setting`) the viewer may see."""
    conversations = Membership.objects.filter(user_id=viewer_id).values("conversation_id")
    shown = (
        _shown_memberships(setting)
        .filter(conversation_id__in=conversations)
        .exclude(user_id=viewer_id)
    )
    if among is not None:
        shown = shown.filter(user_id__in=set(among))
    seen = set(shown.values_list("user_id", flat=True).distinct())
    if not seen:
        return seen
    blocked = _blocked_pairs([viewer_id])
    return {user_id for user_id in seen if (viewer_id, user_id) not in blocked}
