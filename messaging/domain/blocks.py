"""Blocks between users: make and lift them, and ask who is cut off from whom."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q

from messaging.domain import presence
from messaging.models import Block
from messaging.protocol import ChatError, ErrorCode

User = get_user_model()


def blocked_between(first_id: int, second_id: int) -> bool:
    """Tell whether either of two users blocks the other."""
    return Block.objects.filter(
        Q(blocker_id=first_id, blocked_id=second_id) | Q(blocker_id=second_id, blocked_id=first_id)
    ).exists()


def cut_off_ids(user_id: int, among: Iterable[int] | None = None) -> set[int]:
    """Return the users who block this one or whom this one blocks (optionally among some)."""
    blocks = Block.objects.filter(Q(blocker_id=user_id) | Q(blocked_id=user_id))
    if among is not None:
        among = set(among)
        blocks = blocks.filter(Q(blocker_id__in=among) | Q(blocked_id__in=among))
    ids = set()
    for blocker_id, blocked_id in blocks.values_list("blocker_id", "blocked_id"):
        ids.add(blocked_id if blocker_id == user_id else blocker_id)
    return ids


def block_create(*, blocker, username: str):
    """Block a user by username; blocking twice is the same as once. Return the user."""
    blocked = User.objects.filter(username=username).first()
    if blocked is None:
        raise ChatError(ErrorCode.NOT_FOUND, "no such user")
    if blocked.pk == blocker.pk:
        raise ChatError(ErrorCode.BAD_FRAME, "you cannot block yourself")
    # Each stops seeing the other online at once (PROTOCOL.md, Details: Blocks).
    with transaction.atomic(), presence.announcing_sight_changes([blocker.pk, blocked.pk]):
        try:
            with transaction.atomic():
                Block.objects.get_or_create(blocker=blocker, blocked=blocked)
        except IntegrityError:
            pass  # Made by a concurrent request.
    return blocked


def block_remove(*, blocker, username: str) -> None:
    """Lift a block; raise `not_found` if there was none."""
    blocked = User.objects.filter(username=username).first()
    if blocked is None:
        raise ChatError(ErrorCode.NOT_FOUND, "you do not block that user")
    # Whoever may see the other again is told at once that they are online.
    with transaction.atomic(), presence.announcing_sight_changes([blocker.pk, blocked.pk]):
        deleted, _ = Block.objects.filter(blocker=blocker, blocked=blocked).delete()
    if not deleted:
        raise ChatError(ErrorCode.NOT_FOUND, "you do not block that user")


def blocks_of(*, user) -> list:
    """List the users someone blocks, by username."""
    return list(User.objects.filter(blocks_received__blocker=user).order_by("username"))
