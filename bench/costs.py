"""What one DM and one group message cost PostgreSQL and Redis, measured on the product.

    python bench/costs.py [--processes 2] [--users 200] [--dms 2000] [--out costs.json]
    python bench/costs.py --handshakes-at-once 200   # every handshake at once: a reconnect

Starts the product as `make bench` does (bench/run.py: a fresh database, DEBUG=0, daphne on
127.0.0.1, users and tokens from bench/product_users.py and bench/groups.py), but on a Redis
server of its own on a free port, so that `INFO commandstats` counts this product's
commands and nobody else's. With --processes 2 (the default) the users alternate between
two daphnes and every DM's recipient is on the other process, as most are once a chat
runs on many; --processes 1 measures the single-process path. Around each phase it reads:

- PostgreSQL, this database's row of `pg_stat_database` (transactions, rows inserted,
  updated, fetched) and its `pg_stat_user_tables` (which tables they are in), read after
  the backends flushed their counters (up to 10 s idle; `pg_stat_statements` is not
  loaded on this server, so statements are not counted); the WAL this database wrote
  during the phase, from `pg_walinspect` (its records and the commits of their
  transactions, not the rest of the server's); the CPU of this database's backends;
- Redis, calls by command from `INFO commandstats`, its memory and its CPU;
- each daphne's `/metrics` (batches and messages stored) and CPU.

The background (presence heartbeats) is measured idle first and subtracted. Phases:
handshakes of the DM users; DMs at a steady rate (small batches, as at a low load per
process); the same number as a burst (large batches); handshakes of group members; group
messages at a steady rate. Printed as JSON: per handshake, per DM, per group message.

The handshakes go 32 at a time (DM users) and 8 at a time (group members) unless
--handshakes-at-once says how many: a process opens the handshakes waiting together in one
database call, so their cost per handshake depends on how many arrive together, as in a
reconnect after a restart (all of them) against users coming one by one.

Bounded in count and time; the only network peer is 127.0.0.1; everything it starts it
stops by process id.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
# Backends of PostgreSQL 15 flush their counters when idle, at the latest after 10 s.
STATS_FLUSH_S = 11.0
PG_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "blks_read",
    "blks_hit",
)
TABLE_COUNTERS = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "n_tup_upd")


class Probe:
    """Read the counters of this product's PostgreSQL database, its Redis and its daphnes."""

    def __init__(self, runner, db: str, redis_port: int, redis_db: int, servers: list) -> None:
        import psycopg
        import redis

        self.runner = runner
        self.db = db
        # A database of the probe's own (with pg_walinspect), so that its reads count in
        # neither the product's database nor anyone else's.
        self.pg = psycopg.connect(f"postgresql://postgres@{runner.HOST}:5432/{db}_probe")
        self.pg.autocommit = True
        self.pg.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        # Others' checkpoints would recycle the segments of a phase before they are read: a
        # slot of this session keeps them (it goes when the session ends, at the latest).
        self.pg.execute(
            "SELECT pg_create_physical_replication_slot(%s, true, true)",
            (f"{db}_probe_{os.getpid()}",),
        )
        self.slot = f"{db}_probe_{os.getpid()}"
        (self.db_oid,) = self.pg.execute(
            "SELECT oid FROM pg_database WHERE datname = %s", (db,)
        ).fetchone()
        self.redis = redis.Redis(host=runner.HOST, port=redis_port, db=redis_db)
        self.redis_proc = self._redis_process(redis_port)
        self.servers = servers  # (psutil.Process, http base URL)
        # Which tables the rows read and written are in: a view of the database itself,
        # read after its counters, so one read of it falls in each delta.
        self.tables = psycopg.connect(f"postgresql://postgres@{runner.HOST}:5432/{db}")
        self.tables.autocommit = True
        self._backends: dict[int, psutil.Process] = {}

    def _redis_process(self, port: int) -> psutil.Process | None:
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid)
        return None

    def _backend_cpu(self) -> float:
        """Return the CPU seconds of this database's backends that are alive now."""
        pids = [
            pid
            for (pid,) in self.pg.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.db,)
            ).fetchall()
        ]
        total = 0.0
        for pid in pids:
            proc = self._backends.get(pid)
            try:
                if proc is None:
                    proc = self._backends[pid] = psutil.Process(pid)
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                continue
        return total

    def snapshot(self) -> dict:
        """Return every counter now."""
        row = self.pg.execute(
            f"SELECT {', '.join(PG_COUNTERS)}, numbackends"
            " FROM pg_stat_database WHERE datname = %s",
            (self.db,),
        ).fetchone()
        pg = dict(zip(PG_COUNTERS, row[: len(PG_COUNTERS)], strict=True))
        tables = {}
        for name, *values in self.tables.execute(
            f"SELECT relname, {', '.join(TABLE_COUNTERS)} FROM pg_stat_user_tables"
        ).fetchall():
            for counter, value in zip(TABLE_COUNTERS, values, strict=True):
                tables[f"{name}.{counter}"] = value or 0
        stats = self.redis.info("commandstats")
        redis_calls = {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}
        redis_bytes = self.redis.info("memory")["used_memory"]
        cpu = {"daphne": 0.0, "redis": 0.0, "pg_backends": self._backend_cpu()}
        stored = batches = 0.0
        for proc, base in self.servers:
            times = proc.cpu_times()
            cpu["daphne"] += times.user + times.system
            metrics = _metrics(base)
            stored += metrics.get("chat_messages_stored_total", 0)
            batches += metrics.get("chat_send_batch_size_count", 0)
        if self.redis_proc is not None:
            times = self.redis_proc.cpu_times()
            cpu["redis"] = times.user + times.system
        return {
            "t": time.monotonic(),
            "lsn": self.lsn(),
            "pg": pg,
            "tables": tables,
            "backends": row[len(PG_COUNTERS)],
            "redis": redis_calls,
            "redis_bytes": redis_bytes,
            "cpu": cpu,
            "stored": stored,
            "batches": batches,
        }

    def lsn(self) -> str:
        """Return the server's WAL position flushed so far."""
        return self.pg.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0]

    def wal(self, start: str, end: str) -> dict:
        """Return the WAL records and bytes of this database between two positions.

        Its records are those touching its relations; its commits, those of their
        transactions. Others on the server write WAL meanwhile, which this leaves out.
        """
        import psycopg

        try:
            records, size, fpi = self.pg.execute(
                """
                WITH r AS (SELECT * FROM pg_get_wal_records_info(%(start)s, %(end)s)),
                ours AS (
                    SELECT * FROM r WHERE block_ref ~ (' rel [0-9]+/' || %(oid)s || '/')
                ),
                commits AS (
                    SELECT * FROM r WHERE resource_manager = 'Transaction'
                    AND xid IN (SELECT xid FROM ours WHERE xid <> 0)
                )
                SELECT count(*), coalesce(sum(record_length), 0), coalesce(sum(fpi_length), 0)
                FROM (SELECT * FROM ours UNION ALL SELECT * FROM commits) AS mine
                """,
                {"start": start, "end": end, "oid": str(self.db_oid)},
            ).fetchone()
        except psycopg.Error as exc:
            return {"wal_error": str(exc).splitlines()[0]}
        finally:
            self.pg.execute("SELECT pg_replication_slot_advance(%s, %s)", (self.slot, end))
        return {"wal_records": records, "wal_bytes": int(size), "wal_fpi_bytes": int(fpi)}


