"""Which open sockets' logins have ended: the check behind revocation that cannot be lost.

Logout, a password change, deactivation and revoking a token close the affected sockets at
once with one `chat.close` through the channel layer; that event can be dropped (a full
channel, a Redis blip) and deleting a user sends none. So every heartbeat also asks the
database, for all of the process's sockets in a few queries, whether the login each one
was opened with still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from messaging.models import AuthToken

User = get_user_model()

DATABASE_SESSIONS = "django.contrib.sessions.backends.db"


@dataclass(frozen=True)
class SocketLogin:
    """How one open socket authenticated."""

    channel_name: str
    user_id: int
    token_id: int | None = None
    session_key: str | None = None


def logins_ended(*, logins: list[SocketLogin]) -> list[str]:
    """Return the channel names of the sockets whose user, token or session is no longer valid."""
    if not logins:
        return []
    active = {
        user.pk: user
        for user in User.objects.filter(pk__in={login.user_id for login in logins}, is_active=True)
    }
    token_ids = {login.token_id for login in logins if login.token_id is not None}
    live_tokens = set(
        AuthToken.objects.filter(pk__in=token_ids)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .values_list("pk", flat=True)
    )
    session_owners = _session_owners(
        {login.session_key for login in logins if login.session_key is not None}
    )
    ended = []
    for login in logins:
        user = active.get(login.user_id)
        if user is None:
            ended.append(login.channel_name)
        elif login.token_id is not None and login.token_id not in live_tokens:
            ended.append(login.channel_name)
        elif login.session_key is not None and not _session_holds(
            session_owners.get(login.session_key), user
        ):
            ended.append(login.channel_name)
    return ended


def _session_owners(keys: set[str]) -> dict[str, dict]:
    """Return the decoded data of the sessions that still exist, by key."""
    if not keys:
        return {}
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if settings.SESSION_ENGINE == DATABASE_SESSIONS:
        from django.contrib.sessions.models import Session

        rows = Session.objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
        return {row.session_key: store_class().decode(row.session_data) for row in rows}
    owners = {}
    for key in keys:
        data = store_class(session_key=key).load()
        if data:
            owners[key] = data
    return owners


def _session_holds(data: dict | None, user) -> bool:
    # Django's own check on each request: the session names the user and carries the hash
    # of their current password (a password change ends every other session).
    if not data or str(data.get(SESSION_KEY)) != str(user.pk):
        return False
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash())
