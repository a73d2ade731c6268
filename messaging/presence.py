"""Who is online: one row per open socket, kept alive by heartbeats.

A process that dies stops refreshing its sockets' rows; any other process sweeps them
once they are older than CHAT_PRESENCE_TTL and announces those people offline.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from messaging import fanout
from messaging.blocks import cut_off_ids
from messaging.models import SocketPresence
from messaging.protocol import user_data
from messaging.selectors import peer_ids

User = get_user_model()


def _live_since():
    return timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL)


def _is_online(user_id: int) -> bool:
    return SocketPresence.objects.filter(user_id=user_id, heartbeat_at__gte=_live_since()).exists()


def _visible_peer_ids(user_id: int) -> set[int]:
    """Return who shares a conversation with the user, less anyone on either side of a block."""
    return peer_ids(user_id=user_id) - cut_off_ids(user_id)


def _announce(user, online: bool) -> None:
    frame = {"type": "presence", "user": user_data(user), "online": online}
    fanout.publish_on_commit(
        fanout.frame_event(fanout.user_group(peer_id), frame)
        for peer_id in _visible_peer_ids(user.pk)
    )


def open_socket_count(*, user) -> int:
    """Count the user's live sockets in every process."""
    return SocketPresence.objects.filter(user=user, heartbeat_at__gte=_live_since()).count()


def _user_lock(user_id: int) -> None:
    # One user's sockets opening and closing in several processes at once must each see
    # the others' rows, or the first online or the last offline goes unannounced.
    list(User.objects.select_for_update().filter(pk=user_id).values_list("pk", flat=True))


def socket_opened(*, user, channel_name: str) -> None:
    """Record an open socket; announce the user online if it is their first anywhere."""
    with transaction.atomic():
        _user_lock(user.pk)
        was_online = _is_online(user.pk)
        SocketPresence.objects.update_or_create(
            channel_name=channel_name,
            defaults={"user": user, "heartbeat_at": timezone.now()},
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
    """Remove sockets whose process stopped answering; announce who went offline."""
    stale = list(
        SocketPresence.objects.filter(heartbeat_at__lt=_live_since()).values_list(
            "channel_name", "user_id"
        )
    )
    if not stale:
        return 0
    with transaction.atomic():
        SocketPresence.objects.filter(
            channel_name__in=[name for name, _ in stale], heartbeat_at__lt=_live_since()
        ).delete()
        for user in User.objects.filter(pk__in={user_id for _, user_id in stale}):
            if not _is_online(user.pk):
                _announce(user, False)
    return len(stale)


def online_peers(*, user) -> list:
    """List the people who share a conversation with the user and have a socket open."""
    online_ids = (
        SocketPresence.objects.filter(
            user_id__in=_visible_peer_ids(user.pk), heartbeat_at__gte=_live_since()
        )
        .values_list("user_id", flat=True)
        .distinct()
    )
    return [user_data(peer) for peer in User.objects.filter(pk__in=online_ids).order_by("pk")]


def sockets_heartbeat(*, sockets: dict[str, int]) -> None:
    """Refresh this process's sockets in one write; re-record any a sweep removed."""
    names = list(sockets)
    refreshed = SocketPresence.objects.filter(channel_name__in=names).update(
        heartbeat_at=timezone.now()
    )
    if refreshed == len(names):
        return
    known = set(
        SocketPresence.objects.filter(channel_name__in=names).values_list(
            "channel_name", flat=True
        )
    )
    for user in User.objects.filter(pk__in={sockets[name] for name in names if name not in known}):
        for name in names:
            if name not in known and sockets[name] == user.pk:
                socket_opened(user=user, channel_name=name)
