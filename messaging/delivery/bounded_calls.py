"""Calls of Redis bounded in time by giving them up, not by waiting for their cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# Calls given up on, kept until they end (the event loop holds only weak references).
_left: set[asyncio.Future] = set()


class NotAnswered(RedisTimeoutError, TimeoutError):
    """A call given up on: a Redis timeout to the layer's callers, a TimeoutError to others."""


async def within(call: Awaitable[Any], seconds: float, what: str) -> Any:
    """Await `call` for at most `seconds`; past that, cancel it and raise NotAnswered at once.

    Not asyncio.wait_for, which waits for the cancelled call to end: a call of redis-py on a
    connection that its server closed can outlive its cancellation (seen in a Sentinel
    switchover, where a process's one read then waited forever and its sockets were never
    told to sync). Such a call is left to end by itself; its outcome is dropped.
    """
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        _leave(task)
        raise
    if done:
        return task.result()
    _leave(task)
    raise NotAnswered(f"{what} was not answered within {seconds:g} s")


def _leave(task: asyncio.Future) -> None:
    task.cancel()
    _left.add(task)
    task.add_done_callback(_drop_left)


def _drop_left(task: asyncio.Future) -> None:
    _left.discard(task)
    if task.cancelled():
        return
    failure = task.exception()
    # A late failure of Redis is not news (the call was given up on); anything else is a bug.
    if failure is not None and not isinstance(failure, (RedisError, OSError)):
        log.warning("a call given up on failed later: %r", failure)
