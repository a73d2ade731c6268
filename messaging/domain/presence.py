"""Who is online: one row per open socket, kept alive by its process's heartbeat.

Each process (socket registry) refreshes one row of its own, whatever the number of its
sockets. A process that dies stops refreshing it; once it is older than CHAT_PRESENCE_TTL
any other process sweeps that process's sockets and announces those people offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.utils import timezone

from messaging.domain import visibility
from messaging.domain.events import (
    Event,
    frame_event,
    publish_found_on_commit,
    publish_on_commit,
    user_group,
)
from messaging.models import PresenceProcess, SocketPresence
from messaging.protocol import user_data, user_row_data
from messaging.sql_values import WrittenQuery, is_one_of, one_of, table

User = get_user_model()


def _live_since():
    return timezone.now() - timedelta(seconds=settings.CHAT_PRESENCE_TTL)


def _live_sockets():
    live = PresenceProcess.objects.filter(heartbeat_at__gte=_live_since()).values("id")
    return SocketPresence.objects.filter(process__in=live)


# Written out below: every handshake asks these, and the ORM took longer to build them
# than the database to answer (a handshake's CPU is what a reconnect storm is made of).
_SOCKETS = SocketPresence._meta.db_table
_PROCESSES = PresenceProcess._meta.db_table


def _timestamp(moment) -> Any:
    """Give a time as a parameter of a written-out statement on this database."""
    return connection.ops.adapt_datetimefield_value(moment)


def _live_processes() -> WrittenQuery:
    return WrittenQuery(
        f"SELECT pp.id FROM {_PROCESSES} pp WHERE pp.heartbeat_at >= %s",
        [_timestamp(_live_since())],
    )


def _live_user_ids() -> WrittenQuery:
    """Write out a query of the ids of users with a live socket (some more than once)."""
    processes = _live_processes()
    return WrittenQuery(
        f"SELECT sp.user_id FROM {_SOCKETS} sp WHERE sp.process IN ({processes.sql})",
        processes.params,
    )


def _online_ids(user_ids: Iterable[int]) -> set[int]:
    return set(_live_socket_counts(user_ids))


def _presence_watchers(user_ids: Iterable[int], **kwargs) -> dict[int, set[int]]:
    return visibility.watchers(user_ids=user_ids, setting=visibility.PRESENCE, **kwargs)


def _announce(users: list, online: bool) -> None:
    """Tell whoever may see these users, and is online once this commits, that they came
    online (or went offline)."""
    shown = sorted((user.pk, user.username) for user in users)
    publish_found_on_commit(lambda: _presence_events(shown, online))


def _presence_events(users: list[tuple[int, str]], online: bool) -> list[Event]:
    # Only watchers online after the commit: someone with thousands of conversations has
    # thousands of watchers, few of them online, and a frame for the others reaches no one.
    # A watcher whose socket commits later reads this user's presence in its own `ready`.
    watchers = _presence_watchers([user_id for user_id, _ in users], among=_live_user_ids())
    events = []
    for user_id, username in users:
        frame = {"type": "presence", "user": user_row_data(user_id, username), "online": online}
        peers = sorted(watchers[user_id])
        events += [frame_event(user_group(peer_id), frame) for peer_id in peers]
    return events


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
    # Only someone online is announced: most who write are, but asking first spares the
    # rest (a script, a bot's token) every other query.
    online = dict(
        _live_sockets()
        .filter(is_one_of(SocketPresence, "user_id", list({user_id for _, user_id in shown})))
        .values_list("user_id", "user__username")
        .distinct()
    )
    if not online:
        return
    sight = visibility.watchers_gained(user_ids=online, setting=visibility.PRESENCE, shown=shown)
    events = []
    for user_id in sorted(online):
        before, after = sight[user_id]
        frame = {"type": "presence", "user": {"id": user_id, "username": online[user_id]}}
        events += [
            frame_event(user_group(viewer_id), {**frame, "online": True})
            for viewer_id in sorted(after - before)
        ]
    publish_on_commit(events)


def open_socket_count(*, user) -> int:
    """Count the user's live sockets in every process."""
    return _live_sockets().filter(user=user).count()


