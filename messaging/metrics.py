"""Prometheus metrics of this process, served at /metrics to staff and allowed addresses.

Every daphne process counts for itself: scrape each process (each port) as its own target.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

OPEN_SOCKETS = Gauge("chat_open_sockets", "WebSocket connections open on this process")
FRAMES_IN = Counter("chat_frames_in_total", "Frames received from clients", ["type"])
FRAMES_OUT = Counter("chat_frames_out_total", "Frames sent to clients", ["type"])
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
DATABASE_ERRORS = Counter("chat_database_errors_total", "Database calls that failed")
REDIS_ERRORS = Counter("chat_redis_errors_total", "Channel layer or Redis calls that failed")


def _allowed(request: HttpRequest) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.METRICS_ALLOWED_NETWORKS
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve this process's metrics to staff and to the allowed networks; 403 otherwise."""
    if not _allowed(request):
        return HttpResponse("metrics are for staff and allowed addresses\n", status=403)
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
