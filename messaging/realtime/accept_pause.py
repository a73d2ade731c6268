"""Take no more connections than the handshake gate has room for; the kernel holds the rest.

A connection the process takes costs it an HTTP request and a WebSocket upgrade, whether
its handshake is then worked on or turned away as `busy` (about 1.5 ms each, most of a
storm's CPU: docs/performance.md, the reconnect storm). So each turn of a listening port
takes no more connections than the gate (messaging/realtime/admission.py) has room for: its
free places and free spots in its waiting line, less the connections taken whose request
has not come yet (Twisted takes a hundred or more each time the loop finds the port
readable, before the first of them has sent its request). With no room it stops taking
connections: the kernel keeps up to the listen backlog of them, and drops the others' SYNs,
which the clients' own TCP sends again at no cost to the process. It takes them again once
there is room for half as many handshakes as the gate has places (a handshake finished, a
request heard), or after `longest_pause_s` whatever happens, so that handshakes stuck on
something never stop a process from listening.

A connection taken counts as not heard from for a second at most, so connections that send
nothing stop the process for a second at most. nginx opens a connection to a process only
with a whole request to send; a process's port must not be open to clients directly
(docs/operations.md binds it to 127.0.0.1). Plain HTTP waits in the backlog too while the
process is paused: it is saturated by handshakes then anyway.

The ports are daphne's listening ports (Twisted's), registered by chatsite/daphne_patches.py,
which also reports each connection taken and heard from; without daphne (tests through
channels' communicator) there are none and nothing pauses.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from messaging import metrics

# Long enough for a full gate's handshakes to finish on a loaded process; short enough that
# a process whose handshakes all hang listens again well before a proxy's connect timeout.
LONGEST_PAUSE_S = 2.0
# A taken connection counts as unheard for this long at most: a storm's clients send their
# request at once, and one that sends nothing must not keep lowering what is taken.
UNHEARD_MEMORY_S = 1.0


class Listening(Protocol):
    """What a Twisted listening port offers to take connections, a turn at a time."""

    numberAccepts: int  # Twisted's names: connections taken in one turn
    connected: bool  # listening (False once it stopped)

    def doRead(self) -> None: ...

    def stopReading(self) -> None: ...

    def startReading(self) -> None: ...


class ListeningPorts:
    """The process's listening ports, taking only what the handshake gate has room for."""

    def __init__(
        self,
        longest_pause_s: float = LONGEST_PAUSE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.longest_pause_s = longest_pause_s
        self.clock = clock
        self.ports: list[Listening] = []
        # How many more handshakes the gate can take now, and the room that makes it worth
        # taking connections again; set by the gate.
        self.gate_room: Callable[[], int] | None = None
        self.resume_at_room = 1
        # When each connection taken and not heard from yet was taken, oldest first.
        self._unheard: deque[float] = deque()
        self.paused = False
        self._timeout: asyncio.TimerHandle | None = None

    def add(self, port: Listening) -> None:
        """Register a port that daphne listens on; each turn takes only what there is room for."""
        self.ports.append(port)
        take = port.doRead

        def take_what_fits() -> None:
            room = self.room()
            if room is not None:
                if room <= 0:
                    self.pause()
                    return
                port.numberAccepts = min(port.numberAccepts, room)
            take()

        port.doRead = take_what_fits

    def room(self) -> int | None:
        """Return how many connections may be taken now (None: no gate, no bound)."""
        if self.gate_room is None:
            return None
        return self.gate_room() - self.unheard()

    def unheard(self) -> int:
        """Return how many connections taken within UNHEARD_MEMORY_S have sent no request."""
        unheard = self._unheard
        forgotten = self.clock() - UNHEARD_MEMORY_S
        while unheard and unheard[0] < forgotten:
            unheard.popleft()
        return len(unheard)

    def taken(self) -> float:
        """Count a connection taken whose request has not come yet; return its time."""
        taken_at = self.clock()
        self._unheard.append(taken_at)
        return taken_at

    def heard(self, taken_at: float) -> None:
        """Count the request of the connection taken at `taken_at` come (or it gone without)."""
        try:
            self._unheard.remove(taken_at)
        except ValueError:
            return  # forgotten already: it no longer counts
        self.room_made()

    def pause(self) -> None:
        """Stop taking connections, for at most `longest_pause_s`."""
        if self.paused:
            return
        listening = [port for port in self.ports if getattr(port, "connected", True)]
        if not listening:
            return
        # Stopped by connections not heard from yet alone: they count for a second at most.
        full = self.gate_room is None or self.gate_room() <= 0
        wait = self.longest_pause_s if full else min(self.longest_pause_s, UNHEARD_MEMORY_S)
        self._timeout = asyncio.get_running_loop().call_later(wait, self.resume)
        self.paused = True
        metrics.ACCEPT_PAUSES.inc()
        for port in listening:
            port.stopReading()

    def room_made(self) -> None:
        """Take connections again if the gate has room enough for it to be worth a turn."""
        if self.paused and (self.room() or 0) >= self.resume_at_room:
            self.resume()

    def resume(self) -> None:
        """Take connections again (on the ports still listening)."""
        if not self.paused:
            return
        if self._timeout is not None:
            self._timeout.cancel()
            self._timeout = None
        self.paused = False
        for port in self.ports:
            if getattr(port, "connected", True):
                port.startReading()


# One per process: daphne runs one server, and the gate of its one application paces it.
LISTENING = ListeningPorts()
