"""Keep private answers out of browser and proxy caches."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


class NoStoreMiddleware:
    """Mark every answer to a signed-in request, and every API answer, `no-store`.

    Pages and API answers hold messages, names and unread counts: a shared computer's
    browser cache, or a proxy, must not keep them after the person has left. Static files
    never get here (WhiteNoise answers them earlier), so they stay cacheable.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/") or _signed_in(request):
            add_never_cache_headers(response)
            # For HTTP/1.0 caches, which know no Cache-Control.
            response["Pragma"] = "no-cache"
        return response


def _signed_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)
