"""One heartbeat task per process: refresh its sockets' presence and sweep dead ones."""

from __future__ import annotations

import asyncio
import logging
import weakref

from channels.db import database_sync_to_async
from django.conf import settings

from messaging import fanout, presence

log = logging.getLogger(__name__)


class Heartbeat:
    """Keep the presence rows of this process's sockets fresh while any is open."""

    def __init__(self) -> None:
        self.sockets: dict[str, int] = {}
        self._task: asyncio.Task | None = None

    def add(self, channel_name: str, user_id: int) -> None:
        self.sockets[channel_name] = user_id
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, channel_name: str) -> None:
        self.sockets.pop(channel_name, None)
        if not self.sockets and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while self.sockets:
            await asyncio.sleep(settings.CHAT_HEARTBEAT_SECONDS)
            if not self.sockets:
                break
            try:
                await self.beat()
            except Exception:
                log.exception("presence heartbeat failed")

    async def beat(self) -> None:
        """Refresh this process's sockets and sweep those of processes that died."""
        with fanout.collecting() as events:
            await database_sync_to_async(presence.sockets_heartbeat)(sockets=dict(self.sockets))
            await database_sync_to_async(presence.sweep_expired)()
        await fanout.publish(events)


_heartbeats: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Heartbeat] = (
    weakref.WeakKeyDictionary()
)


def heartbeat() -> Heartbeat:
    """Return this event loop's heartbeat."""
    loop = asyncio.get_running_loop()
    if loop not in _heartbeats:
        _heartbeats[loop] = Heartbeat()
    return _heartbeats[loop]
