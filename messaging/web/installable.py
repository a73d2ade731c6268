"""The installable app: its web app manifest, and the logout that leaves nothing behind."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.templatetags.static import static
from django.utils.translation import get_language, get_language_bidi, gettext
from django.views.decorators.http import require_safe

# chat.css: the page's background, light and dark (base.html's theme-color meta too).
LIGHT = "#f5f6f8"
DARK = "#111318"


@require_safe
def manifest(request: HttpRequest) -> JsonResponse:
    """Describe the chat as an app browsers can install, in the page's language."""
    data = {
        "id": "/",
        "name": gettext("Chat"),
        "short_name": gettext("Chat"),
        "description": gettext("Private conversations with the people you know, in real time."),
        "lang": get_language(),
        "dir": "rtl" if get_language_bidi() else "ltr",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "theme_color": LIGHT,
        "background_color": LIGHT,
        # Read by browsers that follow the dark colour scheme for installed apps.
        "user_preferences": {
            "color_scheme_dark": {"theme_color": DARK, "background_color": DARK},
        },
        "icons": [
            {"src": static("icons/icon-192.png"), "sizes": "192x192", "type": "image/png"},
            {"src": static("icons/icon-512.png"), "sizes": "512x512", "type": "image/png"},
            {
                "src": static("icons/icon-maskable-512.png"),
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
        ],
    }
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False})
    response["Content-Type"] = "application/manifest+json"
    return response


class LogoutView(auth_views.LogoutView):
    """Django's logout, which also has the browser drop what it keeps of the chat."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        # The service worker's cached pages and the messages kept for an offline start
        # (IndexedDB, localStorage): the next person at this browser finds none of them.
        response["Clear-Site-Data"] = '"cache", "storage"'
        return response
