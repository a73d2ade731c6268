"""What this process remembers of usernames and direct conversations, for later batches."""

from __future__ import annotations

from dataclasses import dataclass, field

from messaging.sending.requests import SendRequest
from messaging.singletons import per_process

_REMEMBERED = 100_000


@dataclass
class KnownIds:
    """What earlier batches and handshakes learnt, so that a batch looks up less.

    Every batch checks an entry against the members (and their usernames) it reads under
    lock; a stale one only makes that send go alone.
    """

    # username -> user id
    user_ids: dict[str, int] = field(default_factory=dict)
    # (sender id, username) -> their direct conversation
    direct_conversations: dict[tuple[int, str], int] = field(default_factory=dict)
    # direct conversation id -> its two members (who never change)
    direct_pairs: dict[int, frozenset[int]] = field(default_factory=dict)


known_ids = per_process(KnownIds)


def people_of(request: SendRequest) -> frozenset[int] | None:
    """Return whose change streams a send would stamp, if this process knows; else None.

    Known are sends to a username whose id a handshake or batch noted, and to a direct
    conversation a batch stored in before. A name that changed hands since makes the send
    go alone (see decisions.Locked.facts), to its new holder: the one case where the answer is
    wrong, and then only the order of that person's pushes may suffer, which `prev_seq`
    and `sync` heal.
    """
    if request.to is not None:
        other = known_ids().user_ids.get(request.to)
        return None if other is None else frozenset((request.sender.pk, other))
    pair = known_ids().direct_pairs.get(request.conversation_id)
    return pair if pair is not None and request.sender.pk in pair else None


def remember(cache: dict, key, value) -> None:
    """Note an entry in one of KnownIds' caches, emptied whole when full."""
    if len(cache) >= _REMEMBERED:
        cache.clear()
    cache[key] = value


def remember_direct(request: SendRequest, conversation_id: int) -> None:
    """Note the direct conversation a send to a username went to."""
    remember(known_ids().direct_conversations, (request.sender.pk, request.to), conversation_id)


def remember_user(user_id: int, username: str) -> None:
    """Note a username's id for later batches (each checks it under lock before use)."""
    remember(known_ids().user_ids, username, user_id)
