"""Handshakes whose client left before they were answered: their work is skipped.

In a reconnect storm a process takes handshakes slower than clients arrive, and the kernel
holds the rest in the listen backlog (CHAT_LISTEN_BACKLOG) for seconds. A client that waits
there past its own timeout (the browser's CONNECT_TIMEOUT, 10 s) closes its connection and
tries again later, but the process still reads its request when its turn comes. Doing that
handshake's work anyway (its login, its groups, its presence row and announcement, then
their removal when the close is read) is work for no one, in the minutes when the process
has none to spare: in a storm of 10,000 on a slower machine, 2,333 handshakes of 12,568
tries. A client cannot send a frame before its handshake is answered, so a disconnect
already waiting for the application is the only news it can have left, and each step of
the handshake looks for it before its own work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from messaging import metrics
from messaging.realtime.backpressure import WaitingFrames


def client_left(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bool:
    """Tell whether the server has read the close of the client of this `receive`.

    False under a server whose queue is not a WaitingFrames: then no step is skipped.
    """
    frames = getattr(receive, "__self__", None)
    return isinstance(frames, WaitingFrames) and frames.client_left


def count_abandoned(skipped: str) -> None:
    """Count a handshake left unanswered because its client left, by the step skipped."""
    metrics.HANDSHAKES_ABANDONED.labels(skipped).inc()
