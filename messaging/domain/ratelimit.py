"""Per-user rate limits shared by every socket and process (Redis), or by one process."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings

from messaging import metrics
from messaging.protocol import ChatError, ErrorCode
from messaging.singletons import per_process

log = logging.getLogger(__name__)

_RULE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*s?\s*$")


@dataclass(frozen=True)
class Rule:
    """At most `limit` hits in each window of `seconds`."""

    limit: int
    seconds: int


@functools.lru_cache(maxsize=64)
def parse_rules(text: str) -> tuple[Rule, ...]:
    """Parse rules written like "20/5s,120/60s" (once per distinct text: every frame asks)."""
    rules = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = _RULE.match(part)
        if match is None:
            raise ValueError(f"bad rate rule {part!r}: write it like 20/5s")
        rules.append(Rule(limit=int(match[1]), seconds=int(match[2])))
    return tuple(rules)


class MemoryCounter:
    """Fixed-window counters in this process: for one daphne alone, and for tests."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}

    async def incr_many(self, hits: list[tuple[str, int, int]]) -> list[int]:
        return [await self.incr(key, window, seconds) for key, window, seconds in hits]

    async def incr(self, key: str, window: int, seconds: int) -> int:
        start, count = self._counts.get(key, (window, 0))
        if start != window:
            count = 0
        self._counts[key] = (window, count + 1)
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if v[0] >= window}
        return count + 1


class RedisCounter:
    """Fixed-window counters in Redis, so every process counts the same hits."""

    def __init__(self, host: dict) -> None:
        # The channel layer's description of the server (settings.REDIS_HOSTS): a URL, or
        # sentinels that name the primary, so the counters follow it through a failover.
        self._host = host
        # A client per event loop (tests run several), held by its counting script.
        self._scripts: dict[asyncio.AbstractEventLoop, object] = {}

    def _script(self):
        from channels_redis.utils import create_pool
        from redis import asyncio as aioredis

        loop = asyncio.get_running_loop()
        script = self._scripts.get(loop)
        if script is None:
            # The pool the channel layer would make for the same host: same timeouts, same
            # way of finding the primary.
            client = aioredis.Redis(connection_pool=create_pool(self._host))
            script = self._scripts[loop] = client.register_script(_COUNT_HITS)
        return script

    async def incr(self, key: str, window: int, seconds: int) -> int:
        (count,) = await self.incr_many([(key, window, seconds)])
        return count

    async def incr_many(self, hits: list[tuple[str, int, int]]) -> list[int]:
        """Count many hits in one round trip; return each key's count after its hit."""
        replies = await self._script()(
            keys=[f"{settings.CHAT_RATE_LIMIT_PREFIX}:{key}:{window}" for key, window, _ in hits],
            args=[seconds + 1 for _, _, seconds in hits],
        )
        return [int(count) for count in replies]


# One command for all the hits of a batch: a pipeline of INCR and EXPIRE per hit cost the
# event loop more than the batch's database work. A key lives for its window (plus a
# second), counted from its first hit.
_COUNT_HITS = """
local counts = {}
for i, key in ipairs(KEYS) do
    counts[i] = redis.call('INCR', key)
    if counts[i] == 1 then
        redis.call('EXPIRE', key, ARGV[i])
    end
end
return counts
"""


class RateLimiter:
    """Check hits against the rules of an action; say how long to wait when over."""

    def __init__(self, counter) -> None:
        self.counter = counter

    async def retry_after(
        self, action: str, subject: int | str, rules: tuple[Rule, ...]
    ) -> float | None:
        """Count one hit of a user (or address); None if allowed, else seconds to wait."""
        (wait,) = await self.retry_after_many(action, [subject], rules)
        return wait

    async def retry_after_many(
        self, action: str, subjects: list[int | str], rules: tuple[Rule, ...]
    ) -> list[float | None]:
        """As retry_after for one hit of each subject (repeats count twice), in one trip."""
        return await self.retry_after_each([(action, subject, rules) for subject in subjects])

    async def retry_after_each(
        self, checks: list[tuple[str, int | str, tuple[Rule, ...]]]
    ) -> list[float | None]:
        """As retry_after for each (action, subject, rules), all counted in one trip."""
        now = time.time()
        hits: list[tuple[str, int, int]] = []
        owners: list[tuple[int, Rule]] = []
        for position, (action, subject, rules) in enumerate(checks):
            for rule in rules:
                window = int(now // rule.seconds)
                hits.append((f"{action}:{subject}:{rule.seconds}", window, rule.seconds))
                owners.append((position, rule))
        try:
            counts = await self.counter.incr_many(hits) if hits else []
        except Exception as exc:
            # Limits protect the service; when their store is down, let users chat.
            metrics.REDIS_ERRORS.inc()
            log.warning("rate limit store unavailable: %s", type(exc).__name__)
            return [None] * len(checks)
        waits = [0.0] * len(checks)
        for (position, rule), (_, window, _), count in zip(owners, hits, counts, strict=True):
            if count > rule.limit:
                waits[position] = max(waits[position], (window + 1) * rule.seconds - now)
        return [math.ceil(wait * 10) / 10 if wait > 0 else None for wait in waits]


def _new_limiter() -> RateLimiter:
    hosts = settings.REDIS_HOSTS
    return RateLimiter(RedisCounter(hosts[0]) if hosts else MemoryCounter())


limiter = per_process(_new_limiter)
limiter.__doc__ = "Return the process's rate limiter, on Redis when REDIS_URL is set."


def rate_limited(action: str, wait: float, client_id: str | None = None) -> ChatError:
    """Build the `rate_limited` error of an action, with how long to wait."""
    return ChatError(
        ErrorCode.RATE_LIMITED,
        f"too many {action} requests; wait {wait} s",
        client_id=client_id,
        retry_after=wait,
    )


async def check_rate(action: str, subject: int | str, rules: str) -> None:
    """Count one hit; raise `rate_limited` with `retry_after` when over the rules."""
    wait = await limiter().retry_after(action, subject, parse_rules(rules))
    if wait is not None:
        raise rate_limited(action, wait)


def check_rate_sync(action: str, subject: int | str, rules: str) -> None:
    """As check_rate, from synchronous code (views, services)."""
    async_to_sync(check_rate)(action, subject, rules)
