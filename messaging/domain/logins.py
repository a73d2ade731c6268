"""Which open sockets' logins have ended: the check behind revocation that cannot be lost.

Logout, a password change, deactivation and revoking a token close the affected sockets at
once with one `chat.close` through the channel layer; that event can be dropped (a full
channel, a Redis blip) and deleting a user sends none. So every heartbeat also asks the
database, for all of the process's sockets in a few queries, whether the login each one
was opened with still holds.

A process holds thousands of sockets and beats every few seconds, so the check reads plain
values (no model objects), lists ids as one array parameter (messaging/sql_values.py), and
decodes a session and hashes its user's password only when one of them changed since the
last beat: a session held for the same user, data and password holds still.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.models import Session
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from messaging.models import AuthToken
from messaging.sql_values import is_one_of

User = get_user_model()

DATABASE_SESSIONS = "django.contrib.sessions.backends.db"


@dataclass(frozen=True)
class SocketLogin:
    """How one open socket authenticated."""

    channel_name: str
    user_id: int
    token_id: int | None = None
    session_key: str | None = None


# The sessions found holding at the last beat: (key, user id) -> (session data, password).
# Whether a session logs a user in depends on these alone, so one whose data and password
# are the same holds still. Rebuilt at each beat from the sockets open then: no larger
# than them. Only with the database's sessions, whose data the check reads as it is stored.
_held_sessions: dict[tuple[str, int], tuple[str, str]] = {}


def logins_ended(*, logins: list[SocketLogin]) -> list[str]:
    """Return the channel names of the sockets whose user, token or session is no longer valid."""
    if not logins:
        return []
    # The password of every active user: a session's check needs it, and it is no dearer.
    passwords = dict(
        User.objects.filter(is_one_of(User, "id", list({login.user_id for login in logins})))
        .filter(is_active=True)
        .values_list("pk", "password")
    )
    token_ids = list({login.token_id for login in logins if login.token_id is not None})
    live_tokens = set(
        AuthToken.objects.filter(is_one_of(AuthToken, "id", token_ids))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .values_list("pk", flat=True)
        if token_ids
        else ()
    )
    holding = _sessions_holding(
        {
            (login.session_key, login.user_id)
            for login in logins
            if login.session_key is not None and login.user_id in passwords
        },
        passwords,
    )
    return [
        login.channel_name
        for login in logins
        if login.user_id not in passwords
        or (login.token_id is not None and login.token_id not in live_tokens)
        or (login.session_key is not None and (login.session_key, login.user_id) not in holding)
    ]


def _sessions_holding(
    logins: set[tuple[str, int]], passwords: dict[int, str]
) -> set[tuple[str, int]]:
    """Return the (session key, user id) pairs whose session still logs that user in."""
    if not logins:
        _held_sessions.clear()
        return set()
    keys = [key for key, _ in logins]
    if settings.SESSION_ENGINE != DATABASE_SESSIONS:
        store_class = import_module(settings.SESSION_ENGINE).SessionStore
        decoded = {key: store_class(session_key=key).load() for key in set(keys)}
        return {
            (key, user_id)
            for key, user_id in logins
            if _session_holds(decoded[key], user_id, passwords[user_id])
        }
    stored = dict(
        Session.objects.filter(is_one_of(Session, "session_key", keys, cast="text"))
        .filter(expire_date__gt=timezone.now())
        .values_list("session_key", "session_data")
    )
    decoder = import_module(DATABASE_SESSIONS).SessionStore()
    held: dict[tuple[str, int], tuple[str, str]] = {}
    for key, user_id in logins:
        if key not in stored:
            continue
        seen = (stored[key], passwords[user_id])
        if _held_sessions.get((key, user_id)) == seen or _session_holds(
            decoder.decode(stored[key]), user_id, passwords[user_id]
        ):
            held[key, user_id] = seen
    _held_sessions.clear()
    _held_sessions.update(held)
    return set(held)


def _session_holds(data: dict | None, user_id: int, password: str) -> bool:
    # Django's own check on each request: the session names the user and carries the hash
    # of their current password (a password change ends every other session).
    if not data or str(data.get(SESSION_KEY)) != str(user_id):
        return False
    current = User(pk=user_id, password=password).get_session_auth_hash()
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), current)
