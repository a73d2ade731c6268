"""Bearer tokens: issue, resolve, list, revoke.

A token is named by its owner, expires CHAT_TOKEN_LIFETIME_DAYS after its issue, and a
person holds at most CHAT_MAX_TOKENS_PER_USER of them: one more revokes the least recently
used. Revoking a token closes the sockets opened with it at once (code 4401).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from messaging.domain.events import Event, close_event, publish_on_commit, token_group
from messaging.models import AuthToken
from messaging.sql_rows import columns, instance
from messaging.sql_values import one_of

# Write last_used_at at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=5)

TOKEN_NAME_MAX = AuthToken._meta.get_field("name").max_length

# The close code of a socket whose credentials ended (PROTOCOL.md).
CLOSE_CREDENTIALS_ENDED = 4401


def default_token_name(moment: datetime) -> str:
    """Name a token its owner did not name: "API token" and the day of its issue."""
    return f"API token {moment:%Y-%m-%d}"


def token_create(*, user, name: str = "") -> tuple[AuthToken, str]:
    """Create a bearer token for the user; return it with its secret (shown only once).

    The user's expired tokens go, and so do the least recently used ones beyond the cap.
    """
    now = timezone.now()
    key = secrets.token_urlsafe(32)
    with transaction.atomic():
        token = AuthToken.objects.create(
            user=user,
            key_hash=AuthToken.hash_key(key),
            prefix=key[:8],
            name=(name.strip() or default_token_name(now))[:TOKEN_NAME_MAX],
            expires_at=now + timedelta(days=settings.CHAT_TOKEN_LIFETIME_DAYS),
        )
        keep = max(settings.CHAT_MAX_TOKENS_PER_USER, 1) - 1
        beyond_cap = list(
            _live(AuthToken.objects.filter(user=user), now)
            .exclude(pk=token.pk)
            .order_by(F("used").desc(), "-pk")
            .values_list("pk", flat=True)[keep:]
        )
        _revoke(
            AuthToken.objects.filter(user=user).filter(
                Q(pk__in=beyond_cap) | Q(expires_at__lte=now)
            )
        )
    return token, key


def token_issue(*, user, name: str = "") -> str:
    """Create a bearer token for the user and return its secret (shown only once)."""
    _, key = token_create(user=user, name=name)
    return key


def token_for_key(key: str | None) -> AuthToken | None:
    """Return the token with this secret, with its user, if it is live and the user active.

    An expired token is revoked when it is presented.
    """
    return tokens_for_keys([key])[0]


def tokens_for_keys(keys: list[str | None]) -> list[AuthToken | None]:
    """Return, for each secret, its token with its user if live and the user active, or None.

    An expired token is revoked when it is presented. One read for all of them, one write
    of when they were last used (at most every LAST_USED_RESOLUTION per token).
    """
    hashes = {key: AuthToken.hash_key(key) for key in keys if key and len(key) <= 200}
    if not hashes:
        return [None] * len(keys)
    found = {token.key_hash: token for token in _tokens_with_users(sorted(set(hashes.values())))}
    now = timezone.now()
    expired = {
        token.pk
        for token in found.values()
        if token.expires_at is not None and token.expires_at <= now
    }
    if expired:
        _revoke(AuthToken.objects.filter(pk__in=expired))
    live = {key_hash: token for key_hash, token in found.items() if token.pk not in expired}
    stale = [
        token
        for token in live.values()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION
    ]
    if stale:
        AuthToken.objects.filter(pk__in=[token.pk for token in stale]).update(last_used_at=now)
        for token in stale:
            token.last_used_at = now
    return [live.get(hashes[key]) if key in hashes else None for key in keys]


def _tokens_with_users(key_hashes: list[str]) -> list[AuthToken]:
    """Read the tokens with these hashes whose users are active, each with its user."""
    # Written out: every bearer request and batch of handshakes asks it, and the ORM spent
    # more CPU building its join than the database spent answering it.
    user_model = get_user_model()
    quote = connection.ops.quote_name
    among, params = one_of("t.key_hash", key_hashes, cast="text")
    owner = AuthToken._meta.get_field("user")
    active = quote(user_model._meta.get_field("is_active").column)
    sql = f"""
        SELECT {columns(AuthToken, "t")}, {columns(user_model, "u")}
        FROM {quote(AuthToken._meta.db_table)} t
        JOIN {quote(user_model._meta.db_table)} u
            ON u.{quote(owner.target_field.column)} = t.{quote(owner.column)}
        WHERE {among} AND u.{active}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    width = len(AuthToken._meta.concrete_fields)
    tokens = []
    for row in rows:
        token = instance(AuthToken, row[:width])
        AuthToken.user.field.set_cached_value(token, instance(user_model, row[width:]))
        tokens.append(token)
    return tokens


def user_for_token(key: str | None):
    """Return the active user a live token belongs to, or None."""
    token = token_for_key(key)
    return token.user if token is not None else None


def bearer_key(header_value: str) -> str | None:
    """Extract the token from an `Authorization: Bearer <token>` value, or None."""
    scheme, _, key = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def tokens_of(*, user) -> list[AuthToken]:
    """Return the user's tokens that still work, newest first."""
    return list(
        _live(AuthToken.objects.filter(user=user), timezone.now()).order_by("-created_at", "-pk")
    )


def token_revoke(*, user, token_id: int) -> bool:
    """Revoke one of the user's tokens and close its sockets; False if they hold no such token."""
    return _revoke(AuthToken.objects.filter(user=user, pk=token_id)) > 0


def tokens_revoke(*, user) -> int:
    """Revoke all of a user's tokens and close their sockets; return how many there were."""
    return _revoke(AuthToken.objects.filter(user=user))


def _live(tokens: QuerySet[AuthToken], now: datetime) -> QuerySet[AuthToken]:
    # Tokens issued before expiry existed and not yet migrated have none: they still work.
    return tokens.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).annotate(
        used=Coalesce("last_used_at", "created_at")
    )


def _revoke(tokens: QuerySet[AuthToken]) -> int:
    """Delete the tokens; once that commits, close every socket opened with one of them."""
    with transaction.atomic():
        ids = list(tokens.select_for_update().values_list("pk", flat=True))
        if not ids:
            return 0
        AuthToken.objects.filter(pk__in=ids).delete()
        publish_on_commit(_close_events(ids))
    return len(ids)


def _close_events(token_ids: Iterable[int]) -> list[Event]:
    return [close_event(token_group(token_id), CLOSE_CREDENTIALS_ENDED) for token_id in token_ids]
