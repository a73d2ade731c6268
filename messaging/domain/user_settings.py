"""A person's privacy and notification settings: read them, change them."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from messaging.domain import presence
from messaging.models import UserSettings

# Each setting and the one type its value must have (`true` is not a number here, nor 1 a
# truth value: PROTOCOL.md, Privacy).
FIELDS: dict[str, type] = {
    "show_presence": bool,
    "send_read_receipts": bool,
    "push": bool,
    "email": bool,
    "email_delay_minutes": int,
    "previews": bool,
}
EMAIL_DELAY_MINUTES = (1, 1440)


class InvalidSettings(ValueError):
    """Some changes were refused; `errors` names each field and says why."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(", ".join(sorted(errors)))
        self.errors = errors


def settings_for(*, user) -> UserSettings:
    """Return the user's settings (every default when they never changed one)."""
    return UserSettings.objects.filter(user=user).first() or UserSettings(user=user)


def settings_data(chosen: UserSettings) -> dict[str, Any]:
    """Show settings as the API does."""
    return {name: getattr(chosen, name) for name in FIELDS}


def _errors(changes: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for name, value in changes.items():
        kind = FIELDS.get(name)
        if kind is None:
            errors[name] = [_("Not a setting.")]
        elif type(value) is not kind:
            # type(), not isinstance(): a bool is an int in Python.
            errors[name] = [
                _("Must be true or false.") if kind is bool else _("Must be a whole number.")
            ]
        elif name == "email_delay_minutes" and not (
            EMAIL_DELAY_MINUTES[0] <= value <= EMAIL_DELAY_MINUTES[1]
        ):
            low, high = EMAIL_DELAY_MINUTES
            errors[name] = [_("Must be from %(low)s to %(high)s.") % {"low": low, "high": high}]
    return errors


def settings_update(*, user, changes: dict[str, Any]) -> UserSettings:
    """Change any of the user's settings; all or nothing.

    Raise InvalidSettings naming each unknown field or bad value. Turning `show_presence`
    off while online tells those who saw the user that they went offline; turning it on,
    that they are online.
    """
    errors = _errors(changes)
    if errors:
        raise InvalidSettings(errors)
    with transaction.atomic():
        try:
            with transaction.atomic():
                UserSettings.objects.get_or_create(user=user)
        except IntegrityError:
            pass  # Made by a concurrent request.
        chosen = UserSettings.objects.select_for_update().get(user=user)
        with presence.announcing_sight_changes([user.pk] if "show_presence" in changes else []):
            for name, value in changes.items():
                setattr(chosen, name, value)
            chosen.save()
    return chosen
