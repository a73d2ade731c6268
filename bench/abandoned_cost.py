"""What handshakes whose clients already left cost one daphne process, against live ones.

In a reconnect storm the clients that wait in the listen queue past their timeout close
their connection, and the process reads their requests when their turn comes anyway
(messaging/realtime/abandoned.py). This starts one daphne serving the product in the
working directory, on the database of DATABASE_URL and the Redis of REDIS_URL, stops it
(SIGSTOP), makes COUNT connections that each send a socket's upgrade request (a user's
bearer token from USERS.json, written by bench/product_users.py) and close at once, lets it
run again (SIGCONT) and reads the CPU it spent until it was idle again. Then, for
comparison, COUNT handshakes of clients that wait for `ready`, each socket closed after.
Prints the process's CPU per handshake of each kind. Run from the root of the checkout to
measure, with the bench's users in its database:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chat_bench \\
    REDIS_URL=redis://127.0.0.1:6379/2 \\
        .venv/bin/python bench/abandoned_cost.py --users USERS.json [--count 1000]

Only 127.0.0.1; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_CPU_S = 0.002  # less CPU than this over IDLE_WINDOW_S: the process has finished
IDLE_WINDOW_S = 0.5
RAISED_LIMITS = ("CHAT_CONNECT_RATE",)


def cpu_s(pid: int) -> float:
    """Return the user and system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_daphne(port: int) -> subprocess.Popen:
    """Start daphne on 127.0.0.1:port as the bench does; wait until it answers."""
    env = dict(os.environ)
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": "abandoned-" + secrets.token_urlsafe(32),
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            **{name: "1000000/1s" for name in RAISED_LIMITS},
        }
    )
    daphne = str(Path(sys.executable).with_name("daphne"))
    proc = subprocess.Popen(
        [
            daphne,
            "-e",
            f"tcp:port={port}:interface=127.0.0.1:backlog=4096",
            "chatsite.asgi:application",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("daphne did not answer within 60 s")


def upgrade_request(port: int, token: str) -> bytes:
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    return (
        "GET /ws/chat/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()


def cpu_until_idle(pid: int, started: float, budget_s: float = 120) -> float:
    """Wait until the process is idle; return its CPU seconds since `started` (cpu_s)."""
    deadline = time.monotonic() + budget_s
    last = cpu_s(pid)
    while time.monotonic() < deadline:
        time.sleep(IDLE_WINDOW_S)
        now = cpu_s(pid)
        if now - last < IDLE_CPU_S:
            return now - started
        last = now
    raise SystemExit(f"daphne still busy after {budget_s} s")


def abandoned(pid: int, port: int, tokens: list[str]) -> float:
    """Send `tokens`' upgrade requests to the stopped process, each closed at once."""
    os.kill(pid, signal.SIGSTOP)
    try:
        for token in tokens:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(upgrade_request(port, token))
    finally:
        started = cpu_s(pid)
        os.kill(pid, signal.SIGCONT)
    return cpu_until_idle(pid, started)


async def live(pid: int, port: int, tokens: list[str]) -> float:
    """Open a socket for each token, 50 at a time, until `ready`; close each after."""
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(50)

    async def one(token: str) -> None:
        async with gate:
            async with connect(
                f"ws://127.0.0.1:{port}/ws/chat/",
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=30,
            ) as ws:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame.get("type") != "ready":
                    raise SystemExit(f"no ready: {frame}")

    started = cpu_s(pid)
    await asyncio.gather(*(one(token) for token in tokens))
    return cpu_until_idle(pid, started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", required=True, help="USERS.json of bench/product_users.py")
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    users = json.loads(Path(args.users).read_text())
    if len(users) < 2 * args.count:
        raise SystemExit(f"{args.users} holds {len(users)} users; {2 * args.count} needed")
    tokens = [user["token"] for user in users]
    port = free_port()
    proc = start_daphne(port)
    try:
        # Warm the process's caches and connections first.
        asyncio.run(live(proc.pid, port, tokens[-50:]))
        left = abandoned(proc.pid, port, tokens[: args.count])
        opened = asyncio.run(live(proc.pid, port, tokens[args.count : 2 * args.count]))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"{args.count} handshakes whose client left: {left * 1000 / args.count:.2f} ms each")
    print(f"{args.count} handshakes until ready, closed: {opened * 1000 / args.count:.2f} ms each")


if __name__ == "__main__":
    main()
