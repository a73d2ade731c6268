"""The language of what reaches a person away from the pages: emails and pushes.

The pages follow the browser (LocaleMiddleware: the language cookie, else Accept-Language).
A worker sending an email has no browser to ask, so each person's language is stored: the
one they chose in the settings, else their browser's at their last login or sign-up.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import translation

from messaging.models import UserSettings


def supported(code: str | None) -> str | None:
    """Return the shipped language a code names ("de-AT" is "de"), or None."""
    if not code:
        return None
    try:
        return translation.get_supported_language_variant(code)
    except LookupError:
        return None


def languages_of(user_ids: Iterable[int]) -> dict[int, str]:
    """Return each user's language; the site's default for those who have none stored."""
    ids = list(user_ids)
    stored = dict(
        UserSettings.objects.filter(user_id__in=ids)
        .exclude(language="")
        .values_list("user_id", "language")
    )
    default = supported(settings.LANGUAGE_CODE) or settings.LANGUAGE_CODE
    return {user_id: supported(stored.get(user_id)) or default for user_id in ids}


def language_of(user_id: int) -> str:
    """Return one user's language."""
    return languages_of([user_id])[user_id]


def _store(user, values: dict) -> None:
    for _attempt in range(2):
        try:
            with transaction.atomic():
                UserSettings.objects.update_or_create(user=user, defaults=values)
            return
        except IntegrityError:
            continue  # Created by a concurrent request meanwhile: update that row.


def language_choose(*, user, code: str) -> None:
    """Keep the language the person picked in the settings (an unshipped one is ignored)."""
    chosen = supported(code)
    if chosen:
        _store(user, {"language": chosen, "language_chosen": True})


def language_from_browser(*, user, request: HttpRequest) -> None:
    """Keep the browser's language of this login or sign-up, unless the person chose one."""
    found = supported(translation.get_language_from_request(request))
    row = UserSettings.objects.filter(user=user).values("language", "language_chosen").first()
    if not found or (row and (row["language_chosen"] or row["language"] == found)):
        return
    if row is None and found == supported(settings.LANGUAGE_CODE):
        return  # No row reads as the default language already.
    _store(user, {"language": found})
