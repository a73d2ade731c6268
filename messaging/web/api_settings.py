"""JSON API: the caller's privacy and notification settings."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from messaging.domain.user_settings import (
    InvalidSettings,
    settings_data,
    settings_for,
    settings_update,
)
from messaging.web.http import api, bad_request, json_body


@api("GET", "PATCH", rate={"GET": "read", "PATCH": "write"})
def my_settings(request: HttpRequest) -> JsonResponse:
    """Show the caller's settings, or change any of them; answer them all."""
    if request.method == "PATCH":
        try:
            chosen = settings_update(user=request.user, changes=json_body(request))
        except InvalidSettings as invalid:
            raise bad_request(f"invalid settings: {invalid}", invalid.errors) from None
    else:
        chosen = settings_for(user=request.user)
    return JsonResponse(settings_data(chosen))
