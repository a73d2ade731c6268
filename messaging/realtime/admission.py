"""Admit the handshakes a process can finish; give the others a time to come back.

When a process restarts or a proxy drops its connections, every client reconnects at once.
A process that took every handshake would queue them all behind its database work, each
would time out at its client, and the clients' retries (every few seconds) would keep the
queue full: the process would spend its time on handshakes nobody is left to finish and
never come back (docs/performance.md, the reconnect storm). So a process works on at most
`CHAT_HANDSHAKES_AT_ONCE` handshakes; past that it answers at once, before any database
work: it accepts the socket, sends `{"type": "error", "code": "busy", "retry_after": N}` and
closes with 1013 (Try Again Later). Each such answer names a later second than the one
before, at the pace the process finishes handshakes, so a storm's clients come back one
after the other instead of all together.

Turning a handshake away still costs a whole upgrade, and its client comes back for
another. So while every place is taken the process stops taking new connections
(messaging/realtime/accept_pause.py), and a handshake it took before it stopped waits in a
line for a place given back, for at most `CHAT_HANDSHAKE_LINE_WAIT` seconds (the line no
longer than the places): only what overflows the line or waits too long is turned away.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from messaging import metrics
from messaging.realtime.accept_pause import LISTENING, ListeningPorts

CLOSE_TRY_AGAIN_LATER = 1013
# The pace is measured over the last this many handshakes finished while the process was
# saturated, and trusted once it holds at least MEASURED_ENOUGH of them.
PACE_SAMPLES = 200
MEASURED_ENOUGH = 20
# A measured pace older than this says nothing about now (the process's load changed).
PACE_MEMORY_S = 30.0

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class HandshakeGate:
    """Count the handshakes in progress; hand out return times to those turned away."""

    def __init__(
        self,
        at_once: int,
        pace_guess: float,
        min_wait_s: float,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        listening: ListeningPorts | None = None,
    ) -> None:
        self.at_once = at_once
        self.pace_guess = pace_guess
        self.min_wait_s = min_wait_s
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.random = rng or random.Random()
        self.listening = listening
        if listening is not None:
            listening.gate_room = self.room
            listening.resume_at_room = max(1, at_once // 2)
        self.in_progress = 0
        # When handshakes finished while at least half of the places were taken: the pace
        # of a saturated process, which an idle one cannot show.
        self._finished_saturated: deque[float] = deque(maxlen=PACE_SAMPLES)
        self._next_return = 0.0
        # Handshakes waiting for a place, in their order; a done future is one that gave up.
        self._line: deque[asyncio.Future[None]] = deque()
        self._waiting = 0

    def enter(self) -> bool:
        """Take a place for one handshake, or say there is none."""
        if self.in_progress >= self.at_once:
            return False
        self.in_progress += 1
        return True

    def leave(self) -> None:
        """Give back a place: its handshake was answered (opened or refused) or abandoned."""
        if self.in_progress * 2 >= self.at_once:
            self._finished_saturated.append(self.clock())
        while self._line:
            waiting = self._line.popleft()
            if not waiting.done():
                waiting.set_result(None)  # the place goes to it: as many in progress
                self._waiting -= 1
                break
        else:
            self.in_progress -= 1
        if self.listening is not None:
            self.listening.room_made()

    def room(self) -> int:
        """Return how many more handshakes could be worked on or wait in line now."""
        return (self.at_once - self.in_progress) + (self.at_once - self._waiting)

    async def wait_for_place(self, patience_s: float) -> bool:
        """Wait in line for a place given back, at most `patience_s`; say whether one came."""
        if self._waiting >= self.at_once:
            return False
        place = asyncio.get_running_loop().create_future()
        self._line.append(place)
        self._waiting += 1
        try:
            await asyncio.wait([place], timeout=patience_s)
        except asyncio.CancelledError:  # the handshake was given up while it waited
            if place.done():
                self.leave()  # the place came meanwhile: give it to the next
            else:
                self._leave_line(place)
            raise
        if place.done():
            return True
        self._leave_line(place)
        return False

    def _leave_line(self, place: asyncio.Future[None]) -> None:
        place.cancel()  # left in the line: skipped when a place is given back
        self._waiting -= 1
        if self.listening is not None:
            self.listening.room_made()

    def pace(self) -> float:
        """Handshakes a second this process finishes when saturated: measured, if faster.

        Only a faster pace than the guess is believed: while a storm's first wave is turned
        away, answering it takes the process's time, and the handshakes it finishes then
        are fewer than it finishes once the clients come back at their turns.
        """
        samples = self._finished_saturated
        now = self.clock()
        if len(samples) >= MEASURED_ENOUGH and now - samples[-1] < PACE_MEMORY_S:
            span = samples[-1] - samples[0]
            if span > 0:
                return max(self.pace_guess, (len(samples) - 1) / span)
        return self.pace_guess

    def return_in(self) -> int:
        """Give a turned-away client its whole seconds to wait, a later turn than the last one."""
        now = self.clock()
        turn = max(self._next_return, now + self.min_wait_s)
        wait = turn - now
        if wait > self.max_wait_s:
            # More are waiting than the longest wait covers: these come back spread over its
            # second half and are given turns then.
            return math.ceil(self.random.uniform(self.max_wait_s / 2, self.max_wait_s))
        self._next_return = turn + 1 / self.pace()
        # Whole seconds, rounded up (the client adds up to a second of jitter); the
        # tolerance keeps a sum of fractions that lands on a second from counting the next.
        return math.ceil(wait - 1e-6)


class AdmitHandshakes:
    """ASGI middleware: let a socket's handshake through the gate, or answer `busy`."""

    def __init__(self, inner, gate: HandshakeGate | None = None) -> None:
        self.inner = inner
        self.line_wait_s = settings.CHAT_HANDSHAKE_LINE_WAIT
        self.gate = gate or HandshakeGate(
            at_once=settings.CHAT_HANDSHAKES_AT_ONCE,
            pace_guess=settings.CHAT_HANDSHAKES_PACE_GUESS,
            min_wait_s=settings.CHAT_BUSY_MIN_WAIT,
            max_wait_s=settings.CHAT_BUSY_MAX_WAIT,
            listening=LISTENING,
        )

    async def __call__(self, scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        gate = self.gate
        # The handshake's deadline counts from here (messaging/realtime/auth.py), the wait in
        # line included, as daphne's own handshake timeout does.
        scope = dict(scope, arrived_at=time.monotonic())
        if not gate.enter() and not await gate.wait_for_place(self.line_wait_s):
            return await answer_busy(receive, send, gate.return_in())
        answered = False

        async def send_watched(message: dict[str, Any]) -> None:
            nonlocal answered
            if not answered and message["type"] in ("websocket.accept", "websocket.close"):
                answered = True
                gate.leave()
            await send(message)

        try:
            await self.inner(scope, receive, send_watched)
        finally:
            if not answered:
                gate.leave()


async def answer_busy(receive: Receive, send: Send, retry_after: int) -> None:
    """Turn a handshake away before any work: `busy` with the wait, then close with 1013."""
    metrics.HANDSHAKES_REFUSED.labels("busy").inc()
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    frame = {
        "type": "error",
        "code": "busy",
        "detail": "the server is busy: try again after retry_after seconds",
        "retry_after": retry_after,
    }
    await send({"type": "websocket.send", "text": json.dumps(frame)})
    await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
