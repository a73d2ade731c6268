"""Answer a page the database did not answer for with 503 and a retry, not a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape
from django.utils.translation import gettext as _

from messaging import metrics

log = logging.getLogger(__name__)

# Seconds a browser or the service worker is asked to wait before asking again.
RETRY_AFTER_S = 5


class DatabaseUnavailableMiddleware:
    """Turn a view's failure to reach the database into 503 Service Unavailable.

    PostgreSQL restarting, a pool that found no connection in time, a process frozen while
    a request waited for one: none is the visitor's doing nor a bug, and each passes. The
    API answers them itself (messaging.web.http.api); a page would be a 500 with a
    traceback in the log. Sync only, as NoStoreMiddleware beside it (chatsite/settings.py).
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Answer 503 for the database's unavailability; let every other error through."""
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        metrics.DATABASE_ERRORS.inc()
        log.warning(
            "database unavailable for %s: %s", request.path, str(exception).split("\n")[0][:200]
        )
        text = escape(_("The chat cannot reach its database just now. Try again in a moment."))
        response = HttpResponse(
            f'<!doctype html><meta charset="utf-8"><title>503</title><p>{text}</p>',
            status=503,
            content_type="text/html; charset=utf-8",
        )
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
