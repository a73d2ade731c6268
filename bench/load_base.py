"""What the load generators of `make bench` share: clocks, figures, the meter and a harness.

bench/loadgen.py (DMs) and bench/group_load.py (groups) drive the product the same way:
sockets of the shared client (messaging/client/), frames counted as they arrive, open
loops paced from a schedule and stopped when the server falls behind, closed loops of
slots, phases settled before the next, and a final check that syncs every user from 0.
What differs (what a message is, who receives it) stays in each; the rest is here.

Every loop here is bounded in count and time; the only network peer is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from messaging.client import ChatClient

try:  # The generator's own speed; the servers are not affected.
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None
if os.environ.get("BENCH_NO_UVLOOP"):
    uvloop = None

now = time.monotonic

# An open-loop phase stops sending when its messages arrive this late (median of the
# latest ones): the server is overloaded, and more sends would only lengthen its queue.
MAX_BEHIND_S = 2.0
# BENCH_DEFLATE=1: the product's sockets offer permessage-deflate, as browsers do (the
# figures of docs/performance.md are without it unless said).
PRODUCT_COMPRESSION = "deflate" if os.environ.get("BENCH_DEFLATE", "") not in ("", "0") else None


# --------------------------------------------------------------------------- figures


def _ms(at: float | None, since: float) -> float | None:
    return None if at is None else round((at - since) * 1000, 2)


def percentiles(values: list[float]) -> dict[str, float | None]:
    """Return p50/p95/p99/max of values (nearest rank), in the values' unit."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]

    return {
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def rounded_percentiles(values: list[float]) -> dict[str, float | None]:
    """Return `percentiles` of values, rounded for the report."""
    return {k: _round(v) for k, v in percentiles(values).items()}


def _round(value):
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    return round(value, 2)


class Meter:
    """CPU and memory of the server under test, of PostgreSQL and Redis, and of this process."""

    def __init__(self, server_pid: int | None) -> None:
        self.server = psutil.Process(server_pid) if server_pid else None
        self.me = psutil.Process()
        self.postmaster = None
        self.redis = []
        for proc in psutil.process_iter(["name", "ppid"]):
            try:
                name = proc.info["name"] or ""
                if name == "redis-server":
                    self.redis.append(proc)
                elif name.startswith("postgres") and psutil.Process(
                    proc.info["ppid"]
                ).name() not in (
                    "postgres",
                    "postmaster",
                ):
                    self.postmaster = proc
            except psutil.Error:
                continue

    def _infra_cpu(self) -> float:
        total = 0.0
        for proc in self.redis:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        if self.postmaster is not None:
            try:
                times = self.postmaster.cpu_times()
                # Backends that exited are reaped by the postmaster: their time is here.
                total += times.user + times.system + times.children_user + times.children_system
                for child in self.postmaster.children():
                    try:
                        ctimes = child.cpu_times()
                        total += ctimes.user + ctimes.system
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
        return total

    def sample(self) -> dict[str, float]:
        sample = {"t": now(), "infra": self._infra_cpu()}
        machine = psutil.cpu_times()
        sample["busy"] = (
            machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        )
        sample["steal"] = getattr(machine, "steal", 0.0)
        mine = self.me.cpu_times()
        sample["gen"] = mine.user + mine.system
        if self.server is not None:
            try:
                times = self.server.cpu_times()
                sample["server"] = times.user + times.system
                sample["rss"] = self.server.memory_info().rss
            except psutil.Error:
                sample["server"] = float("nan")
                sample["rss"] = float("nan")
        return sample

    def server_busy(self, seconds: float) -> float:
        """Return the server's CPU use over a short interval, as a fraction of one core."""
        if self.server is None:
            return 0.0
        try:
            before = self.server.cpu_times()
        except psutil.Error:
            return 0.0
        time.sleep(seconds)
        after = self.server.cpu_times()
        return (after.user + after.system - before.user - before.system) / seconds


def cpu_use(start: dict[str, float], end: dict[str, float]) -> dict[str, float]:
    """Return the CPU seconds of a phase: the server's, PostgreSQL and Redis's, this
    generator's, and everything else the machine ran meanwhile (`foreign`)."""
    server = end.get("server", 0) - start.get("server", 0)
    infra = end["infra"] - start["infra"]
    gen = end["gen"] - start["gen"]
    busy = end["busy"] - start["busy"]
    return {
        "wall": end["t"] - start["t"],
        "server": server,
        "infra": infra,
        "gen": gen,
        # A server that exited has no CPU time (nan): leave it out of the others'.
        "foreign": busy - gen - infra - (server if server == server else 0),
    }


def cpu_fields(use: dict[str, float], end: dict[str, float]) -> dict[str, float | None]:
    """Return the report's CPU and memory figures of a phase, from `cpu_use`."""
    wall = use["wall"]
    return {
        "server_cpu_pct": _round(100 * use["server"] / wall) if wall else None,
        "server_rss_mb": _round(end.get("rss", 0) / 2**20),
        "generator_cpu_pct": _round(100 * use["gen"] / wall) if wall else None,
        # Everything else this machine ran meanwhile (another user's tests, say):
        # far above 0 means the figures of this phase are disturbed.
        "other_cpu_pct": _round(100 * use["foreign"] / wall) if wall else None,
    }


class Budget:
    """The time this run may take; partial results are saved as phases finish."""

    def __init__(self, seconds: float, out: Path) -> None:
        self.deadline = now() + seconds
        self.out = out

    def left(self) -> float:
        return self.deadline - now()

    def allows(self, seconds: float) -> bool:
        return self.left() > seconds

    def save(self, result: dict) -> None:
        self.out.write_text(json.dumps(dict(result, partial=True), indent=2))

    def skips(self, result: dict, plan: dict, duration: float) -> bool:
        """Tell whether an open-loop step is left out: a phase before saturated, or no time."""
        # Higher rates than one the server could not keep up with only grow its backlog.
        needed = duration + plan.get("drain_s", 3) + plan.get("settle_max_s", 10) + 5
        return any(p.get("saturated") for p in result["phases"]) or not self.allows(needed)

    def check_times(self, plan: dict) -> tuple[float, float]:
        """Return how long the final check waits for answers, and its deadline."""
        return (
            min(plan.get("answer_wait_s", 30), max(self.left() - 30, 5)),
            now() + max(self.left() - 5, 10),
        )


def apply_check(result: dict) -> None:
    """Copy the final check's counts of each phase into the phase's report."""
    for phase in result["phases"]:
        counts = result["check"]["per_phase"].get(phase["name"], {})
        phase["lost"] = counts.get("lost", 0)
        phase["push_missed_healed_by_sync"] = counts.get("push_missed", 0)


def stored_rows(db_url: str, query: str, params: tuple) -> list[tuple]:
    """Return the rows of one query on the product's database (the final check)."""
    import psycopg

    with psycopg.connect(db_url) as db:
        return db.execute(query, params).fetchall()


# How every generator's socket is opened (`websockets.connect`): no keep-alive pings of
# its own, and room for a full sync page and a burst of pushes.
SOCKET_OPTIONS = {
    "open_timeout": 30,
    "ping_interval": None,
    "close_timeout": 2,
    "max_size": 2**24,
    "max_queue": 4096,
}


def product_client(url: str, token: str, on_frame: Callable[[dict], None]) -> ChatClient:
    """Return a product socket of the shared client; each frame goes to `on_frame`."""
    return ChatClient(
        url,
        token,
        # Nothing reads `events()` here: the frames are counted as they arrive, and the
        # final check syncs every user from 0.
        max_events=0,
        on_frame=on_frame,
        compression=PRODUCT_COMPRESSION,
        **SOCKET_OPTIONS,
    )


# --------------------------------------------------------------------------- the harness


class LoadHarness:
    """Sends in flight, frames counted, and the loops every load generator runs."""

    def __init__(self, args, *, recent: int, recent_min: int) -> None:
        self.args = args
        self.recs: dict = {}
        self.waiters: dict[str, asyncio.Future] = {}
        self.errors: dict[str, int] = {}
        self.frames_in = 0
        self.recent: deque[float] = deque(maxlen=recent)  # latest delivery latencies, s
        self.recent_min = recent_min
        self.current_phase = ""
        self.meter = Meter(args.server_pid)

    def _on_error(self, frame: dict) -> None:
        code = frame.get("code", "?")
        self.errors[code] = self.errors.get(code, 0) + 1
        cid = frame.get("client_id")
        rec = self.recs.get(cid) if cid else None
        if rec is not None and rec.err is None:
            rec.err = code
            self._done(cid)

    def _done(self, cid: str) -> None:
        waiter = self.waiters.pop(cid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _watch_closed(self, socket) -> None:
        await socket.chat.wait_closed()
        socket.closed = True

    def _is_answered(self, rec) -> bool:
        return rec.ack is not None or rec.err is not None

    async def _answered(self, rec, cap: float) -> bool:
        deadline = now() + cap
        while now() < deadline:
            if self._is_answered(rec):
                return True
            await asyncio.sleep(0.05)
        return False

    # --- phases

    async def _gather_profiled(self, phase: str, duration: float, slots: Iterable[Awaitable]):
        """Run a closed loop's slots, the server profiled if asked; return the end sample."""
        profiler = self._start_profiler(phase, duration)
        await asyncio.gather(*slots)
        end_sample = self.meter.sample()
        if profiler is not None:
            await asyncio.to_thread(profiler.wait, 60)
        return end_sample

    async def _pace(
        self, t0: float, total: int, interval: float, send: Callable[[int, float], Awaitable]
    ) -> float | None:
        """Call `send(k, due)` for k < total at t0 + k * interval; return when it stopped
        early because the server fell behind (seconds into the phase), else None."""
        next_check = t0 + 1
        k = 0
        while k < total:
            t = now()
            if t >= next_check:
                next_check = t + 0.25
                if self._overloaded(t - t0):
                    # Far behind schedule: more sends would only queue up in the server.
                    return t - t0
            while k < total and t0 + k * interval <= t:
                await send(k, t0 + k * interval)
                k += 1
                t = now()
            if k < total:
                wait = t0 + k * interval - now()
                if wait > 0:
                    # Event-loop timers have millisecond resolution: below that, sleeping
                    # would spin; the messages due meanwhile go out together, timed from
                    # schedule.
                    await asyncio.sleep(max(wait, 0.001))
        return None

    def _overloaded(self, elapsed: float) -> bool:
        """Tell whether recent messages reach their recipients MAX_BEHIND_S after schedule,
        or none has arrived at all that long into the phase."""
        if len(self.recent) >= self.recent_min:
            ordered = sorted(self.recent)
            return ordered[len(ordered) // 2] > MAX_BEHIND_S
        return elapsed > MAX_BEHIND_S + 1 and not self.recent

    async def settle(self, limit: float) -> bool:
        """Wait until the server is quiet: no frame for 0.5 s and under 30 % of a core.

        Return False when it is still delivering after `limit` seconds (a backlog).
        Lost messages do not count: a server that drops instead of queueing settles.
        """
        deadline = now() + limit
        while now() < deadline:
            frames = self.frames_in
            busy = await asyncio.to_thread(self.meter.server_busy, 0.5)
            if frames == self.frames_in and busy < 0.3:
                return True
        return False

    def _start_profiler(self, phase: str, duration: float):
        if not self.args.profile_out or phase != self.args.profile_phase:
            return None
        if not self.args.server_pid:
            return None
        spy = Path(sys.executable).with_name("py-spy")
        out = Path(self.args.profile_out)
        command = [
            str(spy),
            "record",
            "--pid",
            str(self.args.server_pid),
            "--duration",
            str(max(1, int(duration) - 1)),
            "--rate",
            os.environ.get("BENCH_PROFILE_RATE", "200"),
            "--format",
            "raw",
            "--output",
            str(out.with_suffix(".txt")),
            "--nonblocking",
            # Only the thread holding the GIL: where the server's CPU goes, not its waits.
            "--gil",
        ]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # --- the final check

    async def _wait_answered(self, answer_wait: float) -> None:
        """Wait (bounded) until every send has its ack or its refusal."""
        answered_by = now() + answer_wait
        while now() < answered_by:
            if not any(
                r.sent is not None and r.ack is None and r.err is None for r in self.recs.values()
            ):
                break
            await asyncio.sleep(0.2)

    async def _sync_each(
        self, sockets: list, deadline: float, fetch: Callable[[object], Awaitable[set[str]]]
    ) -> tuple[dict[int, set[str]], list[str], float]:
        """Page every open socket's user through `sync` from 0, 20 at a time, by `deadline`.

        Return the client_ids each could see (by socket index), the syncs that failed,
        and the seconds it took.
        """
        gate = asyncio.Semaphore(20)
        synced: dict[int, set[str]] = {}
        failed: list[str] = []

        async def one(socket) -> None:
            async with gate:
                try:
                    left = deadline - now()
                    if left <= 0:
                        raise TimeoutError("no time left")
                    synced[socket.index] = await asyncio.wait_for(fetch(socket), left)
                except Exception as exc:
                    failed.append(f"{socket.name}: {type(exc).__name__}")

        started = now()
        await asyncio.gather(*(one(s) for s in sockets if not s.closed))
        return synced, failed, now() - started


# --------------------------------------------------------------------------- the command


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every load generator takes."""
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT")
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--profile-out", help="py-spy the server during one phase")
    parser.add_argument("--profile-phase", default="closed", help="the phase to profile")
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget", type=float, default=600, help="seconds for the whole run")


def check_url(parser: argparse.ArgumentParser, url: str) -> None:
    """Refuse any server but one on 127.0.0.1."""
    if not url.startswith("ws://127.0.0.1:"):
        parser.error("the benchmark only drives servers on 127.0.0.1")


def run_and_write(args, runner: Callable[..., Awaitable[dict]], *inputs) -> None:
    """Run `runner(args, *inputs)` on the fastest event loop here; write its result."""
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(runner(args, *inputs))
    result["generator"] = {
        "pid": os.getpid(),
        "event_loop": "uvloop" if uvloop is not None else "asyncio",
        "cpu_affinity": psutil.Process().cpu_affinity(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
