"""Prometheus metrics of this process, served at /metrics to staff and allowed addresses.

Every daphne process counts for itself: scrape each process (each port) as its own target.
Besides the chat's own instruments: HTTP requests, the database pool (psycopg's own
counts), the version running, and the process's CPU, memory and file descriptors
(prometheus_client's process collector).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

OPEN_SOCKETS = Gauge("chat_open_sockets", "WebSocket connections open on this process")
FRAMES_IN = Counter("chat_frames_in_total", "Frames received from clients", ["type"])
FRAMES_OUT = Counter("chat_frames_out_total", "Frames sent to clients", ["type"])
# One child counter per frame type, found without labels()'s lock and key building: a
# group message counts a frame per member.
_frames_out_by_type: dict[str, Counter] = {}


def count_frame_out(frame_type: str) -> None:
    """Count one frame sent to a client."""
    child = _frames_out_by_type.get(frame_type)
    if child is None:
        child = _frames_out_by_type[frame_type] = FRAMES_OUT.labels(frame_type)
    child.inc()


MESSAGES_STORED = Counter("chat_messages_stored_total", "Messages stored (retries excluded)")
FANOUT_FAILURES = Counter("chat_fanout_failures_total", "Channel-layer group sends that failed")
SYNCS = Counter("chat_syncs_total", "sync requests answered")
SYNC_MESSAGES = Counter("chat_sync_messages_total", "Messages carried by sync answers")
SEND_LATENCY = Histogram(
    "chat_send_latency_seconds",
    "From a message.send frame received to its ack sent",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SEND_BATCH_SIZE = Histogram(
    "chat_send_batch_size",
    "Sends stored together in one transaction (group commit)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
SEND_BATCH_SECONDS = Histogram(
    "chat_send_batch_seconds",
    "Time of one batch of sends on the database thread, hop included",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
# Where a send's time goes besides storing it (chat_send_batch_seconds): waiting for a
# batch to take it, its batch counting rate limits in Redis, and from the commit to its
# ack going out (after the batch before was acked and pushed).
SEND_STAGE_SECONDS = Histogram(
    "chat_send_stage_seconds",
    "Time of a send before its ack, by stage: waiting and acking per send, rate_limit per batch",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SEND_WAITING = SEND_STAGE_SECONDS.labels("waiting")
SEND_RATE_LIMIT = SEND_STAGE_SECONDS.labels("rate_limit")
SEND_ACKING = SEND_STAGE_SECONDS.labels("acking")
EVENT_LOOP_LAG = Histogram(
    "chat_event_loop_lag_seconds",
    "How late the event loop ran a timer due every 0.1 s, while sockets are open",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SOCKETS_CLOSED_FOR_ABUSE = Counter(
    "chat_sockets_closed_for_abuse_total",
    "Sockets closed with 1008: too many frames waiting to be handled, too many bytes waiting"
    " for a client that does not read, or flooding past the rate limits",
    ["reason"],
)
RATE_LIMITED = Counter("chat_rate_limited_total", "Requests refused by a rate limit", ["action"])
HANDSHAKES_REFUSED = Counter(
    "chat_handshakes_refused_total", "WebSocket handshakes refused", ["reason"]
)
HANDSHAKES_ABANDONED = Counter(
    "chat_handshakes_abandoned_total",
    "WebSocket handshakes whose client left before they were answered, by the step skipped",
    ["skipped"],
)
ACCEPT_PAUSES = Counter(
    "chat_accept_pauses_total",
    "Times the process stopped taking connections because its handshake places were full",
)
DATABASE_ERRORS = Counter("chat_database_errors_total", "Database calls that failed")
REDIS_ERRORS = Counter("chat_redis_errors_total", "Channel layer or Redis calls that failed")
# Labelled by the URL pattern (not the path, whose ids would make a series per object).
HTTP_REQUESTS = Counter(
    "chat_http_requests_total",
    "HTTP requests answered, by method, URL pattern and status",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "chat_http_request_seconds",
    "Time to answer an HTTP request, by URL pattern",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BUILD = Info("chat_build", "The version of the chat this process runs")
# Background jobs (messaging/jobs/): counted by the process that enqueues or runs them.
JOBS_QUEUED = Counter("chat_jobs_queued_total", "Background jobs enqueued", ["task"])
JOBS_DONE = Counter("chat_jobs_done_total", "Background jobs that succeeded", ["task"])
JOBS_FAILED = Counter("chat_jobs_failed_total", "Background jobs that failed for good", ["task"])
JOBS_RETRIED = Counter("chat_jobs_retried_total", "Background jobs put back to retry", ["task"])
# The queue as the database holds it, read at most every few seconds (messaging/jobs/queue.py).
JOBS_WAITING = Gauge("chat_jobs_waiting", "Jobs that may run now, waiting for a worker")
JOBS_RUNNING = Gauge("chat_jobs_running", "Jobs a worker is running")
JOBS_OLDEST_QUEUED = Gauge(
    "chat_jobs_oldest_queued_seconds", "How long the job waiting longest has waited"
)
PUSHES = Counter("chat_pushes_total", "Web Pushes posted, by outcome", ["outcome"])
PUSH_LATENCY = Histogram(
    "chat_push_latency_seconds",
    "From a message's commit to its push service accepting the push",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
EMAILS = Counter("chat_emails_total", "Emails handed to the mail server, by kind", ["kind"])
EMAIL_LATENCY = Histogram(
    "chat_email_latency_seconds",
    "From when a missed-message email was due to its handing to the mail server",
    buckets=(1, 5, 15, 30, 60, 120, 300, 900, 3600),
)


class DatabasePoolCollector(Collector):
    """psycopg's pool of this process's database connections, read at each scrape."""

    def collect(self) -> Iterator[Metric]:
        pool = _database_pool()
        if pool is None:
            return
        stats = pool.get_stats()
        gauges = {
            "pool_min": ("pool_min", "Connections the pool keeps open even when idle"),
            "pool_max": ("pool_max", "Most connections the pool may open"),
            "pool_size": ("pool_size", "Connections the pool holds now, lent or not"),
            "pool_available": ("pool_available", "Connections idle in the pool now"),
            "requests_waiting": ("pool_requests_waiting", "Requests waiting for a connection"),
        }
        for key, (name, text) in gauges.items():
            yield GaugeMetricFamily(f"chat_db_{name}", text, value=stats.get(key, 0))
        counters = {
            "requests_num": ("pool_requests", "Connections asked of the pool"),
            "requests_queued": ("pool_requests_queued", "Requests that had to wait"),
            "requests_errors": ("pool_request_errors", "Requests given no connection in time"),
            "connections_errors": ("pool_connection_errors", "Connections that failed to open"),
        }
        for key, (name, text) in counters.items():
            yield CounterMetricFamily(f"chat_db_{name}", text, value=stats.get(key, 0))
        # Found broken when lent (the pool's own check) or given back broken (after a query
        # failed, or by chatsite/postgresql/base.py before lending it).
        yield CounterMetricFamily(
            "chat_db_pool_connections_lost",
            "Connections found broken",
            value=stats.get("connections_lost", 0) + stats.get("returns_bad", 0),
        )
        yield CounterMetricFamily(
            "chat_db_pool_wait_seconds",
            "Time requests waited for a connection",
            value=stats.get("requests_wait_ms", 0) / 1000,
        )


def _database_pool():
    """Return the default database's pool if this process has opened it, without opening it."""
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return None
    from django.db.backends.postgresql.base import DatabaseWrapper

    # Django keeps each alias's pool here (5.1+); its `pool` property would open one.
    return getattr(DatabaseWrapper, "_connection_pools", {}).get("default")


REGISTRY.register(DatabasePoolCollector())


def build_version() -> str:
    """Name the version running: CHAT_VERSION, else the checkout's commit, else "unknown"."""
    return settings.CHAT_VERSION or _CHECKOUT_COMMIT


def _checkout_commit() -> str:
    # Read from .git's files (the processes need not be able to run git), once, when the
    # process starts: a `git pull` later does not change the code it runs.
    git = Path(settings.BASE_DIR) / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head.removeprefix("ref: ")
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(f" {ref}"):
                return line.split(" ", 1)[0][:12]
    except OSError:
        pass
    return "unknown"


_CHECKOUT_COMMIT = _checkout_commit()


def address_allowed(request: HttpRequest) -> bool:
    """Tell whether the request comes from a network allowed to read metrics."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.METRICS_ALLOWED_NETWORKS
    )


def metrics_response() -> HttpResponse:
    """Return this process's metrics in Prometheus's text format."""
    BUILD.info({"version": build_version()})
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve this process's metrics to staff and to the allowed networks; 403 otherwise."""
    staff = request.user.is_authenticated and request.user.is_staff
    if not (staff or address_allowed(request)):
        return HttpResponse("metrics are for staff and allowed addresses\n", status=403)
    return metrics_response()