def _metrics(base: str) -> dict[str, float]:
    """Return the unlabelled samples of a product process's /metrics."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


def _busy_answers(bases: list[str]) -> int:
    """Return how many handshakes the product processes answered `busy` so far."""
    total = 0.0
    for base in bases:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith('chat_handshakes_refused_total{reason="busy"}'):
                    total += float(line.rpartition(" ")[2])
    return int(total)


def delta(before: dict, after: dict) -> dict:
    """Return what the counters did between two snapshots."""
    names = (set(before["redis"]) | set(after["redis"])) - {"info"}  # the probe's own reads
    return {
        "seconds": after["t"] - before["t"],
        "pg": {k: after["pg"][k] - before["pg"][k] for k in before["pg"]},
        "tables": {k: v - before["tables"].get(k, 0) for k, v in after["tables"].items()},
        "redis": {k: after["redis"].get(k, 0) - before["redis"].get(k, 0) for k in names},
        "cpu": {k: after["cpu"][k] - before["cpu"][k] for k in before["cpu"]},
        "stored": after["stored"] - before["stored"],
        "batches": after["batches"] - before["batches"],
        "redis_bytes": after["redis_bytes"] - before["redis_bytes"],
        "wal": {},
    }


def less(change: dict, background: dict) -> dict:
    """Return a delta less what the background does in as many seconds."""
    seconds = change["seconds"]
    result = dict(change)
    for group in ("pg", "tables", "redis", "cpu"):
        result[group] = {
            k: v - background[group].get(k, 0) * seconds for k, v in change[group].items()
        }
    return result


def rates(change: dict) -> dict:
    """Return a delta as rates per second (the background)."""
    seconds = change["seconds"]
    return {
        group: {k: v / seconds for k, v in change[group].items()}
        for group in ("pg", "tables", "redis", "cpu")
    }


def per(change: dict, count: int) -> dict:
    """Return a delta divided by `count` (handshakes, DMs, messages), rounded."""

    def each(value: float, digits: int = 3) -> float:
        return round(value / max(count, 1), digits)

    redis_calls = {k: each(v) for k, v in sorted(change["redis"].items()) if abs(each(v)) >= 0.01}
    return {
        "count": count,
        "pg": {k: each(v) for k, v in change["pg"].items()},
        # The tables where the rows go, a tenth of a row per unit and more.
        "tables": {k: each(v, 2) for k, v in sorted(change["tables"].items()) if each(v) >= 0.1},
        "redis_calls": redis_calls,
        "redis_calls_total": each(sum(change["redis"].values())),
        # Memory Redis holds more afterwards (a socket's group memberships, say).
        "redis_memory_bytes": each(change["redis_bytes"], 0),
        "cpu_ms": {k: each(v * 1000) for k, v in change["cpu"].items()},
        "batches": each(change["batches"], 4),
        "wal": {k: each(v, 1) if isinstance(v, int) else v for k, v in change["wal"].items()},
        "messages_stored": change["stored"],
        "redis_calls_per_redis_cpu_s": round(
            sum(change["redis"].values()) / change["cpu"]["redis"]
        )
        if change["cpu"]["redis"] > 0
        else None,
    }


# --------------------------------------------------------------------------- the run


def _namespace(url: str, pid: int, db_url: str) -> argparse.Namespace:
    """Return the options the load generators' harnesses read."""
    return argparse.Namespace(
        kind="product",
        label="costs",
        url=url,
        server_pid=pid,
        db_url=db_url,
        profile_out=None,
        profile_phase="",
        timeout=5,
    )


