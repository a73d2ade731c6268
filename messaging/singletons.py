"""Objects made once per process or once per event loop, on first use, with one reset.

The socket registry, the rate limiter, the send queue, the send batch's caches, the push
client, the embedded worker and the health checks' last answers each live as long as their
process (or, for what holds asyncio objects, their event loop). They
are all made here the same way, so that a test can forget every one of them with one call
(`reset_all`) instead of clearing private caches module by module.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_resets: list[Callable[[], None]] = []


def per_process(
    factory: Callable[[], T], *, on_reset: Callable[[T], None] | None = None
) -> Callable[[], T]:
    """Return a function that gives the one object `factory` makes on first use.

    Safe from any thread: threads asking at once get the same object. `on_reset` is handed
    the object a reset forgets (to stop its threads, close its connections).
    """
    made: list[T] = []
    making = threading.Lock()

    def get() -> T:
        if not made:
            with making:
                if not made:
                    made.append(factory())
        return made[0]

    def reset() -> None:
        with making:
            forgotten = list(made)
            made.clear()
        if on_reset is not None:
            for thing in forgotten:
                on_reset(thing)

    _resets.append(reset)
    return get


def per_event_loop(factory: Callable[[], T]) -> Callable[[], T]:
    """Return a function that gives the running loop's object, made on its first use there."""
    made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        if loop not in made:
            made[loop] = factory()
        return made[loop]

    _resets.append(made.clear)
    return get


def reset_all() -> None:
    """Forget every object made so far, so that the next use makes it anew (tests)."""
    for reset in _resets:
        reset()
