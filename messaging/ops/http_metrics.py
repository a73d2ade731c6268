"""Count and time every HTTP request for /metrics: by method, URL pattern and status."""

from __future__ import annotations

import time
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from messaging import metrics

# Anything else (WebDAV, made-up verbs) is counted as "other", so a client cannot make
# new series at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Answered before URL resolution (messaging/ops/probes.py): named like their URL patterns.
PROBES = {"/healthz": "healthz", "/metrics": "metrics"}


def route_of(request: HttpRequest) -> str:
    """Name the request's URL pattern, e.g. `api/conversations/<int:conversation_id>/`."""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return match.route
    if request.path in PROBES:
        return PROBES[request.path]
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


def _record(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
    route = route_of(request)
    method = request.method if request.method in METHODS else "other"
    metrics.HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
    metrics.HTTP_REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)


@sync_and_async_middleware
def http_metrics(get_response: Callable) -> Callable:
    """Record each request's method, URL pattern, status and time; first in MIDDLEWARE."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            started = time.perf_counter()
            response = await get_response(request)
            _record(request, response, started)
            return response

    else:

        def middleware(request: HttpRequest) -> HttpResponseBase:
            started = time.perf_counter()
            response = get_response(request)
            _record(request, response, started)
            return response

    return middleware
