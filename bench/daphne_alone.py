"""Daphne alone under the bigdb phase's clients: the least a read served by one daphne takes.

bench/bigdb.py runs it after the product's reads, on the same cores: one daphne serving
bench/bare_app.py (an application that answers at once) pinned to core 0, and from core 1
the phase's own clients time, with 1, 20 and 100 at once, the three calls the product's
reads are made of: an HTTP request (inbox, history, search), a socket until its first
frame (`ready`) and a frame answered on an open socket (`sync`). A read is its call and its
own work, so under N clients its p99 is at least the call's, and one process serving N of
them one after another takes at least N times the call's CPU. The report says, for each
target of issue 21 under 100 clients, whether it lies below that floor and how much CPU a
read may otherwise spend beyond daphne's. On its own (a daphne already serving the app):

    python bench/daphne_alone.py --url http://127.0.0.1:PORT --server-pid PID --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

CALLS = {
    "request": "an HTTP request",
    "open": "a socket until its first frame",
    "frame": "a frame answered on an open socket",
}
# The call each read of the phase is made of (every other read is an HTTP request).
CALL_OF_READ = {"ready": "open", "sync_from_0": "frame", "sync_recent": "frame"}
# As a `sync` of the product is asked for: the echo is as long.
FRAME = '{"type":"sync","after":0}'
# The application asks for no login: a socket is opened as bigdb opens a user's, token empty.
NO_USER = {"token": ""}


# chatsite/settings.py: CHAT_LISTEN_BACKLOG's default, which the product's daphne listens with.
PRODUCT_BACKLOG = int(os.environ.get("CHAT_LISTEN_BACKLOG") or 4096)


def call_of(read: str) -> str:
    """Return the call (a key of CALLS) that `read` is made of."""
    return CALL_OF_READ.get(read, "request")


def serve_and_measure(runner, *, rounds: str, budget: str) -> dict:
    """Serve bench/bare_app.py with one daphne on core 0, time its calls from core 1."""
    port = runner.free_port()
    proc = runner.start_server(
        "daphne-alone",
        [
            runner.DAPHNE,
            # The listen backlog the product's daphne has (CHAT_LISTEN_BACKLOG, 4096): with
            # Twisted's 50, 100 clients connecting at once lose SYNs and wait a second.
            *("-e", f"tcp:port={port}:interface={runner.HOST}:backlog={PRODUCT_BACKLOG}"),
            "--proxy-headers",
            # As the product's daphne is started by the phase.
            *os.environ.get("BENCH_DAPHNE_ARGS", "").split(),
            "bare_app:application",
        ],
        cwd=BENCH,
        env=dict(os.environ),
        port=port,
        health="/",
    )
    out = runner.TMP / "daphne-alone.json"
    try:
        runner.run(
            runner.pinned(
                1,
                [
                    *(runner.PY, str(BENCH / "daphne_alone.py")),
                    *("--url", f"http://{runner.HOST}:{port}", "--server-pid", str(proc.pid)),
                    *("--rounds", rounds, "--read-budget", budget, "--out", str(out)),
                ],
            ),
            cwd=ROOT,
            timeout=600,
        )
    finally:
        runner.stop(proc)
    return json.loads(out.read_text())


async def measure(url: str, server_pid: int, rounds: int, budget: float) -> dict:
    """Time each call with 1, 20 and 100 clients at once, as bigdb.measure times reads."""
    import aiohttp
    from bigdb import CONCURRENCY, _open, _timed
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    ws_url = url.replace("http://", "ws://") + "/ws/chat/"
    calls: dict[str, dict[str, dict]] = {call: {} for call in CALLS}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def request(_: int) -> bool:
            async with session.get(url + "/api/blocks/") as answer:
                await answer.read()
                return answer.status == 200

        async def open_socket(_: int) -> bool:
            async with connect(ws_url, max_size=None) as socket:
                return json.loads(await socket.recv()).get("type") == "ready"

        for count in CONCURRENCY:
            sockets = []
            try:
                try:
                    for _ in range(count):
                        # Its first frame read, tried again after a refusal.
                        sockets.append(await _open(connect, ws_url, NO_USER))
                except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                    # Measured so far is kept; the report has no floor for the rest.
                    print(f"daphne alone: {count} sockets could not be opened: {exc!r}")
                    break
                frame = _echoed_on(sockets)
                repeat = max(rounds, math.ceil(rounds * 25 / count))
                for name, call in (("request", request), ("open", open_socket), ("frame", frame)):
                    calls[name][str(count)] = await _timed(call, count, repeat, budget, server_pid)
                    print(f"daphne alone {name} x{count}: {calls[name][str(count)]}", flush=True)
            finally:
                for socket in sockets:
                    await socket.close()
    return {"calls": calls}


def _echoed_on(sockets: list):
    """Return the call of client i: a frame on its socket, True when it comes back."""

    async def frame(i: int) -> bool:
        await sockets[i].send(FRAME)
        return await sockets[i].recv() == FRAME

    return frame


def floor_of(alone: dict, read: str, limit_ms: float, clients: int) -> str:
    """Say whether a p99 target under `clients` clients lies below what daphne alone takes."""
    figures = (alone.get("calls") or {}).get(call_of(read), {}).get(str(clients))
    if not figures:
        return ""
    least_cpu = clients * figures["cpu_ms"]
    if least_cpu >= limit_ms:
        return (
            f"; below daphne alone: {clients} x {figures['cpu_ms']} ms of CPU for "
            f"{CALLS[call_of(read)]} = {least_cpu:.0f} ms"
        )
    if figures["p99_ms"] >= limit_ms:
        return (
            f"; below daphne alone with these clients: {CALLS[call_of(read)]} "
            f"{figures['p99_ms']} ms at p99"
        )
    room = (limit_ms - figures["p99_ms"]) / clients
    return f"; leaves a read {room:.2f} ms of CPU beyond daphne's"


def report_lines(alone: dict) -> list[str]:
    """The table of daphne alone's calls, under the phase's table."""
    from bigdb import CONCURRENCY

    lines = [
        "",
        "Daphne alone (bench/bare_app.py, an application that answers at once; the same "
        "clients and cores), the least each kind of read takes:",
        "",
        "| call | "
        + " | ".join(f"{count} client{'s' * (count > 1)} p50 / p99" for count in CONCURRENCY)
        + " | server CPU a call, "
        + " / ".join(map(str, CONCURRENCY))
        + " |",
        "|---|" + "---|" * (len(CONCURRENCY) + 1),
    ]
    for call, text in CALLS.items():
        figures = [(alone.get("calls") or {}).get(call, {}).get(str(n)) for n in CONCURRENCY]
        cells = [f"{f['p50_ms']} / {f['p99_ms']} ms" if f else "-" for f in figures]
        cpu = " / ".join(f"{f['cpu_ms']}" if f else "-" for f in figures)
        lines.append(f"| {text} | " + " | ".join(cells) + f" | {cpu} ms |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--read-budget", type=float, default=20.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    result = asyncio.run(measure(args.url, args.server_pid, args.rounds, args.read_budget))
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
