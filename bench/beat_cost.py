"""Measure what a heartbeat's check of ended logins costs a process with many sockets.

Calls messaging.domain.logins.logins_ended, on this thread alone, for the sockets of up to
10,000 users as if each had one socket open by bearer token, then by session cookie (the
first beat decodes every session; the next ones only what changed). It runs against the
benchmark's database as a `make bench` with the `reconnect` phase leaves it (10,000 users
with tokens). Run from the repository root:

    DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat_bench \\
        .venv/bin/python bench/beat_cost.py

It adds a session for each of those users (the next `make bench` makes the database afresh).
"""

import os
import statistics
import sys
import time

# The product checkout to use is the working directory.
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

import django

django.setup()

from django.contrib.auth import (  # noqa: E402
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.db.models import Q  # noqa: E402
from django.utils import timezone  # noqa: E402

from messaging.domain.logins import SocketLogin, logins_ended  # noqa: E402
from messaging.models import AuthToken  # noqa: E402

SOCKETS = 10_000
BEATS = 5


def sessions_of(users: list) -> dict[int, str]:
    """Return a live session key for each user, making the ones missing."""
    keys: dict[int, str] = {}
    store = SessionStore()
    for session in Session.objects.all():
        data = store.decode(session.session_data)
        if data.get(SESSION_KEY):
            keys[int(data[SESSION_KEY])] = session.session_key
    for user in users:
        if user.pk not in keys:
            session = SessionStore()
            session[SESSION_KEY] = str(user.pk)
            session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            session[HASH_SESSION_KEY] = user.get_session_auth_hash()
            session.create()
            keys[user.pk] = session.session_key
    return keys


def timed(logins: list[SocketLogin]) -> list[float]:
    """Return this thread's CPU in ms for each of BEATS checks of these logins."""
    spent = []
    for _ in range(BEATS):
        started = time.thread_time()
        ended = logins_ended(logins=logins)
        spent.append((time.thread_time() - started) * 1000)
        if ended:
            raise SystemExit(f"{len(ended)} logins found ended: the database is not as expected")
    return spent


def main() -> None:
    live = AuthToken.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    tokens = dict(live.filter(user__is_active=True).values_list("user_id", "pk")[:SOCKETS])
    users = list(get_user_model().objects.filter(pk__in=tokens))
    if not users:
        raise SystemExit("no active users with live tokens: run `make bench` first")
    sessions = sessions_of(users)
    by_token = [SocketLogin(f"t{u.pk}", u.pk, token_id=tokens[u.pk]) for u in users]
    by_session = [SocketLogin(f"s{u.pk}", u.pk, session_key=sessions[u.pk]) for u in users]
    for kind, logins in (("token", by_token), ("session", by_session)):
        first, *later = timed(logins)
        print(
            f"{len(logins)} sockets by {kind}: first beat {first:.0f} ms of CPU, "
            f"later beats median {statistics.median(later):.0f} ms"
        )


if __name__ == "__main__":
    main()
