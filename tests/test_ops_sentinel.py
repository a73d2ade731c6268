"""Redis Sentinel under two daphne processes: the primary is killed while clients send, a
replica takes over, and the sockets heal without closing; then a planned switchover back
(docs/operations.md, "Redis failover").

The test starts its own Redis primary, one replica and three sentinels on free ports of
127.0.0.1 and stops them by their process ids.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from channels.db import database_sync_to_async
from django.conf import settings

from messaging.models import Message
from tests.helpers import Phases, free_port, http_get_json, token_for, wait_for_port
from tests.live import ROOT, Daphne, LiveClient

MASTER = "chat-test"
# How long the sentinels wait before they call the primary down (Sentinel's default is 30 s;
# docs/operations.md recommends 5 s). The heal time below follows from it.
DOWN_AFTER_MS = 1000
# Sockets must be healed (pushed to live again, and told to sync) within this many seconds
# of the kill: the sentinels' DOWN_AFTER_MS, their vote and the replica's promotion (about
# 1 s), the processes' next probe (CHAT_LAYER_PROBE_SECONDS, 1 s) and the rejoin; of a
# switchover, the same without DOWN_AFTER_MS. Measured here at 2.2 to 3.6 s after a kill,
# 2.2 to 2.7 s after a switchover (docs/performance.md). A call that a server stepping down
# leaves unanswered is given up after BLOCKED_READ_GRACE (3 s) past its own timeout: the
# bound is that case with room for a slow machine.
HEAL_BOUND = 15
# Pairs of people who write to each other, one on each process; and idle sockets per
# process, which send nothing but must be kept open and told to sync all the same.
PAIRS = 2
IDLE_PER_PROCESS = 20
SEND_EVERY = 0.05
# Switchovers one after another (about 3.5 s each). One is the test; more find a rare race
# (CHAT_TEST_SWITCHOVERS=60 took about 4 minutes).
SWITCHOVERS = int(os.environ.get("CHAT_TEST_SWITCHOVERS", "1"))
# The whole run, from starting the processes to the last check: about 35 s, of which 20 s
# are the sentinels' noticing the restarted old primary (they look at each server every
# 10 s). Past this bound the test fails naming the phase and where each task waited; the
# runner's own timeout is above it, with room for the set-up (at most 30 s) and clean-up.
RUN_BOUND = 150 + 10 * (SWITCHOVERS - 1)


class RedisProcess:
    """One redis-server (or sentinel) of the test's own on a free port of 127.0.0.1."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder / name
        self.folder.mkdir(parents=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start_server(self, *extra: str) -> RedisProcess:
        return self._start(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "no",
            # A replica's first copy goes at once, not after the default 5 s wait for others.
            "--repl-diskless-sync-delay",
            "0",
            "--logfile",
            str(self.folder / "redis.log"),
            *extra,
        )

    def start_sentinel(self, primary: RedisProcess) -> RedisProcess:
        conf = self.folder / "sentinel.conf"
        # Sentinel rewrites its file as it learns (replicas, other sentinels, failovers).
        conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.folder}\n"
            f"logfile {self.folder / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER} 4000\n"
        )
        return self._start("redis-server", str(conf), "--sentinel")

    def _start(self, *command: str) -> RedisProcess:
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.folder
        )
        wait_for_port(self.port, timeout=10, process=self.process, name=command[0])
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def wait_until(check, *, timeout: float, what: str) -> None:
    """Poll a condition (exceptions count as not yet) until it holds; fail saying what."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


@dataclass
class Sentinels:
    """A primary, its replica and three sentinels that watch them."""

    primary: RedisProcess
    replica: RedisProcess
    sentinels: list[RedisProcess]

    @property
    def env(self) -> dict[str, str]:
        """The chat's settings for this set: REDIS_URL names the primary as installed."""
        return {
            "REDIS_URL": f"redis://127.0.0.1:{self.primary.port}/0",
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels),
            "REDIS_SENTINEL_MASTER": MASTER,
        }

    def primary_port(self) -> int:
        """Ask a sentinel which port the primary is on now."""
        for sentinel in self.sentinels:
            try:
                _, port = sentinel.client().sentinel_get_master_addr_by_name(MASTER)
                return int(port)
            except redis.RedisError:
                continue
        raise AssertionError("no sentinel answers")

    def named_primaries(self) -> set[int]:
        """The ports that the sentinels name as the primary now: one when they agree."""
        return {
            int(sentinel.client().sentinel_get_master_addr_by_name(MASTER)[1])
            for sentinel in self.sentinels
        }

    async def kill_primary(self) -> float:
        """Kill the primary (SIGKILL); return when."""
        self.primary.kill()
        return time.monotonic()

    async def switch_over(self) -> float:
        """Make the replica primary by a planned failover, as docs/operations.md says.

        SENTINEL FAILOVER, then, once every sentinel names the new primary, CLIENT KILL
        TYPE normal on the old one so that its clients move at once. (Killed while one
        sentinel still named it, a client can reconnect to it and stay there until the
        sentinels make it a replica, up to 10 s later.) Return when the failover was
        accepted.
        """
        old = self.primary_port()

        def promoted() -> bool:
            named = self.named_primaries()
            return len(named) == 1 and old not in named

        began = await asyncio.to_thread(self._ask_failover)
        await asyncio.to_thread(
            wait_until, promoted, timeout=20, what="promotion, as every sentinel names it"
        )
        old_primary = next(p for p in (self.primary, self.replica) if p.port == old)
        old_primary.client().client_kill_filter(_type="normal")
        return began

    def _ask_failover(self) -> float:
        deadline = time.monotonic() + 20
        while True:
            try:
                self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", MASTER)
                return time.monotonic()
            except redis.ResponseError:
                # Sentinel waits twice failover-timeout before another failover of the same
                # primary, and until it judges the replica fit.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def old_primary_replicates(self) -> bool:
        """Tell whether the restarted old primary copies the new one, as every sentinel sees."""
        info = self.primary.client().info("replication")
        if info.get("role") != "slave" or info.get("master_link_status") != "up":
            return False
        for sentinel in self.sentinels:
            replicas = sentinel.client().sentinel_slaves(MASTER)
            if not any(
                int(r["port"]) == self.primary.port
                and not r["is_sdown"]
                and r.get("master-link-status") == "ok"
                for r in replicas
            ):
                return False
        return True

    def ready(self) -> bool:
        """Tell whether the replica copies the primary and every sentinel knows all of them."""
        info = self.replica.client().info("replication")
        if info.get("master_link_status") != "up":
            return False
        for sentinel in self.sentinels:
            state = sentinel.client().sentinel_master(MASTER)
            if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                return False
        return True


