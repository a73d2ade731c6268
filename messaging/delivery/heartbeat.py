"""The heartbeat of this process's sockets: presence kept alive, ended logins closed.

While any socket is open, every CHAT_HEARTBEAT_SECONDS one task refreshes this process's
presence row (which keeps all its sockets online), sweeps the sockets of processes that
stopped beating, and closes the sockets whose login ended (messaging/domain/logins.py).
Beside it the event loop's stalls are measured for /metrics (loop_lag).
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from messaging.delivery import fanout, loop_lag
from messaging.delivery.registry import SocketRegistry
from messaging.domain import presence
from messaging.domain.logins import SocketLogin, logins_ended

log = logging.getLogger(__name__)

# The close code of a socket whose session or token ended (PROTOCOL.md).
CLOSE_LOGIN_ENDED = 4401


def keep_beating(registry: SocketRegistry) -> None:
    """Start the heartbeat of a registry that has sockets, unless it runs already."""
    if registry.heartbeat_task is None or registry.heartbeat_task.done():
        registry.heartbeat_task = asyncio.get_running_loop().create_task(_run(registry))


async def _run(registry: SocketRegistry) -> None:
    lag_watch = asyncio.ensure_future(loop_lag.watch())
    try:
        while registry.sockets:
            await asyncio.sleep(settings.CHAT_HEARTBEAT_SECONDS)
            if not registry.sockets:
                break
            try:
                await beat(registry)
            except Exception:
                log.exception("presence heartbeat failed")
    finally:
        lag_watch.cancel()


async def beat(registry: SocketRegistry) -> None:
    """Refresh this process's sockets, sweep those of dead processes, close ended logins."""
    consumers = dict(registry.sockets)
    sockets = {name: consumer.user.pk for name, consumer in consumers.items()}
    ended, events, routes = await database_sync_to_async(fanout.call_collecting)(
        _beat,
        process=registry.origin,
        sockets=sockets,
        logins=[consumer.login for consumer in consumers.values()],
    )
    await fanout.publish(events, routes)
    for name in ended:
        log.info("closing socket %s: its login ended", name)
        await consumers[name].close(code=CLOSE_LOGIN_ENDED)


def _beat(*, process: str, sockets: dict[str, int], logins: list[SocketLogin]) -> list[str]:
    presence.sockets_heartbeat(process=process, sockets=sockets)
    presence.sweep_expired()
    return logins_ended(logins=logins)
