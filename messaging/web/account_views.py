"""Pages about a person's own account: privacy, notifications, email and API tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.i18n import set_language

from messaging.domain.languages import language_choose
from messaging.domain.tokens import TOKEN_NAME_MAX, tokens_of
from messaging.domain.user_settings import EMAIL_DELAY_MINUTES
from messaging.jobs.vapid import public_key
from messaging.models import UserSettings
from messaging.web.api_tokens import token_data
from messaging.web.email_views import email_data

# The choices this page offers, in its privacy and its notifications sections.
PRIVACY_FIELDS = ("show_presence", "send_read_receipts")
NOTIFICATION_FIELDS = ("push", "previews", "email", "email_delay_minutes")


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    """Show the caller's privacy and notification choices, email address and API tokens."""
    stored = UserSettings.objects.filter(user=request.user).first() or UserSettings()
    privacy = {field: getattr(stored, field) for field in PRIVACY_FIELDS}
    notifications = {field: getattr(stored, field) for field in NOTIFICATION_FIELDS}
    email = email_data(request.user)
    config = {
        "user": request.user.username,
        "privacy": privacy,
        "notifications": notifications,
        "email": email,
        "emailDelayMinutes": list(EMAIL_DELAY_MINUTES),
        "pushConfigured": public_key() is not None,
        "tokens": [token_data(token) for token in tokens_of(user=request.user)],
        "tokenLifetimeDays": settings.CHAT_TOKEN_LIFETIME_DAYS,
        "tokenNameMax": TOKEN_NAME_MAX,
        "urls": {
            "settings": "/api/me/settings/",
            "tokens": reverse("api-tokens"),
            "login": reverse("login"),
            "email": reverse("api-my-email"),
            "pushKey": reverse("api-push-key"),
            "pushSubscriptions": reverse("api-push-subscriptions"),
            "serviceWorker": reverse("service-worker"),
            "conversations": reverse("api-conversations"),
        },
    }
    return render(
        request,
        "messaging/settings.html",
        {
            "privacy": privacy,
            "notifications": notifications,
            "email": email,
            "email_delay_range": EMAIL_DELAY_MINUTES,
            "settings_config": config,
            "token_name_max": TOKEN_NAME_MAX,
        },
    )


def choose_language(request: HttpRequest) -> HttpResponse:
    """Switch the pages' language (Django's set_language, a cookie) and, for someone signed
    in, keep it with their settings: the emails and pushes they get follow it."""
    response = set_language(request)
    if request.method == "POST" and request.user.is_authenticated:
        language_choose(user=request.user, code=request.POST.get("language", ""))
    return response
