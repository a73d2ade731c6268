"""The sockets' rate checks, counted together: one trip to the counters for those waiting.

Every handshake counts a `connect` and most frames count their action; each check alone is
a round trip to Redis and a script call. When a process restarts, thousands of sockets
reconnect and sync at once, and those checks were a twentieth of its CPU. Checks that wait
at the same time are counted in one call (messaging.realtime.batched_calls); a lone check
costs what it did.
"""

from __future__ import annotations

from messaging.domain.ratelimit import limiter, parse_rules, rate_limited
from messaging.realtime.batched_calls import BatchedCalls
from messaging.singletons import per_event_loop

# Checks counted in one call at most: the counting script's keys.
MOST_AT_ONCE = 200

Check = tuple[str, int | str, str]


async def _count_together(checks: list[Check]) -> list[float | None]:
    """Count one hit of each (action, subject, rules); return each one's wait, or None."""
    return await limiter().retry_after_each(
        [(action, subject, parse_rules(rules)) for action, subject, rules in checks]
    )


rate_checks = per_event_loop(lambda: BatchedCalls(_count_together, MOST_AT_ONCE))
rate_checks.__doc__ = "Return this event loop's queue of rate checks to count together."


async def check_rate_together(action: str, subject: int | str, rules: str) -> None:
    """Count one hit; raise `rate_limited` with `retry_after` when over the rules."""
    wait = await rate_checks().call((action, subject, rules))
    if wait is not None:
        raise rate_limited(action, wait)