async def measure(args, runner, probe: Probe, servers: list, users: list, groups: list) -> dict:
    """Run the phases against the started product; return the costs of each."""
    from group_load import GroupHarness
    from loadgen import Harness

    urls = [url for _, url in servers]
    pid = servers[0][0].pid
    db_url = f"postgresql://postgres@{runner.HOST}:5432/{runner.PRODUCT_DB}"

    class Spread(Harness):
        """DM users alternating between the processes: each pair straddles two of them."""

        def url(self, client) -> str:
            return f"{urls[client.index % len(urls)]}/ws/chat/"

        async def open(self, client, attempts: int = 3) -> None:
            """Open as the harness does, but come back after `busy` for up to two minutes.

            The harness's client waits a busy process's turn for 5 s at most; more
            handshakes at once than a process takes (`CHAT_HANDSHAKES_AT_ONCE`) wait longer.
            """
            give_up = time.monotonic() + 120
            while True:
                try:
                    return await super().open(client, attempts)
                except RuntimeError as exc:
                    if "busy" not in str(exc) or time.monotonic() > give_up:
                        raise
                    await asyncio.sleep(1 + random.random())

    class GroupSpread(GroupHarness):
        """Group members alternating between the processes."""

        def member_url(self, member) -> str:
            return f"{urls[member.index % len(urls)]}/ws/chat/"

    async def since(before: dict) -> dict:
        """Return the delta from `before`, once the backends flushed their counters."""
        wal = probe.wal(before["lsn"], probe.lsn())
        await asyncio.sleep(STATS_FLUSH_S)
        change = less(delta(before, probe.snapshot()), background)
        change["wal"] = wal
        return change

    out: dict = {}
    # The processes idle, before any socket: their heartbeats and the layer's reads.
    before = probe.snapshot()
    await asyncio.sleep(args.baseline_s)
    background = rates(delta(before, probe.snapshot()))
    out["background_per_s"] = {
        g: {k: round(v, 3) for k, v in values.items() if v} for g, values in background.items()
    }

    dm = Spread(_namespace(urls[0], pid, db_url), users)
    bases = [base for _, base in probe.servers]
    busy_before = _busy_answers(bases)
    before = probe.snapshot()
    opened_per_s = await dm.open_all(dm.clients, parallel=args.handshakes_at_once or 32)
    await dm.settle(10)
    out["dm_handshake"] = per(await since(before), len(dm.clients))
    out["dm_handshake"]["opened_per_s"] = round(opened_per_s, 1)
    out["dm_handshake"]["busy_answers"] = _busy_answers(bases) - busy_before
    # One DM a user first, not counted: the product learns each pair's usernames.
    await dm.open_loop("warmup", 500, len(dm.clients) / 500, 3, 10)
    await asyncio.sleep(2)
    for name, rate in (("dm_steady", args.rate), ("dm_burst", args.burst_rate)):
        before = probe.snapshot()
        report = dm.phase_report(await dm.open_loop(name, rate, args.dms / rate, 5, 10))
        out[name] = per(await since(before), report["delivered"])
        out[name].update(
            {
                "offered_per_s": rate,
                "sent": report["sent"],
                "latency_ms_p50_p99": [report["latency_ms"]["p50"], report["latency_ms"]["p99"]],
            }
        )
    await dm.close_all(dm.clients)
    await asyncio.sleep(2)

    group = GroupSpread(_namespace(urls[0], pid, db_url), groups)
    busy_before = _busy_answers(bases)
    before = probe.snapshot()
    opened_per_s = await group.open_all(parallel=args.handshakes_at_once or 8)
    await group.settle(10)
    out["group_member_handshake"] = per(await since(before), len(group.members))
    out["group_member_handshake"]["opened_per_s"] = round(opened_per_s, 1)
    out["group_member_handshake"]["busy_answers"] = _busy_answers(bases) - busy_before
    size = len(group.groups[0])
    plan = {"drain_s": 5, "settle_max_s": 10}
    await group.open_loop("warmup", args.group_rate * size, 1, plan)
    await asyncio.sleep(2)
    before = probe.snapshot()
    duration = args.group_messages / args.group_rate
    report = group.phase_report(
        await group.open_loop("group_steady", args.group_rate * size, duration, plan)
    )
    out["group_message"] = per(await since(before), report["messages_sent"])
    out["group_message"].update(
        {
            "group_size": size,
            "offered_messages_per_s": args.group_rate,
            "deliveries": report["delivered"],
            "deliveries_expected": report["deliveries_expected"],
            "latency_ms_p50_p99": [report["latency_ms"]["p50"], report["latency_ms"]["p99"]],
        }
    )
    await group.close_all()
    out["pg_backends_of_db_at_end"] = probe.snapshot()["backends"]
    return out


