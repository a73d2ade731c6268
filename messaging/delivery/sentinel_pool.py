"""The channel layer's pool of connections to the primary that Redis Sentinel names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool


class WatchedSentinelPool(SentinelConnectionPool):
    """redis-py's Sentinel pool, which calls `on_move` when the sentinels name a new primary.

    A connection that its server closed in a switchover is replaced without an error when
    next taken from the pool, so a process may see nothing else of the switchover, while
    the pushes written to the old primary since its replica took over are lost.
    """

    def __init__(
        self,
        service_name: str,
        sentinel_manager: Sentinel,
        *,
        on_move: Callable[[tuple[str, int]], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)
        self.on_move = on_move

    async def get_master_address(self) -> tuple[str, int]:
        known = self.master_address
        address = await super().get_master_address()
        if known is not None and tuple(address) != tuple(known):
            self.on_move(address)
        return address

    async def close_sentinels(self) -> None:
        """Close the connections to the sentinels, which closing the pool leaves open."""
        for sentinel in self.sentinel_manager.sentinels:
            await sentinel.aclose()


def sentinel_pool(
    host: dict[str, Any], on_move: Callable[[tuple[str, int]], None]
) -> WatchedSentinelPool | None:
    """Build the pool channels-redis builds for a host named by sentinels, or None."""
    host = dict(host)
    if "address" in host or host.get("master_name") is None:
        return None
    master_name = host.pop("master_name")
    sentinels = Sentinel(host.pop("sentinels"), sentinel_kwargs=host.pop("sentinel_kwargs", None))
    return WatchedSentinelPool(master_name, sentinels, on_move=on_move, **host)
