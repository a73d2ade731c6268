"""A person's email address: set it, prove it by a link, and stop emails by a link.

The address is the account's `User.email`. Nothing is sent to it (but the verification)
until its owner opened the link sent there; the link and the unsubscribe link are signed
with SECRET_KEY and name the user and the address, so each works for that address only.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from messaging.models import UserSettings, VerifiedEmail

User = get_user_model()

VERIFY_SALT = "messaging.email.verify"
UNSUBSCRIBE_SALT = "messaging.email.unsubscribe"
# A verification link works this long.
VERIFY_MAX_AGE = 3 * 24 * 3600
MAX_LENGTH = User._meta.get_field("email").max_length


class InvalidAddress(ValueError):
    """The address was refused; the message says why."""


def normalized(address: str) -> str:
    """Return the address as kept: trimmed, its domain in lower case."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if local else address.strip()


def address_set(*, user, address: object) -> bool:
    """Set the user's address ("" removes it); return whether it needs verifying now.

    The same address again changes nothing (and needs verifying only if not yet done).
    """
    if not isinstance(address, str):
        raise InvalidAddress(_("Must be an email address, or empty to remove it."))
    address = normalized(address)
    if address:
        if len(address) > MAX_LENGTH:
            raise InvalidAddress(
                _("An address has at most %(count)s characters.") % {"count": MAX_LENGTH}
            )
        try:
            validate_email(address)
        except ValidationError:
            raise InvalidAddress(_("Enter a valid email address.")) from None
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(email=address)
        user.email = address
        if not address:
            VerifiedEmail.objects.filter(user_id=user.pk).delete()
    return bool(address) and not is_verified(user=user)


def is_verified(*, user) -> bool:
    """Tell whether the user's current address is the one they verified."""
    return (
        bool(user.email)
        and VerifiedEmail.objects.filter(user_id=user.pk, address=user.email).exists()
    )


def verified_address(*, user_id: int) -> str | None:
    """Return the user's address if it is verified and they are active, else None."""
    found = User.objects.filter(pk=user_id, is_active=True).values_list("email", flat=True)
    address = found.first()
    if not address:
        return None
    verified = VerifiedEmail.objects.filter(user_id=user_id, address=address).exists()
    return address if verified else None


def verification_token(*, user_id: int, address: str) -> str:
    """Sign a token that verifies this address for this user."""
    return signing.dumps({"u": user_id, "a": address}, salt=VERIFY_SALT, compress=True)


def address_verify(token: str):
    """Verify the address a token names, if it is still the user's; return the user or None."""
    try:
        claim = signing.loads(token, salt=VERIFY_SALT, max_age=VERIFY_MAX_AGE)
        user_id, address = int(claim["u"]), str(claim["a"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    user = User.objects.filter(pk=user_id, email=address).first()
    if user is None or not address:
        return None
    VerifiedEmail.objects.update_or_create(
        user_id=user_id, defaults={"address": address, "verified_at": timezone.now()}
    )
    return user


def unsubscribe_token(*, user_id: int, address: str) -> str:
    """Sign a token that turns emails off for this user while this is their address."""
    return signing.dumps({"u": user_id, "a": address}, salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_holder(token: str):
    """Return the user a token may unsubscribe (its address still theirs), else None."""
    try:
        claim = signing.loads(token, salt=UNSUBSCRIBE_SALT)
        user_id, address = int(claim["u"]), str(claim["a"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    return User.objects.filter(pk=user_id, email=address).exclude(email="").first()


def unsubscribe(token: str):
    """Turn emails off for the user the token names; return them, or None if it is void."""
    user = unsubscribe_holder(token)
    if user is None:
        return None
    with transaction.atomic():
        UserSettings.objects.get_or_create(user=user)
        UserSettings.objects.filter(user=user).update(email=False)
    return user
