"""Pages about a person's own account: privacy choices and API tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from messaging.domain.tokens import TOKEN_NAME_MAX, tokens_of
from messaging.models import UserSettings
from messaging.web.api_tokens import token_data

# The choices this page offers; the rest of UserSettings belongs to notifications.
PRIVACY_FIELDS = ("show_presence", "send_read_receipts")


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    """Show the caller's privacy switches and API tokens, to change and revoke."""
    stored = UserSettings.objects.filter(user=request.user).first() or UserSettings()
    privacy = {field: getattr(stored, field) for field in PRIVACY_FIELDS}
    config = {
        "privacy": privacy,
        "tokens": [token_data(token) for token in tokens_of(user=request.user)],
        "tokenLifetimeDays": settings.CHAT_TOKEN_LIFETIME_DAYS,
        "tokenNameMax": TOKEN_NAME_MAX,
        "urls": {
            "settings": "/api/me/settings/",
            "tokens": reverse("api-tokens"),
            "login": reverse("login"),
        },
    }
    return render(
        request,
        "messaging/settings.html",
        {"privacy": privacy, "settings_config": config, "token_name_max": TOKEN_NAME_MAX},
    )
