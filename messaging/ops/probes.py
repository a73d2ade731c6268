"""Answer /healthz, and /metrics to the allowed networks, whatever Host they were asked as.

Load balancers and Prometheus ask each process on its own address (`127.0.0.1:8001`,
`10.0.0.11:8001`), a Host that ALLOWED_HOSTS rightly does not list: Django would answer 400
and log a traceback for every probe. These answers do not depend on the Host (nothing in
them is built from it), so they are given before Django validates it. Staff reading
/metrics from elsewhere go through the site's own address and the usual checks.
"""

from __future__ import annotations

from collections.abc import Callable

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from messaging import metrics
from messaging.ops.health import healthz


@sync_and_async_middleware
def probes(get_response: Callable) -> Callable:
    """Serve the probes before any middleware that reads the Host; pass on anything else."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponseBase:
            if request.path == "/healthz" and request.method in ("GET", "HEAD"):
                return await healthz(request)
            if request.path == "/metrics" and metrics.address_allowed(request):
                # A few milliseconds of formatting: not worth a hop to a thread.
                return metrics.metrics_response()
            return await get_response(request)

    else:

        def middleware(request: HttpRequest) -> HttpResponseBase:
            if request.path == "/healthz" and request.method in ("GET", "HEAD"):
                return async_to_sync(healthz)(request)
            if request.path == "/metrics" and metrics.address_allowed(request):
                return metrics.metrics_response()
            return get_response(request)

    return middleware