@pytest.fixture
def sentinels(tmp_path: Path):
    primary = RedisProcess(tmp_path, "primary")
    replica = RedisProcess(tmp_path, "replica")
    watchers = [RedisProcess(tmp_path, f"sentinel{n}") for n in range(3)]
    started = [primary, replica, *watchers]
    try:
        primary.start_server()
        replica.start_server("--replicaof", "127.0.0.1", str(primary.port))
        for watcher in watchers:
            watcher.start_sentinel(primary)
        group = Sentinels(primary, replica, watchers)
        # Sentinels find each other through the primary's hello messages (every 2 s); a
        # loaded CI machine once needed more than 30 s to start all five processes.
        wait_until(group.ready, timeout=60, what="replica in sync, sentinels know each other")
        yield group
    finally:
        for process in started:
            process.kill()


@dataclass
class Socket:
    """One person's socket: what it sent and was acked, and what it saw, with when."""

    name: str
    client: LiveClient
    peer: str | None = None
    # client_id -> (message id, when the send began, when it was acked)
    acked: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    # message id -> when its push arrived, for pushes of the peer's messages
    pushed_at: dict[int, float] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    max_seq: int = 0
    pongs: list[float] = field(default_factory=list)

    async def catch_up(self) -> None:
        """Sync from the largest seq seen, as the browser does on a gap or a pong."""
        for message in await self.client.chat.sync(self.max_seq):
            self.seen.add(message["id"])
            self.max_seq = max(self.max_seq, message["seq"])

    async def read(self, stop: asyncio.Event) -> None:
        """Apply every frame until stopped: pushes in seq order, syncs on a gap or a pong."""
        while not stop.is_set():
            try:
                frame = await self.client.recv(timeout=0.2)
            except TimeoutError:
                continue
            if frame["type"] == "message.new":
                message = frame["message"]
                if message["sender"]["username"] == self.peer:
                    self.pushed_at[message["id"]] = time.monotonic()
                if frame["prev_seq"] > self.max_seq:
                    await self.catch_up()
                self.seen.add(message["id"])
                self.max_seq = max(self.max_seq, message["seq"])
            elif frame["type"] == "pong":
                # Nobody here pings: every pong is the server's word that the layer is back.
                self.pongs.append(time.monotonic())
                if frame["last_seq"] > self.max_seq:
                    await self.catch_up()

    async def write(self, stop: asyncio.Event) -> None:
        """Send to the peer until stopped; a send without an answer goes again, same id."""
        n = 0
        while not stop.is_set():
            client_id = f"{self.name}-{n}"
            began = time.monotonic()
            while True:
                try:
                    message = await self.client.chat.send(
                        f"{self.name} {n}", to=self.peer, client_id=client_id, timeout=5
                    )
                    break
                except TimeoutError:
                    # A failure, not a hang past the test's timeout (which would leave its
                    # servers running): a send goes unanswered for longer than any heal.
                    assert time.monotonic() - began < 2 * HEAL_BOUND, f"{client_id} unanswered"
                    continue
            self.acked[client_id] = (message["id"], began, time.monotonic())
            n += 1
            await asyncio.sleep(SEND_EVERY)