def _users_lock(user_ids: Iterable[int]) -> None:
    # One user's sockets opening and closing in several processes at once must each see
    # the others' rows, or the first online or the last offline goes unannounced. Taken in
    # the order of the ids, as every transaction that locks users does. (SQLite has no row
    # locks: its writers take the whole database, one at a time.)
    users, params = one_of("u.id", sorted(set(user_ids)))
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT u.id FROM {User._meta.db_table} u WHERE {users} ORDER BY u.id{lock}", params
        )
        cursor.fetchall()


def process_beat(process: str) -> None:
    """Record that a process is alive, and with it every socket it holds."""
    # One upsert: a handshake beats too, and update_or_create would cost it five statements.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_PROCESSES} (id, heartbeat_at) VALUES (%s, %s)"
            " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
            [process, _timestamp(timezone.now())],
        )


# Rows without a socket that one heartbeat removes (sockets_heartbeat).
GHOSTS_PER_BEAT = 200
# Sockets without a row recorded again in one transaction: it holds this many users' locks.
REOPENED_AT_ONCE = 200


class TooManySockets(Exception):
    """The user has as many sockets open as they may."""


def socket_opened(
    *, user, channel_name: str, process: str, max_sockets: int | None = None
) -> None:
    """Record an open socket; announce the user online if it is their first anywhere.

    With `max_sockets`, raise TooManySockets instead when the user has that many open
    already (see sockets_opened).
    """
    if sockets_opened(openings=[(user, channel_name)], process=process, max_sockets=max_sockets):
        raise TooManySockets(user.pk)


def sockets_opened(
    *, openings: list[tuple[Any, str]], process: str, max_sockets: int | None = None
) -> set[str]:
    """Record open sockets (user, channel name); announce online who had none anywhere.

    With `max_sockets`, a socket whose user has that many open already, counting those
    before it in `openings`, is not recorded: its channel name is in the set returned.
    Counted under the users' locks, so sockets opening at once in several processes cannot
    pass the cap together.
    """
    refused: set[str] = set()
    with transaction.atomic():
        user_ids = {user.pk for user, _ in openings}
        _users_lock(user_ids)
        # Counted after the lock, in a statement of its own: a count in the locking
        # statement would read the rows as they were before the lock was waited for.
        live = _live_socket_counts(user_ids)
        counts = dict(live)
        rows: list[tuple[str, int]] = []
        users = {}
        for user, channel_name in openings:
            if max_sockets is not None and counts.get(user.pk, 0) >= max_sockets:
                refused.add(channel_name)
                continue
            counts[user.pk] = counts.get(user.pk, 0) + 1
            rows.append((channel_name, user.pk))
            users[user.pk] = user
        if not rows:
            return refused
        process_beat(process)
        _record_sockets(rows, process)
        first_online = [user for user_id, user in users.items() if not live.get(user_id)]
        if first_online:
            _announce(first_online, True)
    return refused


def _live_socket_counts(user_ids: Iterable[int]) -> dict[int, int]:
    """Count each of these users' live sockets in every process (users with none left out)."""
    users, params = one_of("sp.user_id", sorted(set(user_ids)))
    processes = _live_processes()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT sp.user_id, COUNT(*) FROM {_SOCKETS} sp"
            f" WHERE {users} AND sp.process IN ({processes.sql}) GROUP BY sp.user_id",
            params + processes.params,
        )
        return dict(cursor.fetchall())


def _record_sockets(rows: list[tuple[str, int]], process: str) -> None:
    """Write the rows (channel name, user id) of sockets this process holds."""
    opened, params = table("o", {"channel_name": "text", "user_id": "bigint"}, rows)
    with connection.cursor() as cursor:
        # "WHERE true": SQLite would read ON CONFLICT as the join's ON without it.
        cursor.execute(
            f"INSERT INTO {_SOCKETS} (channel_name, user_id, process, connected_at)"
            f" SELECT o.channel_name, o.user_id, %s, %s FROM {opened} WHERE true"
            " ON CONFLICT (channel_name) DO UPDATE"
            " SET user_id = excluded.user_id, process = excluded.process",
            [process, _timestamp(timezone.now()), *params],
        )


def socket_closed(*, user, channel_name: str) -> None:
    """Forget a socket; announce the user offline if it was their last anywhere."""
    sockets_closed(closings=[(user, channel_name)])


