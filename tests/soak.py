"""Soak test: two daphne processes, PostgreSQL and Redis, many sockets, random faults.

    python -m tests.soak --duration 600      # or: make soak DURATION=600

Twenty users with one to three sockets each, spread over two daphne processes, send direct
messages with client ids at random, while Redis is restarted, a daphne process is killed
and restarted, client sockets are dropped and reopened, and clients pause. Each socket
behaves as the browser client does: it applies pushes in `seq` order (syncing when
`prev_seq` shows a gap, and after every reconnect), and it retries every unacked send with
the same client id until acked. At the end every socket syncs once more and the run prints
one summary line; it exits 1 unless duplicates, missing, out-of-order deliveries,
unexpected close codes and server tracebacks are all 0.

Needs DATABASE_URL (PostgreSQL: a database `chat_soak` is made afresh on that server) and
redis-server on the PATH (the soak runs Redis servers of its own, to restart them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from messaging.client import SYNCED, ChatClient, ChatError  # noqa: E402
from tests.helpers import register  # noqa: E402

# Close codes a client may meet in these faults: normal, going away, abnormal (process
# killed), and 1013 (the server lost Redis; reconnect).
EXPECTED_CLOSE_CODES = {1000, 1001, 1006, 1013}
PASSWORD = "soak test passphrase 42"


@dataclass
class Stats:
    sent: int = 0
    acked: set[str] = field(default_factory=set)
    out_of_order: int = 0
    unexpected_closes: list[int] = field(default_factory=list)
    reconnects: int = 0
    faults: list[str] = field(default_factory=list)


class SoakSocket:
    """One socket of one user, run by the shared ChatClient as a careful bot runs it."""

    def __init__(self, soak: Soak, user: dict, index: int) -> None:
        self.soak = soak
        self.user = user
        self.name = f"{user['username']}#{index}"
        # One client for the socket's whole life, so that its `last_seq` carries over every
        # reconnect; from 0, so that it sees every message of the run.
        self.chat = ChatClient(
            "", user["token"], last_seq=0, max_events=None, open_timeout=5, max_size=2**22
        )
        self.connected = False
        self.known: dict[int, dict] = {}  # message id -> latest version applied
        self.last_new_id: dict[int, int] = {}  # conversation -> last applied new id
        self.applied_seq = 0
        self.drop_requested = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            url = random.choice(self.soak.servers).ws_url
            try:
                # Reopens and syncs from the last seen seq; a refused handshake fails here.
                await self.chat.reconnect(url=url, retry_for=0)
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed, ChatError):
                await asyncio.sleep(random.uniform(0.2, 0.8))
                continue
            self.soak.stats.reconnects += 1
            self.connected = True
            try:
                async for event in self.chat.events():
                    self.handle(event)
            except (ConnectionClosed, TimeoutError, ChatError):
                pass  # lost, or a gap's sync failed: reconnect and sync from last_seq
            finally:
                self.connected = False
            code = self.chat.close_code
            if code is not None and code not in EXPECTED_CLOSE_CODES and not self.drop_requested:
                self.soak.stats.unexpected_closes.append(code)
            self.drop_requested = False
            await asyncio.sleep(random.uniform(0.05, 0.5))

    def handle(self, event: dict) -> None:
        kind = event["type"]
        if kind in ("message.new", "message.updated"):
            self.apply(event["message"], pushed=kind == "message.new")
        elif kind == SYNCED:
            self.apply(event["message"], pushed=event["message"]["id"] not in self.known)

    def apply(self, message: dict, *, pushed: bool) -> None:
        conversation = message["conversation"]
        if pushed and message["id"] not in self.known:
            if message["id"] < self.last_new_id.get(conversation, 0):
                self.soak.stats.out_of_order += 1
            self.last_new_id[conversation] = message["id"]
        self.known[message["id"]] = message
        self.applied_seq = max(self.applied_seq, message["seq"])

    async def catch_up(self, timeout: float = 10) -> None:
        """Sync from the last seen seq and wait until every change found is applied."""
        await self.chat.catch_up()
        deadline = time.monotonic() + timeout
        while self.applied_seq < self.chat.last_seq and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def send(self, frame: dict) -> dict:
        if not self.connected:
            raise ConnectionError("not connected")
        return await self.chat.send(frame["body"], to=frame["to"], client_id=frame["client_id"])

    def pause(self, seconds: float) -> None:
        self.chat.hold_reading(seconds)

    async def drop(self) -> None:
        if self.connected and self.chat.ws is not None:
            self.drop_requested = True
            await self.chat.ws.close()


class Soak:
    def __init__(self, duration: float, users: int, seed: int, workdir: Path) -> None:
        from tests.live import Daphne, RedisServer

        self.duration = duration
        self.user_count = users
        self.random = random.Random(seed)
        random.seed(seed)
        self.workdir = workdir
        self.stats = Stats()
        self.redis = RedisServer()
        self.database_url = soak_database_url()
        env = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "CHAT_HEARTBEAT_SECONDS": "1",
            "CHAT_PRESENCE_TTL": "4",
            "CHAT_SEND_RATE": "1000000/1s",
            "LOG_LEVEL": "WARNING",
        }
        self.servers = [Daphne(env=env, log_path=workdir / f"daphne{n}.log") for n in range(2)]
        self.users: list[dict] = []
        self.sockets: list[SoakSocket] = []
        self.outbox: dict[str, dict] = {}  # client_id -> frame, until acked
        self.deliveries: set[asyncio.Task] = set()

    def setup(self) -> None:
        create_database(self.database_url)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": self.database_url},
            check=True,
        )
        self.redis.start()
        for server in self.servers:
            server.start()
        for n in range(self.user_count):
            self.users.append(register(self.servers[0].http_url, f"soak{n}", PASSWORD))
        for user in self.users:
            for index in range(self.random.randint(1, 3)):
                self.sockets.append(SoakSocket(self, user, index))

    def teardown(self) -> None:
        for server in self.servers:
            server.stop(signal.SIGKILL)
        self.redis.stop()

    async def sender(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.random.uniform(0.005, 0.05))
            user = self.random.choice(self.users)
            other = self.random.choice([u for u in self.users if u is not user])
            client_id = uuid.uuid4().hex
            body = f"{user['username']}->{other['username']} {client_id[:8]}"
            frame = {
                "type": "message.send",
                "to": other["username"],
                "body": body,
                "client_id": client_id,
            }
            self.outbox[client_id] = {"frame": frame, "user": user}
            self.stats.sent += 1
            task = asyncio.ensure_future(self.deliver(client_id))
            self.deliveries.add(task)
            task.add_done_callback(self.deliveries.discard)

    async def deliver(self, client_id: str) -> None:
        """Send one message through any socket of its sender until it is acked."""
        entry = self.outbox[client_id]
        while True:
            candidates = [s for s in self.sockets if s.user is entry["user"] and s.connected]
            if candidates:
                try:
                    await self.random.choice(candidates).send(entry["frame"])
                    self.stats.acked.add(client_id)
                    del self.outbox[client_id]
                    return
                except Exception:
                    pass
            await asyncio.sleep(self.random.uniform(0.2, 0.6))

    async def faults(self, stop: asyncio.Event) -> None:
        actions = [self.restart_redis, self.kill_daphne, self.drop_sockets, self.pause_client]
        while not stop.is_set():
            await asyncio.sleep(self.random.uniform(2, 5))
            if stop.is_set():
                return
            action = self.random.choice(actions)
            self.stats.faults.append(action.__name__)
            await action()

    async def restart_redis(self) -> None:
        self.redis.stop()
        await asyncio.sleep(self.random.uniform(0.5, 2))
        await asyncio.to_thread(self.redis.start)

    async def kill_daphne(self) -> None:
        server = self.random.choice(self.servers)
        sig = self.random.choice([signal.SIGKILL, signal.SIGTERM])
        await asyncio.to_thread(server.stop, sig)
        await asyncio.sleep(self.random.uniform(0.5, 2))
        await asyncio.to_thread(server.start)

    async def drop_sockets(self) -> None:
        for sock in self.random.sample(self.sockets, k=min(5, len(self.sockets))):
            await sock.drop()

    async def pause_client(self) -> None:
        self.random.choice(self.sockets).pause(self.random.uniform(1, 4))

    async def run(self) -> dict:
        stop_sending = asyncio.Event()
        stop_sockets = asyncio.Event()
        socket_tasks = [asyncio.create_task(s.run(stop_sockets)) for s in self.sockets]
        await asyncio.sleep(1)
        sender = asyncio.create_task(self.sender(stop_sending))
        faults = asyncio.create_task(self.faults(stop_sending))
        await asyncio.sleep(self.duration)
        stop_sending.set()
        await asyncio.gather(sender, faults)
        # Faults are over: every send must be acked and every socket catch up.
        deadline = time.monotonic() + 60
        while self.outbox and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)
        for sock in self.sockets:
            sock.pause(0)
        for sock in self.sockets:
            for _ in range(20):
                if sock.connected:
                    try:
                        await sock.catch_up()
                        break
                    except Exception:
                        pass
                await asyncio.sleep(0.5)
        stop_sockets.set()
        for sock in self.sockets:
            await sock.drop()
        for task in socket_tasks:
            task.cancel()
        await asyncio.gather(*socket_tasks, return_exceptions=True)
        return self.verify()

    def verify(self) -> dict:
        import psycopg

        with psycopg.connect(self.database_url.replace("postgres://", "postgresql://")) as db:
            messages = db.execute(
                "SELECT id, conversation_id, body, client_id FROM messaging_message"
            ).fetchall()
            members = db.execute(
                "SELECT conversation_id, user_id FROM messaging_membership"
            ).fetchall()
        conversations_of = defaultdict(set)
        for conversation_id, user_id in members:
            conversations_of[user_id].add(conversation_id)
        missing = 0
        for sock in self.sockets:
            mine = conversations_of[sock.user["id"]]
            expected = {m[0] for m in messages if m[1] in mine}
            missing += len(expected - set(sock.known))
        tracebacks = sum(
            server.log_path.read_text(errors="replace").count("Traceback")
            for server in self.servers
        )
        return {
            "sent": self.stats.sent,
            "acked": len(self.stats.acked),
            "stored": len(messages),
            "duplicates": len(messages) - len({m[3] for m in messages}),
            "missing": missing,
            "out_of_order": self.stats.out_of_order,
            "unexpected_closes": len(self.stats.unexpected_closes),
            "tracebacks": tracebacks,
            "unacked": len(self.outbox),
            "sockets": len(self.sockets),
            "reconnects": self.stats.reconnects,
            "faults": ",".join(
                f"{name}:{self.stats.faults.count(name)}"
                for name in sorted(set(self.stats.faults))
            )
            or "none",
        }


def soak_database_url() -> str:
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        raise SystemExit("soak: set DATABASE_URL to a PostgreSQL server")
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/chat_soak"))


def create_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute("DROP DATABASE IF EXISTS chat_soak WITH (FORCE)")
        db.execute("CREATE DATABASE chat_soak")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load and faults")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="chat-soak-"))
    soak = Soak(args.duration, args.users, args.seed, workdir)
    try:
        soak.setup()
        summary = asyncio.run(soak.run())
    finally:
        soak.teardown()
    line = " ".join(f"{key}={value}" for key, value in summary.items())
    print(f"soak: seed={args.seed} {line} logs={workdir}")
    failed = any(
        summary[key]
        for key in (
            "duplicates",
            "missing",
            "out_of_order",
            "unexpected_closes",
            "tracebacks",
            "unacked",
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
