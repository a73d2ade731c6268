"""Heavy users' reads with 1 and 20 clients at once, and the daphne CPU each read costs.

On a database seeded by bench/seed_bigdb.py, from the repository root:

    python bench/read_cpu.py --db chat_bigdb [--threads 0,4] [--redis-db 12] [--profile DIR]

For each value of CHAT_SOCKET_READ_THREADS it starts one daphne pinned to core 0 (this
client should run on core 1: `taskset -c 1`), then times `sync` from 0 over sockets and the
history page and the three searches of bench/bigdb.py over HTTP, with 1 and 20 clients:
p50, p99, reads a second, and the CPU time daphne spent per read (from /proc), which
tells a process bound by its CPU from one that waits. With --profile, py-spy records daphne
(the thread holding the GIL) while 20 clients do each read: DIR/<read>.txt, collapsed
stacks for bench/profile_summary.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from bigdb import RAISED, percentile, server_cpu_s  # noqa: E402

PORT = 18_451
CLIENTS = (1, 20)
# Reads per client: enough for a p99 with one client, and a few rounds with 20.
REPEAT = {1: 40, 20: 5}


def profiler(pid: int, out: Path) -> subprocess.Popen:
    """Start py-spy on daphne's thread holding the GIL, writing collapsed stacks to `out`."""
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    command += ["--output", str(out), "--nonblocking", "--gil"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def timed(name: str, call, pid: int, profile_dir: Path | None = None) -> None:
    """Time `call(i)` for 1 and 20 clients at once; print the figures."""
    for count in CLIENTS:
        spy = None
        latencies: list[float] = []

        async def client(index: int, times: int, into: list[float]) -> None:
            for _ in range(times):
                started = time.perf_counter()
                await call(index)
                into.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(client(i, 2, []) for i in range(count)))  # warm
        if profile_dir and count == max(CLIENTS):
            spy = profiler(pid, profile_dir / f"{name}.txt")
            await asyncio.sleep(1)  # py-spy attaches
        cpu, began = server_cpu_s(pid), time.perf_counter()
        await asyncio.gather(*(client(i, REPEAT[count], latencies) for i in range(count)))
        wall, used = time.perf_counter() - began, server_cpu_s(pid) - cpu
        if spy:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        print(
            f"{name} x{count}: p50 {percentile(latencies, 0.5):.1f} ms,"
            f" p99 {percentile(latencies, 0.99):.1f} ms, {len(latencies) / wall:.1f} a second,"
            f" daphne CPU {used * 1000 / len(latencies):.1f} ms a read",
            flush=True,
        )


async def measure(port: int, plan: dict, pid: int, profile_dir: Path | None = None) -> None:
    """Time every read against the daphne on `port`."""
    import aiohttp
    from websockets.asyncio.client import connect

    active, old = plan["heavy"][:-1], plan["heavy"][-1]
    base = f"http://127.0.0.1:{port}"

    def user(index: int) -> dict:
        return active[index % len(active)]

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def get(who: dict, path: str, params: dict) -> None:
            headers = {"Authorization": f"Bearer {who['token']}", "X-Forwarded-Proto": "https"}
            async with session.get(base + path, params=params, headers=headers) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"{path}: {answer.status}")

        sockets = []
        for index in range(max(CLIENTS)):
            headers = {"Authorization": f"Bearer {user(index)['token']}"}
            socket = await connect(
                base.replace("http", "ws") + "/ws/chat/", additional_headers=headers, max_size=None
            )
            await socket.recv()
            sockets.append(socket)

        async def sync(index: int) -> None:
            await sockets[index].send(json.dumps({"type": "sync", "after": 0}))
            while json.loads(await sockets[index].recv()).get("type") != "sync.result":
                pass

        def history(index: int):
            path = f"/api/conversations/{user(index)['history_conversation']}/messages/"
            return get(user(index), path, {"limit": "50"})

        def inbox(index: int):
            return get(user(index), "/api/conversations/", {})

        await timed("sync_from_0", sync, pid, profile_dir)
        await timed("history", history, pid, profile_dir)
        await timed("inbox", inbox, pid, profile_dir)
        for name, word, who in (
            ("search_rare", "zanzibar", user),
            ("search_common", "project", user),
            ("search_common_old", "project", lambda index: old),
        ):
            await timed(
                name,
                lambda index, word=word, who=who: get(who(index), "/api/search/", {"q": word}),
                pid,
                profile_dir,
            )
        for socket in sockets:
            await socket.close()


def serve(db: str, redis_db: int, threads: str) -> subprocess.Popen:
    """Start one daphne on the database, pinned to core 0."""
    env = dict(os.environ)
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-read-cpu-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
            "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
            "LOG_LEVEL": "WARNING",
            "CHAT_SOCKET_READ_THREADS": threads,
            "CHAT_MAX_SOCKETS_PER_USER": "1000",
            **{name: "1000000/1s" for name in RAISED},
        }
    )
    daphne = [str(ROOT / ".venv" / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(PORT)]
    return subprocess.Popen(
        ["taskset", "-c", "0", *daphne, "--proxy-headers", "chatsite.asgi:application"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )


async def wait_for_port(port: int) -> None:
    for _ in range(150):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise SystemExit(f"daphne did not listen on {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--threads", default="0,4", help="CHAT_SOCKET_READ_THREADS values")
    parser.add_argument("--redis-db", type=int, default=12)
    parser.add_argument("--profile", type=Path, help="py-spy each read with 20 clients here")
    args = parser.parse_args()
    plan_file = Path(tempfile.mkstemp(suffix=".json")[1])
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.db}"}
    env.setdefault("SECRET_KEY", "bench-read-cpu-" + "x" * 40)
    plan_command = [sys.executable, str(BENCH / "bigdb.py"), "plan", str(plan_file)]
    subprocess.run(plan_command, cwd=ROOT, env=env, check=True)
    plan = json.loads(plan_file.read_text())
    plan_file.unlink()
    for threads in args.threads.split(","):
        print(f"CHAT_SOCKET_READ_THREADS={threads}, load average {os.getloadavg()}", flush=True)
        daphne = serve(args.db, args.redis_db, threads)
        try:
            asyncio.run(wait_for_port(PORT))
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
            asyncio.run(measure(PORT, plan, daphne.pid, args.profile))
        finally:
            daphne.send_signal(signal.SIGTERM)
            daphne.wait(10)


if __name__ == "__main__":
    main()
