"""Spread open sockets over the processes again, after a rolling restart.

nginx's `least_conn` places new connections only: after a rolling restart the sockets sit
on the processes restarted first (all of them, with two processes) and stay there for
hours. Asking some of their clients to reconnect lets nginx place them again, on the
emptier processes. The clients are asked a few at a time, spread over a while, so that the
processes and the database (every reconnect syncs) do not take them all at once.

The sockets are found in the presence rows of the processes whose heartbeat goes on, so
this runs from any machine, and each one is asked through the channel layer, with the
close code every client already answers by reconnecting and syncing (1013, Try Again
Later).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass

from channels.layers import get_channel_layer
from django.conf import settings

from messaging.models import PresenceProcess, SocketPresence

log = logging.getLogger(__name__)

# Try Again Later: the browser client and messaging.client reconnect at once (with their
# usual backoff) and sync, as after the consumer's close for a lost channel layer.
CLOSE_RECONNECT = 1013


@dataclass(frozen=True)
class ProcessSockets:
    """One live process and the channel names of its open sockets."""

    process: str
    channels: list[str]


def heartbeat_wait() -> float:
    """Return how long to watch the heartbeats to see every running process beat once."""
    # A process with sockets beats every CHAT_HEARTBEAT_SECONDS, plus the beat's own time.
    return 1.5 * settings.CHAT_HEARTBEAT_SECONDS + 1


def beating_processes(*, since) -> list[ProcessSockets]:
    """List the processes that beat after `since`, with their sockets, busiest first.

    A process stopped by a restart keeps its presence rows, and a heartbeat that looks
    fresh, for up to CHAT_PRESENCE_TTL; only a process that beats again is running. Call it
    one heartbeat_wait() after `since`.
    """
    running = PresenceProcess.objects.filter(heartbeat_at__gte=since).values("id")
    channels: dict[str, list[str]] = {}
    rows = SocketPresence.objects.filter(process__in=running).values_list(
        "process", "channel_name"
    )
    for process, channel_name in rows:
        channels.setdefault(process, []).append(channel_name)
    found = [ProcessSockets(process, sorted(names)) for process, names in channels.items()]
    return sorted(found, key=lambda p: (-len(p.channels), p.process))


def sockets_to_move(
    processes: list[ProcessSockets],
    *,
    serving: int,
    share: float | None = None,
    rng: random.Random | None = None,
) -> dict[str, list[str]]:
    """Choose, per process holding more than its part, the sockets to ask to reconnect.

    A process's part is the sockets over the `serving` processes (at least those given:
    a process that holds no socket is not among them). Without `share`, each such
    process is asked for its sockets beyond its part; with it, for that share of its
    sockets. The sockets are chosen at random, so no one person's tabs all move.
    """
    rng = rng or random.Random()
    total = sum(len(p.channels) for p in processes)
    part = total / max(serving, len(processes), 1)
    chosen: dict[str, list[str]] = {}
    for p in processes:
        count = len(p.channels)
        if count <= part:
            continue
        wanted = round(count * share) if share is not None else math.floor(count - part)
        wanted = min(count, max(wanted, 0))
        if wanted:
            chosen[p.process] = rng.sample(p.channels, wanted)
    return chosen


def interleaved(chosen: dict[str, list[str]]) -> list[str]:
    """Order the sockets so that each process loses its clients evenly over the time."""
    queues = [list(channels) for _, channels in sorted(chosen.items())]
    order: list[str] = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return order


async def ask_to_reconnect(channels: list[str], *, over: float) -> int:
    """Ask each socket's client to reconnect, evenly over `over` seconds; return the failures.

    A socket that closed meanwhile costs nothing: the message for it expires in the layer.
    """
    layer = get_channel_layer()
    failures = 0
    gap = over / len(channels) if channels else 0.0
    for index, channel_name in enumerate(channels):
        if index:
            await asyncio.sleep(gap)
        try:
            await layer.send(channel_name, {"type": "chat.close", "code": CLOSE_RECONNECT})
        except Exception as exc:
            # One full channel or a Redis hiccup must not stop the others being asked.
            failures += 1
            log.warning("rebalance: could not ask a socket to reconnect: %s", type(exc).__name__)
    return failures
