"""A queue that costs an idle socket nothing: no deque or future while it is empty.

An asyncio.Queue allocates four deques when it is made, about 2.5 KB. Every socket had
three (daphne's frames for the application, the channel layer's buffer of its messages,
and before this the bound on waiting frames), although an idle socket has nothing in them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class LightQueue:
    """A queue for one event loop; with a maxsize, a full queue drops its oldest item.

    Dropping the oldest is what channels-redis does with a channel's buffer that its reader
    does not empty (a socket that stopped reading): the process must not grow without end.
    """

    __slots__ = ("getters", "items", "maxsize")

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self.items: deque[Any] | None = None
        self.getters: deque[asyncio.Future] | None = None

    def put_nowait(self, item: Any) -> None:
        if self.items is None:
            self.items = deque()
        elif self.maxsize and len(self.items) >= self.maxsize:
            self.items.popleft()
        self.items.append(item)
        # The item stays queued until a getter takes it: a getter cancelled after this
        # wake-up leaves it for the next one, as in asyncio.Queue.
        self._wake_one()

    def qsize(self) -> int:
        return len(self.items) if self.items else 0

    def empty(self) -> bool:
        return not self.items

    def full(self) -> bool:
        return bool(self.maxsize) and self.qsize() >= self.maxsize

    def get_nowait(self) -> Any:
        if not self.items:
            raise asyncio.QueueEmpty
        item = self.items.popleft()
        if not self.items:
            self.items = None
        return item

    async def get(self) -> Any:
        while not self.items:
            getter = asyncio.get_running_loop().create_future()
            if self.getters is None:
                self.getters = deque()
            self.getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                if self.getters and getter in self.getters:
                    self.getters.remove(getter)
                elif self.items:
                    self._wake_one()  # It was woken for an item it will not take.
                raise
            finally:
                if not self.getters:
                    self.getters = None
        return self.get_nowait()

    def _wake_one(self) -> None:
        while self.getters:
            getter = self.getters.popleft()
            if not getter.done():
                getter.set_result(None)
                break
        if not self.getters:
            self.getters = None
