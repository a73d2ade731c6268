"""Sockets' rate checks waiting at the same time are counted in one trip, each judged alone."""

import asyncio

import pytest

from messaging.domain.ratelimit import MemoryCounter, RateLimiter
from messaging.protocol import ChatError, ErrorCode
from messaging.realtime import rate_checks


class CountingTrips(MemoryCounter):
    """Counters in memory that remember how many hits each trip carried."""

    def __init__(self) -> None:
        super().__init__()
        self.trips: list[int] = []

    async def incr_many(self, hits):
        self.trips.append(len(hits))
        await asyncio.sleep(0.01)  # a round trip: others queue meanwhile
        return await super().incr_many(hits)


@pytest.fixture
def counter(monkeypatch):
    counter = CountingTrips()
    monkeypatch.setattr(rate_checks, "limiter", lambda: RateLimiter(counter))
    return counter


async def verdict(action: str, user: int, rules: str) -> str:
    try:
        await rate_checks.check_rate_together(action, user, rules)
    except ChatError as error:
        assert error.code == ErrorCode.RATE_LIMITED and error.retry_after > 0
        return "refused"
    return "allowed"


async def test_checks_at_once_take_one_trip_and_each_user_is_judged_by_their_own_hits(counter):
    checks = [("connect", user, "3/60s") for user in range(1, 41) for _ in range(2)]
    checks += [("connect", 1, "3/60s"), ("connect", 1, "3/60s"), ("sync", 1, "1/60s")]
    checks += [("sync", 1, "1/60s")]
    verdicts = await asyncio.gather(*(verdict(*check) for check in checks))
    assert counter.trips == [84]
    # Two each are within 3 a minute; user 1's fourth connect is not; sync counts apart.
    assert verdicts[:80] == ["allowed"] * 80
    assert verdicts[80:] == ["allowed", "refused", "allowed", "refused"]


async def test_checks_arriving_during_a_trip_go_together_in_the_next(counter):
    first = asyncio.create_task(verdict("ping", 7, "5/10s"))
    await asyncio.sleep(0.005)  # its trip is under way
    later = [verdict("ping", user, "5/10s") for user in range(8, 18)]
    assert await asyncio.gather(first, *later) == ["allowed"] * 11
    assert counter.trips == [1, 10]