@dataclass(frozen=True)
class Heal:
    """How long sockets took to heal after a break of the layer, and the sends meanwhile."""

    seconds: float
    acked_across: int


async def heal_after(
    cause: Callable[[], Awaitable[float]], sockets: list[Socket], logs: list[Path]
) -> Heal:
    """Break the layer with `cause`; wait until every socket healed; say how long it took.

    A socket is healed once it was told to sync (a pong it did not ask for) and, when its
    peer writes, a push of a message sent after the break reached it live. Past the bound,
    the failure shows what each process logged of the layer.
    """
    talkers = {s.name: s for s in sockets if s.peer is not None}
    pongs_before = {s.name: len(s.pongs) for s in sockets}
    began = await cause()

    def healed_at(socket: Socket) -> float | None:
        if len(socket.pongs) <= pongs_before[socket.name]:
            return None
        told = socket.pongs[pongs_before[socket.name]]
        if socket.peer is None:
            return told
        peer = talkers[socket.peer]
        sent_after = {m for m, start, _ in peer.acked.values() if start > began}
        live = [at for m, at in socket.pushed_at.items() if m in sent_after]
        return max(told, min(live)) if live else None

    while True:
        times = {s.name: healed_at(s) for s in sockets}
        if None not in times.values():
            break
        waiting = [name for name, at in times.items() if at is None]
        assert time.monotonic() - began < 2 * HEAL_BOUND, (
            f"not healed: {waiting}\n{layer_events(logs)}"
        )
        await asyncio.sleep(0.1)
    healed = max(times.values())
    across = sum(
        1 for s in talkers.values() for _, _, at in s.acked.values() if began <= at <= healed
    )
    return Heal(healed - began, across)


def layer_events(logs: list[Path], last: int = 12) -> str:
    """The last lines each process logged of the channel layer."""
    shown = []
    for log in logs:
        lines = [
            line
            for line in log.read_text().splitlines()
            if "messaging.delivery" in line or "redis" in line.lower()
        ]
        shown.append(f"{log.name}:\n" + "\n".join(lines[-last:]))
    return "\n".join(shown)


