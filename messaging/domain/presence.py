"""Who is online: one row per open socket, kept alive by its process's heartbeat.

Each process (socket registry) refreshes one row of its own, whatever the number of its
sockets. A process that dies stops refreshing it; once it is older than CHAT_PRESENCE_TTL
any other process sweeps that process's sockets and announces those people offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils import timezone

from messaging.domain import visibility
from messaging.domain.events import frame_event, publish_on_commit, user_group
from messaging.models import PresenceProcess, SocketPresence
from messaging.protocol import user_data

User = get_user_model()


def _live_since():
    return timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL)


def _live_sockets():
    live = PresenceProcess.objects.filter(heartbeat_at__gte=_live_since()).values("id")
    return SocketPresence.objects.filter(process__in=live)


def _is_online(user_id: int) -> bool:
    return _live_sockets().filter(user_id=user_id).exists()


def _online_ids(user_ids: Iterable[int]) -> set[int]:
    return set(
        _live_sockets().filter(user_id__in=list(user_ids)).values_list("user_id", flat=True)
    )


def _presence_watchers(user_ids: Iterable[int], **kwargs) -> dict[int, set[int]]:
    return visibility.watchers(user_ids=user_ids, setting=visibility.PRESENCE, **kwargs)


def _announce(user, online: bool) -> None:
    frame = {"type": "presence", "user": user_data(user), "online": online}
    publish_on_commit(
        frame_event(user_group(peer_id), frame)
        for peer_id in sorted(_presence_watchers([user.pk])[user.pk])
    )


def _announce_sight_changes(before: dict[int, set[int]], after: dict[int, set[int]]) -> None:
    """Tell whoever gained sight of an online user that they are online, whoever lost it not."""
    changed = [user_id for user_id in after if after[user_id] != before.get(user_id, set())]
    online = _online_ids(changed) if changed else set()
    if not online:
        return
    events = []
    for user in User.objects.filter(pk__in=online).order_by("pk"):
        seen_before = before.get(user.pk, set())
        for viewer_id, is_online in [
            *((viewer_id, True) for viewer_id in sorted(after[user.pk] - seen_before)),
            *((viewer_id, False) for viewer_id in sorted(seen_before - after[user.pk])),
        ]:
            frame = {"type": "presence", "user": user_data(user), "online": is_online}
            events.append(frame_event(user_group(viewer_id), frame))
    publish_on_commit(events)


@contextmanager
def announcing_sight_changes(user_ids: Iterable[int]) -> Iterator[None]:
    """Around a change of who sees these users, tell those who gained or lost sight of them.

    Only users online now are announced: to those who can now see them, `online: true`; to
    those who no longer can, `online: false`, so that no one keeps showing them online.
    """
    ids = set(user_ids)
    before = _presence_watchers(ids)
    yield
    _announce_sight_changes(before, _presence_watchers(ids))


def announce_shown(memberships: Iterable[tuple[int, int]]) -> None:
    """Tell who can see these members online now that they showed themselves.

    `memberships` are (conversation id, user id) just marked visible_to_members.
    """
    shown = set(memberships)
    if not shown:
        return
    user_ids = {user_id for _, user_id in shown}
    before = _presence_watchers(user_ids, hidden=shown)
    _announce_sight_changes(before, _presence_watchers(user_ids))


def open_socket_count(*, user) -> int:
    """Count the user's live sockets in every process."""
    return _live_sockets().filter(user=user).count()


def _user_lock(user_id: int) -> None:
    # One user's sockets opening and closing in several processes at once must each see
    # the others' rows, or the first online or the last offline goes unannounced.
    list(User.objects.select_for_update().filter(pk=user_id).values_list("pk", flat=True))


def process_beat(process: str) -> None:
    """Record that a process is alive, and with it every socket it holds."""
    PresenceProcess.objects.update_or_create(id=process, defaults={"heartbeat_at": timezone.now()})


class TooManySockets(Exception):
    """The user has as many sockets open as they may."""


def socket_opened(
    *, user, channel_name: str, process: str, max_sockets: int | None = None
) -> None:
    """Record an open socket; announce the user online if it is their first anywhere.

    With `max_sockets`, raise TooManySockets instead when the user has that many open
    already: counted under the user's lock, so sockets opening at once in several
    processes cannot pass the cap together.
    """
    with transaction.atomic():
        _user_lock(user.pk)
        if max_sockets is not None and open_socket_count(user=user) >= max_sockets:
            raise TooManySockets(user.pk)
        was_online = _is_online(user.pk)
        process_beat(process)
        SocketPresence.objects.update_or_create(
            channel_name=channel_name, defaults={"user": user, "process": process}
        )
        if not was_online:
            _announce(user, True)


def socket_closed(*, user, channel_name: str) -> None:
    """Forget a socket; announce the user offline if it was their last anywhere."""
    with transaction.atomic():
        _user_lock(user.pk)
        deleted, _ = SocketPresence.objects.filter(channel_name=channel_name).delete()
        if deleted and not _is_online(user.pk):
            _announce(user, False)


def sweep_expired() -> int:
    """Remove the sockets of processes that stopped answering; announce who went offline."""
    dead = PresenceProcess.objects.filter(heartbeat_at__lt=_live_since()).values("id")
    known = PresenceProcess.objects.values("id")
    stale = list(
        SocketPresence.objects.filter(
            models.Q(process__in=dead) | ~models.Q(process__in=known)
        ).values_list("channel_name", "user_id")
    )
    with transaction.atomic():
        PresenceProcess.objects.filter(heartbeat_at__lt=_live_since()).delete()
        if not stale:
            return 0
        # A process that came back meanwhile keeps its sockets.
        SocketPresence.objects.filter(channel_name__in=[name for name, _ in stale]).exclude(
            process__in=PresenceProcess.objects.filter(heartbeat_at__gte=_live_since()).values(
                "id"
            )
        ).delete()
        for user in User.objects.filter(pk__in={user_id for _, user_id in stale}):
            if not _is_online(user.pk):
                _announce(user, False)
    return len(stale)


def online_peers(*, user) -> list:
    """List the people whose presence the user may see and who have a socket open."""
    seen = visibility.seen_by(viewer_id=user.pk, setting=visibility.PRESENCE)
    online_ids = (
        _live_sockets().filter(user_id__in=seen).values_list("user_id", flat=True).distinct()
    )
    return [user_data(peer) for peer in User.objects.filter(pk__in=online_ids).order_by("pk")]


def sockets_heartbeat(*, process: str, sockets: dict[str, int]) -> None:
    """Keep a process's sockets alive in one write; make its rows match its sockets.

    A row of the process that no socket of it holds (its clean-up never ran) is removed;
    a socket whose row a sweep removed (the process stalled) is recorded again.
    """
    process_beat(process)
    rows = dict(
        SocketPresence.objects.filter(process=process).values_list("channel_name", "user_id")
    )
    ghosts = rows.keys() - sockets.keys()
    if ghosts:
        for user in User.objects.filter(pk__in={rows[name] for name in ghosts}):
            for name in ghosts:
                if rows[name] == user.pk:
                    socket_closed(user=user, channel_name=name)
    missing = sockets.keys() - rows.keys()
    if missing:
        for user in User.objects.filter(pk__in={sockets[name] for name in missing}):
            for name in missing:
                if sockets[name] == user.pk:
                    socket_opened(user=user, channel_name=name, process=process)