def start_redis(runner) -> tuple[subprocess.Popen, int]:
    """Start a Redis server of this run's own on a free port of 127.0.0.1."""
    port = runner.free_port()
    command = ["redis-server", "--bind", runner.HOST, "--port", str(port), "--save", ""]
    command += ["--appendonly", "no"]
    proc = runner.start_server(
        "costs-redis", command, cwd=runner.TMP, env=dict(os.environ), port=port
    )
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, choices=[1, 2, 3, 4])
    parser.add_argument("--users", type=int, default=200, help="DM users (paired)")
    parser.add_argument("--dms", type=int, default=2000, help="DMs in each DM phase")
    parser.add_argument("--rate", type=float, default=200, help="DMs/s of the steady phase")
    parser.add_argument("--burst-rate", type=float, default=4000, help="DMs/s of the burst")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=50)
    parser.add_argument("--group-messages", type=int, default=500)
    parser.add_argument("--group-rate", type=float, default=50, help="group messages/s")
    parser.add_argument(
        "--handshakes-at-once",
        type=int,
        help="handshakes in flight together in both handshake phases (default: 32 for the DM"
        " users, 8 for the group members)",
    )
    parser.add_argument("--baseline-s", type=float, default=30)
    parser.add_argument("--db", default=os.environ.get("BENCH_PRODUCT_DB") or "chat_costs")
    parser.add_argument("--out", help="write the JSON here too")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        raise SystemExit("costs: redis-server is not installed")
    # bench/run.py reads its database name when imported.
    os.environ["BENCH_PRODUCT_DB"] = args.db
    sys.path.insert(0, str(BENCH))
    import run as runner

    runner.TMP.mkdir(parents=True, exist_ok=True)
    runner.preflight()
    atexit.register(runner.stop_all)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    started: list[subprocess.Popen] = []  # Redis first, then the daphnes
    try:
        redis_proc, redis_port = start_redis(runner)
        started.append(redis_proc)
        env = runner.product_env("costs-" + secrets.token_urlsafe(32))
        env["REDIS_URL"] = f"redis://{runner.HOST}:{redis_port}/0"
        env["CHAT_MAX_GROUP_SIZE"] = str(max(args.group_size, 50))
        env["CHAT_CONVERSATION_RATE"] = "1000000/1s"
        runner.log(f"costs: fresh database {args.db}, Redis on port {redis_port}")
        runner.fresh_database(args.db)
        runner.fresh_database(f"{args.db}_probe")
        runner.run(
            [runner.PY, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=runner.PRODUCT,
            env=env,
            timeout=300,
        )
        users_file = runner.TMP / "costs_users.json"
        groups_file = runner.TMP / "costs_groups.json"
        for command in (
            [str(BENCH / "product_users.py"), "c", str(args.users), str(users_file)],
            [
                str(BENCH / "groups.py"),
                "setup",
                str(args.groups),
                str(args.group_size),
                str(groups_file),
            ],
        ):
            runner.run([runner.PY, *command], cwd=runner.PRODUCT, env=env, timeout=600)
        runner.analyze(args.db)
        ctx = {"product_env": env}
        servers = []
        for index in range(args.processes):
            proc, url = runner.start_product(f"costs-{index}", ctx)
            started.append(proc)
            servers.append((proc, url))
        probe = Probe(
            runner,
            args.db,
            redis_port,
            0,
            [(psutil.Process(p.pid), u.replace("ws://", "http://")) for p, u in servers],
        )
        users = json.loads(users_file.read_text())
        groups = json.loads(groups_file.read_text())
        runner.log(
            f"costs: {args.processes} daphne(s), {len(users)} DM users, {len(groups)} groups"
        )
        result = asyncio.run(measure(args, runner, probe, servers, users, groups))
        probe.pg.close()
        probe.tables.close()
    finally:
        for proc in started[1:]:
            runner.stop_product(proc)
        runner.stop_all()
        runner.run(["dropdb", *runner.PG, "--if-exists", f"{args.db}_probe"], check=False)
    result["config"] = {k: v for k, v in vars(args).items() if k != "out"}
    result["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=runner.ROOT, capture_output=True, text=True
    ).stdout.strip()
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