def make_users(make_user, count: int, prefix: str) -> list:
    return [make_user(username=f"{prefix}{n}") for n in range(count)]


async def open_socket(server: Daphne, user, peer: str | None = None) -> Socket:
    client = await LiveClient(server.ws_url, await token_for(user)).open()
    socket = Socket(user.username, client, peer)
    socket.max_seq = client.ready["last_seq"]
    return socket


def stored() -> list[tuple[int, str, str, int]]:
    return list(
        Message.objects.order_by("id").values_list(
            "id", "sender__username", "client_id", "conversation_id"
        )
    )


def rate_limit_windows(client: redis.Redis) -> list[int]:
    """The windows (seconds since the epoch, for 1 s rules) of the chat's counters there."""
    prefix = settings.CHAT_RATE_LIMIT_PREFIX
    keys = [key.decode() for key in client.keys(f"{prefix}:*:1:*")]
    return [int(key.rsplit(":", 1)[1]) for key in keys]


@pytest.mark.services
@pytest.mark.timeout(RUN_BOUND + 60)
async def test_a_killed_primary_and_a_switchover_heal_every_socket_without_closing_it(
    sentinels, transactional_db, make_user, tmp_path, capsys
):
    logs = [tmp_path / f"daphne{n}.log" for n in range(2)]
    servers = [Daphne(env=sentinels.env, log_path=log) for log in logs]
    users = await database_sync_to_async(make_users)(make_user, 2 * PAIRS, "talker")
    idle_users = await database_sync_to_async(make_users)(make_user, 2 * IDLE_PER_PROCESS, "idle")
    stop_writing, stop_reading = asyncio.Event(), asyncio.Event()
    phases = Phases()
    readers: list[asyncio.Task] = []
    writers: list[asyncio.Task] = []
    talkers: list[Socket] = []
    idle: list[Socket] = []
    try:
        async with phases.bounded(RUN_BOUND):
            phases("start")
            for server in servers:
                server.start()
            # Each pair has one person on each process: every push crosses Redis.
            for n in range(PAIRS):
                first, second = users[2 * n], users[2 * n + 1]
                talkers.append(await open_socket(servers[0], first, second.username))
                talkers.append(await open_socket(servers[1], second, first.username))
            for n, user in enumerate(idle_users):
                idle.append(await open_socket(servers[n % 2], user))
            phases("talk")
            readers = [asyncio.create_task(s.read(stop_reading)) for s in talkers + idle]
            writers = [asyncio.create_task(s.write(stop_writing)) for s in talkers]

            await asyncio.sleep(2)
            assert all(s.pushed_at for s in talkers), "pushes cross the processes before the kill"
            everyone = talkers + idle
            old_primary = sentinels.primary.port
            killed_wall = time.time()
            phases("kill the primary")
            killed = await heal_after(sentinels.kill_primary, everyone, logs)
            # The sentinels promoted the replica; every Redis client of the chat follows it:
            # the channel layer (the pushes) and the rate limits' counters.
            assert sentinels.primary_port() == sentinels.replica.port != old_primary
            await asyncio.sleep(1)
            windows = rate_limit_windows(sentinels.replica.client())
            assert any(window > killed_wall + killed.seconds for window in windows), windows

            # The old primary comes back, as the sentinels make it: a replica of the new one.
            # Then a planned switchover (as before upgrading a Redis server) makes it primary
            # again, and the sockets heal the same way.
            phases("bring the old primary back")
            await asyncio.to_thread(sentinels.primary.start_server)
            await asyncio.to_thread(
                wait_until,
                sentinels.old_primary_replicates,
                timeout=30,
                what="old primary replicates",
            )
            phases("switch over")
            switchovers = [
                await heal_after(sentinels.switch_over, everyone, logs) for _ in range(SWITCHOVERS)
            ]
            switched = max(switchovers, key=lambda heal: heal.seconds)
            # Back and forth: an odd number of switchovers ends on the first primary.
            ends_on = old_primary if SWITCHOVERS % 2 else sentinels.replica.port
            assert sentinels.primary_port() == ends_on
            # Sends go on a while after the heal, then stop; every send is acked.
            await asyncio.sleep(2)
            phases("stop")
            stop_writing.set()
            await asyncio.gather(*writers)
            await asyncio.sleep(1)  # the last pushes arrive
            stop_reading.set()
            await asyncio.gather(*readers)

            phases("check")
            for server in servers:
                status, health = await asyncio.to_thread(
                    http_get_json, server.http_url + "/healthz"
                )
                assert status == 200, health

            # Nothing acked is lost or doubled: the database holds every acked send once.
            rows = await database_sync_to_async(stored)()
            ids = [row[0] for row in rows]
            assert len(ids) == len(set(ids))
            by_client_id = {(sender, client_id): i for i, sender, client_id, _ in rows}
            assert len(by_client_id) == len(rows), "a send stored twice"
            acked = {(s.name, cid): m for s in talkers for cid, (m, _, _) in s.acked.items()}
            assert acked == by_client_id
            # No socket was closed, and what each one saw live and by the syncs it was told to
            # do is exactly its conversation: a last sync from its largest seq finds nothing.
            conversation_of = {}
            for _, sender, _, conversation in rows:
                conversation_of.setdefault(sender, set()).add(conversation)
            for socket in talkers:
                assert socket.client.chat.close_code is None, socket.name
                mine = {i for i, _, _, c in rows if c in conversation_of[socket.name]}
                assert socket.seen == mine, socket.name
                assert await socket.client.chat.sync(socket.max_seq) == [], socket.name
                everything = await socket.client.chat.sync(0)
                assert sorted(m["id"] for m in everything) == sorted(mine), socket.name
            for socket in idle:
                assert socket.client.chat.close_code is None, socket.name
                assert socket.pongs, socket.name

            summary = {
                "sockets": len(everyone),
                "down_after_ms": DOWN_AFTER_MS,
                "primary_killed": {
                    "healed_within_seconds": round(killed.seconds, 2),
                    "messages_acked_across": killed.acked_across,
                },
                "switchover": {
                    "times": len(switchovers),
                    "healed_within_seconds": round(switched.seconds, 2),
                    "each_healed_within_seconds": [round(h.seconds, 2) for h in switchovers],
                    "messages_acked_across": switched.acked_across,
                },
                "messages_acked_in_all": len(acked),
                "phases": str(phases),
            }
            with capsys.disabled():
                print("\nsentinel failover: " + json.dumps(summary))
            for heal in (killed, switched):
                assert heal.seconds < HEAL_BOUND, summary
                assert heal.acked_across > 0, "sends are acked while the layer is away"
    finally:
        for task in readers + writers:
            task.cancel()
        await asyncio.gather(*readers, *writers, return_exceptions=True)
        for socket in talkers + idle:
            await socket.client.close()
        for server in servers:
            server.stop()
    for log in logs:
        text = log.read_text()
        assert "Traceback" not in text, text
        assert "sockets rejoined the channel layer" in text, text


def check_settings(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        capture_output=True,
        text=True,
    )


def test_sentinel_settings_that_cannot_work_are_refused_with_the_reason():
    not_an_address = check_settings(
        REDIS_URL="redis://127.0.0.1:6379/0", REDIS_SENTINELS="10.0.0.5:26379,10.0.0.6"
    )
    assert not_an_address.returncode != 0
    assert "REDIS_SENTINELS: '10.0.0.6' is not host:port" in not_an_address.stderr
    two_servers = check_settings(
        REDIS_URL="redis://10.0.0.5/0,redis://10.0.0.6/0", REDIS_SENTINELS="10.0.0.7:26379"
    )
    assert two_servers.returncode != 0
    assert "REDIS_SENTINELS needs one REDIS_URL" in two_servers.stderr
    fine = check_settings(
        REDIS_URL=f"redis://127.0.0.1:6379/{uuid.uuid4().int % 16}",
        REDIS_SENTINELS="10.0.0.5:26379,[::1]:26380",
    )
    assert fine.returncode == 0, fine.stderr
