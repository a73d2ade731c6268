"""Bearer tokens: issue, resolve, revoke."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from messaging.models import AuthToken

# Write last_used_at at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def token_issue(*, user, name: str = "") -> str:
    """Create a bearer token for the user and return its secret (shown only once)."""
    _, key = AuthToken.issue(user=user, name=name)
    return key


def user_for_token(key: str):
    """Return the active user a token belongs to, or None."""
    if not key or len(key) > 200:
        return None
    token = (
        AuthToken.objects.select_related("user")
        .filter(key_hash=AuthToken.hash_key(key), user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        AuthToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def bearer_key(header_value: str) -> str | None:
    """Extract the token from an `Authorization: Bearer <token>` value, or None."""
    scheme, _, key = header_value.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def tokens_revoke(*, user) -> int:
    """Revoke all of a user's tokens; return how many there were."""
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted
