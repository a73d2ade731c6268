"""The site's VAPID key (RFC 8292): it signs every push, and browsers subscribe with its
public half."""

from __future__ import annotations

import base64
import functools
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from py_vapid import Vapid02

DEV_KEY_FILE = "vapid-private-key"
# A signature is good for 12 hours (RFC 8292 allows 24); it is renewed an hour early.
CLAIMS_LIFETIME = 12 * 3600
RENEW_BEFORE = 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_private_key() -> str:
    """Make a P-256 private key; return it as base64url of its 32 raw bytes."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def _development_key() -> str:
    """Return this checkout's key, made on first use and kept under VAR_DIR (mode 600)."""
    path = Path(settings.VAR_DIR) / DEV_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(new_private_key())
    return path.read_text().strip()


@functools.lru_cache(maxsize=2)
def _vapid(private_key: str) -> Vapid02:
    return Vapid02.from_raw(private_key.encode("ascii"))


def configured_key() -> str | None:
    """Return the private key from the settings (DEBUG: made once under VAR_DIR), or None."""
    if settings.CHAT_VAPID_PRIVATE_KEY:
        return settings.CHAT_VAPID_PRIVATE_KEY
    return _development_key() if settings.DEBUG else None


def vapid() -> Vapid02 | None:
    """Return the signer, or None when push is not configured."""
    key = configured_key()
    return _vapid(key) if key else None


def public_key_of(private_key: str) -> str:
    """Return the public half of a private key, as browsers take it (base64url point)."""
    point = _vapid(private_key).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def public_key() -> str | None:
    """Return the application server key browsers subscribe with (base64url), or None."""
    key = configured_key()
    return public_key_of(key) if key else None


_signed: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}


def authorization(audience: str) -> dict[str, str]:
    """Return the Authorization header for pushes to a push service's origin.

    Signed once per origin and reused until an hour before it expires: signing costs more
    than encrypting a push.
    """
    key = configured_key()
    if key is None:
        raise RuntimeError("no VAPID key: set CHAT_VAPID_PRIVATE_KEY (manage.py make_vapid_keys)")
    now = time.time()
    cached = _signed.get((key, audience))
    if cached is not None and cached[0] - RENEW_BEFORE > now:
        return cached[1]
    expires = int(now) + CLAIMS_LIFETIME
    headers = _vapid(key).sign(
        {"aud": audience, "sub": settings.CHAT_VAPID_SUBJECT, "exp": expires}
    )
    _signed[(key, audience)] = (expires, headers)
    return headers
