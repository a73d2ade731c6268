"""Calls that would each wait for the database thread, made together as one call.

The socket's database work runs on one thread per process, one call at a time, and much of
a small call's cost is the hop to that thread and the ORM building its statements. Calls of
the same kind waiting at the same time (handshakes after a restart, tokens checked) are
made as one: the first caller starts a runner on the event loop; those who come while it
works wait for its next round, which takes all of them (up to a bound) at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BatchedCalls(Generic[T, R]):
    """Queue an event loop's calls of one kind; run those waiting together in one round.

    `run` gets the arguments waiting, in order (at most `most`), and answers each with a
    result or with the exception to raise to its caller. An exception `run` raises is
    raised to every caller of that round.
    """

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R | Exception]]], most: int):
        self.run = run
        self.most = most
        self.waiting: deque[tuple[T, asyncio.Future]] = deque()
        self.runner: asyncio.Task | None = None

    async def call(self, argument: T) -> R:
        """Wait for this argument's round; return its result or raise its exception."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((argument, future))
        if self.runner is None or self.runner.done():
            self.runner = asyncio.create_task(self._rounds())
        return await future

    async def _rounds(self) -> None:
        while self.waiting:
            batch = []
            while self.waiting and len(batch) < self.most:
                argument, future = self.waiting.popleft()
                if not future.done():  # else its caller left while it waited
                    batch.append((argument, future))
            if not batch:
                continue
            try:
                answers = await self.run([argument for argument, _ in batch])
            except Exception as error:
                answers = [error] * len(batch)
            for (_, future), answer in zip(batch, answers, strict=True):
                if future.done():
                    continue  # its caller left meanwhile
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
