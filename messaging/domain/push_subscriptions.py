"""A person's Web Push subscriptions: keep one a browser gives, forget one it drops."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.db import IntegrityError, transaction

from messaging.domain.endpoints import endpoint_refusal
from messaging.models import PushSubscription

# Sizes fixed by RFC 8291: an uncompressed P-256 point, a 16-byte authentication secret.
P256DH_BYTES = 65
AUTH_BYTES = 16


class InvalidSubscription(ValueError):
    """The subscription was refused; `errors` names each field and says why."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(", ".join(sorted(errors)))
        self.errors = errors


def _base64url(value: object, size: int) -> bytes | None:
    if not isinstance(value, str) or not value or len(value) > 256:
        return None
    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == size else None


def _keys_errors(keys: object) -> dict[str, list[str]]:
    if not isinstance(keys, dict):
        return {"keys": ["Give the subscription's keys: p256dh and auth."]}
    errors = {}
    p256dh = _base64url(keys.get("p256dh"), P256DH_BYTES)
    if p256dh is None or p256dh[0] != 4:
        errors["keys.p256dh"] = ["Must be an uncompressed P-256 public key, base64url."]
    if _base64url(keys.get("auth"), AUTH_BYTES) is None:
        errors["keys.auth"] = ["Must be a 16-byte secret, base64url."]
    return errors


def subscription_save(*, user, data: dict[str, Any]) -> tuple[PushSubscription, bool]:
    """Keep a browser's PushSubscription for the user; return it and whether it is new.

    An endpoint another account subscribed before now belongs to this one: the browser
    is the same and the person signed into it changed, and the other must not be told of
    this one's messages. Raise InvalidSubscription naming the bad fields.
    """
    endpoint = data.get("endpoint")
    errors: dict[str, list[str]] = {}
    refused = endpoint_refusal(endpoint)
    if refused is not None:
        errors["endpoint"] = [refused]
    errors.update(_keys_errors(data.get("keys")))
    if errors:
        raise InvalidSubscription(errors)
    keys = data["keys"]
    fields = {"user": user, "p256dh": keys["p256dh"], "auth": keys["auth"]}
    for _ in range(2):
        try:
            with transaction.atomic():
                found = PushSubscription.objects.select_for_update().filter(endpoint=endpoint)
                existing = found.first()
                if existing is None:
                    return PushSubscription.objects.create(endpoint=endpoint, **fields), True
                new_owner = existing.user_id != user.pk
                for name, value in fields.items():
                    setattr(existing, name, value)
                existing.save()
                if new_owner:
                    existing.shown.all().delete()
                return existing, new_owner
        except IntegrityError:
            continue  # Made by a concurrent request: update it instead.
    raise InvalidSubscription({"endpoint": ["Try again."]})


def subscription_delete(*, user, endpoint: object) -> bool:
    """Forget the user's subscription with this endpoint; tell whether there was one."""
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidSubscription({"endpoint": ["Give the subscription's endpoint URL."]})
    deleted, _ = PushSubscription.objects.filter(user=user, endpoint=endpoint).delete()
    return bool(deleted)


def subscriptions_of(*, user) -> list[PushSubscription]:
    """Return the user's subscriptions, newest first."""
    return list(PushSubscription.objects.filter(user=user).order_by("-created_at", "-pk"))