def sockets_closed(*, closings: list[tuple[Any, str]]) -> None:
    """Forget sockets (user, channel name); announce offline whoever has none left anywhere."""
    users = {user.pk: user for user, _ in closings}
    names = {channel_name for _, channel_name in closings}
    with transaction.atomic():
        _users_lock(users)
        had = _forget_sockets(names)
        if not had:
            return
        still_online = _online_ids(had)
        gone = [users[user_id] for user_id in sorted(had - still_online) if user_id in users]
        if gone:
            _announce(gone, False)


def _forget_sockets(channel_names: Iterable[str]) -> set[int]:
    """Remove the rows of these sockets; return the ids of the users they belonged to."""
    sockets, params = one_of("sp.channel_name", sorted(set(channel_names)), cast="text")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT sp.user_id FROM {_SOCKETS} sp WHERE {sockets}", params)
        owners = {user_id for (user_id,) in cursor.fetchall()}
        if owners:
            cursor.execute(f"DELETE FROM {_SOCKETS} AS sp WHERE {sockets}", params)
    return owners


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
        # Announced together: a dead process held thousands of sockets, and one by one
        # their announcements held this transaction (and the database thread) for minutes.
        owners = {user_id for _, user_id in stale}
        gone = sorted(owners - _online_ids(owners))
        if gone:
            _announce(list(User.objects.filter(is_one_of(User, "id", gone)).order_by("pk")), False)
    return len(stale)


def online_peers(*, user) -> list:
    """List the people whose presence the user may see and who have a socket open."""
    return online_peers_of(user_ids=[user.pk])[user.pk]


def online_peers_of(*, user_ids: Iterable[int]) -> dict[int, list]:
    """For each user, list the people whose presence they may see and who are online."""
    seen = visibility.seen_by_each(
        viewer_ids=user_ids, setting=visibility.PRESENCE, among=_live_user_ids()
    )
    everyone = set().union(*seen.values())
    if not everyone:
        return {user_id: [] for user_id in seen}
    peers, params = one_of("u.id", sorted(everyone))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT u.id, u.username FROM {User._meta.db_table} u WHERE {peers}", params
        )
        names = dict(cursor.fetchall())
    return {
        user_id: [
            user_row_data(peer_id, names[peer_id]) for peer_id in sorted(ids) if peer_id in names
        ]
        for user_id, ids in seen.items()
    }


def sockets_heartbeat(*, process: str, sockets: dict[str, int]) -> None:
    """Keep a process's sockets alive in one write; make its rows match its sockets.

    A row of the process that no socket of it holds (its clean-up never ran) is removed;
    a socket whose row a sweep removed (the process stalled) is recorded again.
    """
    process_beat(process)
    rows = dict(
        SocketPresence.objects.filter(process=process).values_list("channel_name", "user_id")
    )
    # After a mass disconnect most rows without a socket are only waiting for their own
    # clean-up, queued behind this call: a few per beat keep it short, so that handshakes
    # are not held up behind thousands of them; a clean-up that never runs is caught later.
    ghosts = sorted(rows.keys() - sockets.keys())[:GHOSTS_PER_BEAT]
    closings = [
        (user, name)
        for user, names in _users_with({name: rows[name] for name in ghosts})
        for name in names
    ]
    if closings:
        sockets_closed(closings=closings)
    # A process whose rows were swept (it stalled, or the database was away for longer
    # than the presence TTL) records all its sockets again: as handshakes are, in batches.
    missing = sockets.keys() - rows.keys()
    openings = [
        (user, name)
        for user, names in _users_with({name: sockets[name] for name in missing})
        for name in names
    ]
    for start in range(0, len(openings), REOPENED_AT_ONCE):
        sockets_opened(openings=openings[start : start + REOPENED_AT_ONCE], process=process)


def _users_with(owners: dict[str, int]) -> Iterator[tuple[Any, list[str]]]:
    """Yield each user owning some of these channel names, with their names."""
    names_of: dict[int, list[str]] = {}
    for name, user_id in owners.items():
        names_of.setdefault(user_id, []).append(name)
    if names_of:
        for user in User.objects.filter(pk__in=names_of).order_by("pk"):
            yield user, names_of[user.pk]
