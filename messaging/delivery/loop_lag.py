"""How late this process's event loop runs a timer: the stalls every socket waits through.

A send, a push or a ping answered by this process waits for whatever holds the loop
(a long callback, a garbage collection, daphne walking all its sockets). The lag of a
timer that should fire every INTERVAL shows those stalls on /metrics, where latency
figures alone cannot tell them from a slow database.
"""

from __future__ import annotations

import asyncio

from messaging import metrics

INTERVAL = 0.1


async def watch() -> None:
    """Record how late each timer fires, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + INTERVAL
        await asyncio.sleep(INTERVAL)
        metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - due))
