"""/healthz: does the database answer, does the channel layer answer."""

from __future__ import annotations

import asyncio
import uuid

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import JsonResponse

CHECK_TIMEOUT = 3.0


def _database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # This runs on a pool thread that no request will clean up after.
        connection.close()


# How long a probe may take before another is sent. The channel layer delivers at most once:
# channels-redis loses a message that a socket's read popped from Redis just as the
# socket closed (its BZPOPMIN answered, the task cancelled before the message was kept).
PROBE_AGAIN_AFTER = 0.5


async def _channel_layer() -> None:
    """Send probes through the layer to this process until one comes back."""
    layer = get_channel_layer()
    # The default prefix: with channels-redis, this process's sockets already wait on that
    # channel family, and a channel of another family would queue behind their reads.
    channel = await layer.new_channel()
    sent: set[str] = set()
    while True:
        probe = uuid.uuid4().hex
        sent.add(probe)
        await layer.send(channel, {"type": "health.probe", "probe": probe})
        try:
            received = await asyncio.wait_for(layer.receive(channel), PROBE_AGAIN_AFTER)
        except TimeoutError:
            continue
        if received.get("probe") not in sent:
            raise RuntimeError("wrong message received")
        return


async def _run(check) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g} s"
    except Exception as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else ""
        return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    return "ok"


async def healthz(request) -> JsonResponse:
    """Answer 200 when the database and the channel layer answer, else 503 naming what failed."""
    database, layer = await asyncio.gather(
        _run(sync_to_async(_database, thread_sensitive=False)), _run(_channel_layer)
    )
    checks = {"database": database, "channel_layer": layer}
    healthy = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
