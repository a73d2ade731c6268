"""The `bigdb` phase of `make bench`: heavy users' reads on a big seeded database.

bench/run.py calls `bench_bigdb` (BENCH_SERVERS holding `bigdb`); on its own:

    python bench/bigdb.py [--size smoke|full] [--db NAME] [--reuse]

It seeds a database (bench/seed_bigdb.py; BENCH_QUICK: the smoke size), starts one daphne
on it pinned to core 0, and from core 1 measures, with 1, 20 and 100 concurrent clients of
the heavy users, p50/p99 of: the handshake until `ready`, the inbox's first page, a
history page, a `sync` page from 0 and from a recent stamp, and search for a rare and a
common word (also for the heavy user whose messages are all old); then the product phase's
DM closed loop on that database, beside its figure on the empty one; last, daphne alone
(bench/daphne_alone.py) under the same clients, the least any read can take. The targets of
issue 21 are PASS/FAIL lines of the report, each saying whether daphne alone is under it
and the least mean wait that many reads at once allow from what each read cost the server,
PostgreSQL and Redis, and the clients.
BENCH_BIGDB_DB names the database (chat_bench_bigdb, or chat_bench_bigdb_smoke for the smoke
size, so that a smoke run never replaces a full-size database); BENCH_BIGDB_REUSE=1 keeps one
already seeded with the size asked for (seeding the full size takes minutes; the size is
recorded as the database's comment); BENCH_BIGDB_REDIS_DB picks the Redis database (12).
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
from pathlib import Path

import daphne_alone
from daphne_alone import floor_of

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

# p99 targets (ms) under 100 concurrent clients of heavy users (issue 21).
TARGETS_MS = {
    "ready": 20,
    "inbox": 30,
    "history": 10,
    "sync_from_0": 15,
    "sync_recent": 15,
    "search_rare": 30,
    "search_common": 150,
    "search_common_old": 150,
}
READS = list(TARGETS_MS)
# Measured beside them, without a target of their own:
# - floor: the cheapest authenticated read (the block list, empty): what any read costs the
#   process before its own work, and so the least p99 N clients at once can have;
# - first_socket: a heavy user's first socket, until `ready`, and its close: each announces
#   them online, then offline, to those of their ~3,400 watchers who are online (one client).
EXTRA_READS = ("floor", "first_socket")
CONCURRENCY = (1, 20, 100)
# A read is timed for at most this long per concurrency (after one round of every client),
# and not with more clients at all when one alone takes longer than SLOW_ALONE_MS.
READ_BUDGET_S = 20.0
SLOW_ALONE_MS = 1000
# With 20 clients, each read's p99 within this many times its single-client p99.
QUEUE_FACTOR = 5
# The DM closed loop on the big database: at most this much slower than on the empty one.
DM_SLOWER = 0.2
# The product phases' Redis database: they are over when this phase runs (BENCH_BIGDB_REDIS_DB
# for a run beside another benchmark: its users' ids would meet these in the layer's groups).
BIGDB_REDIS_DB = int(os.environ.get("BENCH_BIGDB_REDIS_DB") or 12)
# One database per size: the CI smoke run seeds its own and leaves a full-size one alone.
DEFAULT_DB = {"full": "chat_bench_bigdb", "smoke": "chat_bench_bigdb_smoke"}
# The bench measures speed, not the per-user limits (a heavy user's 100 clients at once).
RAISED = (
    "CHAT_API_READ_RATE",
    "CHAT_SEARCH_RATE",
    "CHAT_SYNC_RATE",
    "CHAT_CONNECT_RATE",
    "CHAT_PING_RATE",
)


# --------------------------------------------------------------------------- the phase


def bench_bigdb(cfg: dict, ctx: dict, runner) -> dict:
    """Seed (or reuse) the big database, serve it with one daphne, measure; return figures."""
    size = os.environ.get("BENCH_BIGDB_SIZE") or ("smoke" if runner.QUICK else "full")
    db = os.environ.get("BENCH_BIGDB_DB") or DEFAULT_DB[size]
    env = dict(ctx["product_env"])
    env["DATABASE_URL"] = f"postgres://postgres@{runner.HOST}:5432/{db}"
    env["REDIS_URL"] = f"redis://{runner.HOST}:6379/{BIGDB_REDIS_DB}"
    env.update({name: "1000000/1s" for name in RAISED})
    # 100 clients of nine heavy users, each with a socket kept open and one being opened.
    env["CHAT_MAX_SOCKETS_PER_USER"] = "1000"
    reuse = os.environ.get("BENCH_BIGDB_REUSE", "") not in ("", "0") and _seeded(runner, db, size)
    seeding = None
    if not reuse:
        runner.log(f"bigdb: seeding the {size} size into {db}")
        runner.fresh_database(db)
        runner.run([runner.PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env)
        started = time.monotonic()
        runner.run(
            [runner.PY, str(BENCH / "seed_bigdb.py"), "--size", size],
            cwd=ROOT,
            env=env,
            timeout=3600,
        )
        seeding = round(time.monotonic() - started, 1)
        runner.analyze(db)
        _record_size(runner, db, size)
    runner.run(
        ["redis-cli", "-h", runner.HOST, "-p", "6379", "-n", str(BIGDB_REDIS_DB), "flushdb"],
        stdout=subprocess.DEVNULL,
    )
    plan_file = runner.TMP / "bigdb-plan.json"
    runner.run([runner.PY, str(BENCH / "bigdb.py"), "plan", str(plan_file)], cwd=ROOT, env=env)
    port = runner.free_port()
    proc = runner.start_server(
        "product-bigdb",
        [
            runner.DAPHNE,
            *("-b", runner.HOST, "-p", str(port), "--proxy-headers"),
            *os.environ.get("BENCH_DAPHNE_ARGS", "").split(),
            "chatsite.asgi:application",
        ],
        cwd=runner.PRODUCT,
        env=env,
        port=port,
        health="/healthz",
    )
    out = runner.RESULTS / "bigdb.json"
    rounds = "2" if runner.QUICK else "4"
    try:
        runner.run(
            runner.pinned(
                1,
                [
                    *(runner.PY, str(BENCH / "bigdb.py"), "measure"),
                    *("--url", f"http://{runner.HOST}:{port}", "--plan", str(plan_file)),
                    *("--rounds", rounds, "--out", str(out), "--server-pid", str(proc.pid)),
                    *("--read-budget", "3" if runner.QUICK else str(READ_BUDGET_S)),
                ],
            ),
            cwd=ROOT,
            timeout=1800,
        )
        dm = dm_closed_loop(cfg, ctx, runner, env=env, port=port, server=proc, db=db)
    finally:
        runner.stop(proc)
        runner.run(
            ["psql", *runner.PG, "-q", "-d", db, "-c", "DELETE FROM messaging_socketpresence"],
            stdout=subprocess.DEVNULL,
            check=False,
        )
    result = json.loads(out.read_text())
    result.update(
        {"database": db, "size": size, "seeding_s": seeding, "reused": reuse, "dm_closed": dm}
    )
    budget = "3" if runner.QUICK else str(READ_BUDGET_S)
    try:
        result["daphne_alone"] = daphne_alone.serve_and_measure(
            runner, rounds=rounds, budget=budget
        )
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
        # The product's figures stand without it; the report says it is missing.
        runner.log(f"bigdb: daphne alone FAILED: {exc}")
        result["daphne_alone_failed"] = str(exc)
    out.write_text(json.dumps(result, indent=2))
    return result


def dm_closed_loop(cfg: dict, ctx: dict, runner, *, env: dict, port: int, server, db: str) -> dict:
    """Run the product phase's DM closed loop on the big database; return its figures.

    Its own users (a direct conversation each pair, as in the product phase) on the
    big database's daphne, every DM checked stored and seen as there; beside it the
    product phase's figure on the nearly empty database, when this run measured it.
    """
    settings = {**runner.config(), **cfg, "rates": []}
    users = settings["users"]
    users_file = runner.TMP / "bigdb-dm-users.json"
    runner.run(
        [runner.PY, str(BENCH / "product_users.py"), "bigdm", str(users), str(users_file)],
        cwd=runner.PRODUCT,
        env=env,
        timeout=300,
    )
    runner.log(f"bigdb: the DM closed loop, {users} users")
    figures = runner.loadgen(
        [
            *("--label", "product on the big database", "--url", f"ws://{runner.HOST}:{port}"),
            *("--server-pid", str(server.pid)),
            *("--plan", json.dumps(runner.load_plan(settings, check=True))),
            *("--kind", "product", "--users", str(users_file), "--count", str(users)),
            *("--db-url", f"postgresql://postgres@{runner.HOST}:5432/{db}"),
        ],
        runner.RESULTS / "bigdb-dm.json",
        runner.plan_budget(settings, users),
    )
    closed = next(phase for phase in figures["phases"] if phase["name"] == "closed")
    check = figures.get("check", {})
    return {
        "users": users,
        "delivered_per_s": closed["delivered_per_s"],
        "p50_ms": closed["latency_ms"]["p50"],
        "p99_ms": closed["latency_ms"]["p99"],
        "lost": check.get("lost"),
        "empty_db_per_s": ctx.get("product_closed_per_s"),
    }


def _seeded(runner, db: str, size: str) -> bool:
    """Say whether `db` holds a whole seeding of `size` (its comment, written once seeded)."""
    answer = runner.run(
        [
            "psql",
            *runner.PG,
            "-d",
            db,
            "-tAc",
            "SELECT shobj_description(oid, 'pg_database')"
            " FROM pg_database WHERE datname = current_database()",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return answer.returncode == 0 and answer.stdout.strip() == _size_mark(size)


def _record_size(runner, db: str, size: str) -> None:
    """Mark `db` as seeded with `size`: a later run reuses it only for the same size."""
    statement = f"COMMENT ON DATABASE \"{db}\" IS '{_size_mark(size)}'"
    runner.run(["psql", *runner.PG, "-d", db, "-qc", statement], stdout=subprocess.DEVNULL)


def _size_mark(size: str) -> str:
    return f"seeded by bench/seed_bigdb.py --size {size}"


def targets(result: dict):
    """Yield (text, passed) for each target of the phase."""
    reads = result.get("reads", {})
    for read, limit in TARGETS_MS.items():
        at100 = (reads.get(read) or {}).get("100")
        if at100 and at100.get("skipped"):
            text = f"bigdb {read}, 100 clients: p99 ≤ {limit} ms: not run, {at100['skipped']}"
            yield (text, False)
            continue
        if not at100:
            yield (f"bigdb {read}, 100 clients: p99 ≤ {limit} ms: not measured", None)
            continue
        p99 = at100["p99_ms"]
        yield (
            f"bigdb {read}, 100 clients: p99 ≤ {limit} ms: {p99} ms"
            + (f" ({at100['errors']} errors)" if at100["errors"] else "")
            + floor_of(result.get("daphne_alone") or {}, read, limit, 100)
            + least_latency(at100, 100, result.get("cores")),
            p99 <= limit and not at100["errors"],
        )
    yield from _dm_target(result.get("dm_closed"))
    for read in READS:
        one = (reads.get(read) or {}).get("1")
        twenty = (reads.get(read) or {}).get("20")
        if not one or not twenty or twenty.get("skipped"):
            continue
        # N reads at once take the process at least N times one read's CPU: within the
        # factor only if a read's CPU is at most this share of one client's p99.
        most_cpu = QUEUE_FACTOR * max(one["p99_ms"], 1.0) / CONCURRENCY[1]
        cpu = f"; needs ≤ {most_cpu:.1f} ms of CPU a read" + (
            f", took {twenty['cpu_ms']} ms" if "cpu_ms" in twenty else ""
        )
        yield (
            f"bigdb {read}, 20 clients within {QUEUE_FACTOR}x one client's p99: "
            f"{twenty['p99_ms']} ms vs {one['p99_ms']} ms{cpu}"
            + least_latency(twenty, CONCURRENCY[1], result.get("cores")),
            twenty["p99_ms"] <= QUEUE_FACTOR * max(one["p99_ms"], 1.0),
        )


def least_latency(figures: dict, clients: int, cores: int | None) -> str:
    """Say the least mean latency `clients` reads at once allow, from what each read cost.

    The server's reads share one core (one process), and everything a read costs (the
    server, PostgreSQL and Redis, the clients) shares the machine's cores: N reads at once
    wait at least N times the larger of the two shares.
    """
    if "db_cpu_ms" not in figures or not cores:
        return ""
    server, database, clients_cpu = (
        figures["cpu_ms"],
        figures["db_cpu_ms"],
        figures["client_cpu_ms"],
    )
    least = clients * max(server, (server + database + clients_cpu) / cores)
    return (
        f"; {clients} at once wait at least {least:.0f} ms on average here (a read: "
        f"{server} ms of the server's core, {database} ms of PostgreSQL and Redis, "
        f"{clients_cpu} ms of the clients, on {cores} cores)"
    )


def _dm_target(dm: dict | None):
    if not dm:
        yield ("bigdb DM closed loop: not measured", None)
        return
    figure = f"{dm['delivered_per_s']:,.0f} DMs/s, {dm['lost']} lost"
    empty = dm.get("empty_db_per_s")
    if not empty:
        yield (f"bigdb DM closed loop: {figure} (no empty-database run to compare)", None)
        return
    share = dm["delivered_per_s"] / empty
    yield (
        f"bigdb DM closed loop within {DM_SLOWER:.0%} of the empty database's: {figure}, "
        f"{share:.0%} of {empty:,.0f}",
        share >= 1 - DM_SLOWER and dm["lost"] == 0,
    )


def report_lines(result: dict) -> list[str]:
    """The phase's table and targets for summary.md."""
    lines = [
        f"## Big database ({result.get('size')}: {result.get('messages')} messages, "
        f"heavy users with {result.get('heavy_conversations')} conversations)",
        "",
        "| read | 1 client p50 / p99 | 20 clients p50 / p99 | 100 clients p50 / p99 "
        "| server CPU a read, 1 / 20 / 100 | PostgreSQL and Redis CPU a read, 1 / 20 / 100 |",
        "|---|---|---|---|---|---|",
    ]
    reads = result.get("reads", {})
    for read in (*READS, *EXTRA_READS):
        if not reads.get(read):
            continue
        cells, cpu, database = [], [], []
        for count in CONCURRENCY:
            figures = reads[read].get(str(count))
            if not figures:
                cells.append("-")
            elif figures.get("skipped"):
                cells.append("not run: " + figures["skipped"])
            else:
                cells.append(
                    f"{figures['p50_ms']} / {figures['p99_ms']} ms"
                    + (f", {figures['errors']} errors" if figures["errors"] else "")
                )
            cpu.append(f"{figures['cpu_ms']}" if figures and "cpu_ms" in figures else "-")
            database.append(f"{figures.get('db_cpu_ms', '-')}" if figures else "-")
        lines.append(
            f"| {read} | "
            + " | ".join(cells)
            + f" | {' / '.join(cpu)} ms | {' / '.join(database)} ms |"
        )
    lines += _floor_lines(reads.get("floor") or {})
    if result.get("daphne_alone"):
        lines += daphne_alone.report_lines(result["daphne_alone"])
    elif result.get("daphne_alone_failed"):
        lines += ["", f"Daphne alone: FAILED: {result['daphne_alone_failed']}"]
    dm = result.get("dm_closed")
    if dm:
        empty = dm.get("empty_db_per_s")
        lines += [
            "",
            f"DM closed loop on this database, {dm['users']} users: "
            f"{dm['delivered_per_s']:,.0f} DMs/s, p50 {dm['p50_ms']} ms, p99 {dm['p99_ms']} ms, "
            f"{dm['lost']} lost"
            + (f" (the empty database: {empty:,.0f} DMs/s)." if empty else "."),
        ]
    lines += ["", "Targets of issue 21 (big database):", ""]
    for text, ok in targets(result):
        lines.append(f"- {'PASS' if ok else 'FAIL' if ok is not None else 'n/a '} {text}")
    lines.append("")
    return lines


def _floor_lines(floor: dict[str, dict]) -> list[str]:
    """Say what the cheapest read costs, and the least p99 that makes for N clients at once."""
    alone, most = floor.get("1"), floor.get(str(CONCURRENCY[-1]))
    if not alone or not most or "cpu_ms" not in most:
        return []
    clients = CONCURRENCY[-1]
    return [
        "",
        f"The floor, the cheapest authenticated read (the block list): {alone['p50_ms']} ms "
        f"alone, {most['cpu_ms']} ms of server CPU a read. One process on one core serves N "
        f"reads at once one after another: with {clients} clients a read's p99 is at least "
        f"{clients} times its CPU, {clients * most['cpu_ms']:.0f} ms for this one "
        f"(measured: {most['p99_ms']} ms).",
    ]


# --------------------------------------------------------------------------- plan (Django)


def make_plan(out: Path) -> None:
    """Issue the heavy users' tokens and pick what each one reads; write them as JSON."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db.models import Count

    from messaging.domain.tokens import token_issue
    from messaging.models import Membership, Message

    users = list(
        get_user_model()
        .objects.filter(username__startswith="heavy")
        .annotate(n=Count("memberships"))
        .order_by("id")
    )
    heavy = []
    for user in users:
        conversation = (
            Membership.objects.filter(user=user, conversation__kind="group")
            .order_by("-conversation__last_activity_at")
            .values_list("conversation_id", flat=True)
            .first()
        )
        ids = list(
            Message.objects.filter(conversation_id=conversation)
            .order_by("id")
            .values_list("id", flat=True)
        )
        recent = (
            Message.objects.filter(conversation__memberships__user=user)
            .order_by("-seq")
            .values_list("seq", flat=True)[50:51]
        )
        heavy.append(
            {
                "username": user.username,
                "token": token_issue(user=user, name="bench bigdb"),
                "conversations": user.n,
                "history_conversation": conversation,
                "history_middle": str(ids[len(ids) // 2]) if ids else "",
                # 50 changes of the user's conversations come after this stamp.
                "recent_seq": recent[0] if recent else 0,
            }
        )
    figures = {"heavy": heavy, "messages": Message.objects.count()}
    out.write_text(json.dumps(figures))


# --------------------------------------------------------------------------- measure


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


async def measure(
    url: str,
    plan: dict,
    rounds: int,
    read_budget: float = READ_BUDGET_S,
    server_pid: int | None = None,
) -> dict:
    """Time every read at each concurrency; return p50/p99 per read and concurrency, and
    with `server_pid` the server's CPU time per read."""
    import aiohttp
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    ws_url = url.replace("http://", "ws://") + "/ws/chat/"
    heavy = plan["heavy"]
    # The last heavy user's messages are all old: the common-word search is timed for them
    # too; every other read goes to the others in turn.
    active = heavy[:-1] if len(heavy) > 1 else heavy
    old = heavy[-1]
    reads: dict[str, dict[str, dict]] = {read: {} for read in (*READS, *EXTRA_READS)}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def http(user: dict, path: str, params: dict | None = None) -> bool:
            # As the proxy in front of it would say: the deployed server redirects plain HTTP.
            headers = {"Authorization": f"Bearer {user['token']}", "X-Forwarded-Proto": "https"}
            async with session.get(
                url + path, params=params, headers=headers, allow_redirects=False
            ) as answer:
                await answer.read()
                return answer.status == 200

        async def ready(user: dict) -> bool:
            headers = {"Authorization": f"Bearer {user['token']}"}
            async with connect(ws_url, additional_headers=headers, max_size=None) as socket:
                frame = json.loads(await socket.recv())
                return frame.get("type") == "ready"

        async def first_socket() -> bool:
            # The heavy user with no socket open: their online, then offline, announcement.
            return await ready(old)

        async def sync(socket, after: int) -> bool:
            await socket.send(json.dumps({"type": "sync", "after": after}))
            while True:
                frame = json.loads(await socket.recv())
                if frame.get("type") == "sync.result":
                    return True
                if frame.get("type") == "error":
                    return False

        for count in CONCURRENCY:
            clients = [active[index % len(active)] for index in range(count)]
            sockets = []
            try:
                for user in clients:
                    sockets.append(await _open(connect, ws_url, user))
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
                # Measured so far is kept; the report says where it stopped.
                print(f"bigdb: {count} sockets could not be opened: {exc!r}", flush=True)
                for read in READS:
                    reads[read][str(count)] = {"skipped": f"{count} sockets not opened"}
                for socket in sockets:
                    await socket.close()
                break
            try:
                calls = _calls(clients, sockets, old, http, ready, sync)
                calls["first_socket"] = lambda i: first_socket()
                # Enough samples for a p99 at each concurrency, in a bounded time.
                repeat = max(rounds, math.ceil(rounds * 25 / count))
                for read in (*READS, *EXTRA_READS):
                    if read == "first_socket" and count > 1:
                        continue  # one user's first socket: one at a time
                    alone = reads[read].get("1")
                    if count > 1 and alone and alone["p50_ms"] > SLOW_ALONE_MS:
                        # Many at once would only pile up in PostgreSQL on a shared machine.
                        reads[read][str(count)] = {"skipped": f"over {SLOW_ALONE_MS} ms alone"}
                        continue
                    reads[read][str(count)] = await _timed(
                        calls[read], count, repeat, read_budget, server_pid
                    )
                    print(f"bigdb {read} x{count}: {reads[read][str(count)]}", flush=True)
            finally:
                for socket in sockets:
                    await socket.close()
    return {
        "reads": reads,
        "messages": plan["messages"],
        "heavy_users": len(heavy),
        "heavy_conversations": heavy[0]["conversations"] if heavy else 0,
        "rounds": rounds,
        "cores": os.cpu_count(),
    }


async def _open(connect, ws_url: str, user: dict, attempts: int = 5):
    """Open a socket of the user and read its `ready`, trying again after a refusal."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake

    headers = {"Authorization": f"Bearer {user['token']}"}
    for attempt in range(attempts):
        try:
            socket = await connect(ws_url, additional_headers=headers, max_size=None)
            await socket.recv()
            return socket
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _calls(clients: list[dict], sockets: list, old: dict, http, ready, sync) -> dict:
    """Each read as a call of client number i."""

    def history(i: int):
        user = clients[i]
        # The newest page and a page from the middle, in turn.
        params = {"limit": "50"} if i % 2 else {"limit": "50", "before": user["history_middle"]}
        return http(user, f"/api/conversations/{user['history_conversation']}/messages/", params)

    return {
        "ready": lambda i: ready(clients[i]),
        "inbox": lambda i: http(clients[i], "/api/conversations/"),
        "history": history,
        "sync_from_0": lambda i: sync(sockets[i], 0),
        "sync_recent": lambda i: sync(sockets[i], clients[i]["recent_seq"]),
        "search_rare": lambda i: http(clients[i], "/api/search/", {"q": "zanzibar"}),
        "search_common": lambda i: http(clients[i], "/api/search/", {"q": "project"}),
        "search_common_old": lambda i: http(old, "/api/search/", {"q": "project"}),
        "floor": lambda i: http(clients[i], "/api/blocks/"),
    }


def server_cpu_s(pid: int) -> float:
    """Return the user and system CPU time the server process has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(call, count: int, repeat: int, budget: float, pid: int | None = None) -> dict:
    from aiohttp import ClientError
    from load_base import Meter
    from websockets.exceptions import WebSocketException

    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + budget

    async def client(index: int) -> None:
        nonlocal errors
        for done in range(repeat):
            if done and time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                ok = await call(index)
            except (OSError, TimeoutError, ValueError, WebSocketException, ClientError) as exc:
                ok = False
                print(f"bigdb: {type(exc).__name__}: {exc}", file=sys.stderr)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += not ok

    meter = Meter(pid) if pid else None
    start = meter.sample() if meter else {}
    await asyncio.gather(*(client(index) for index in range(count)))
    cpu = {}
    if meter:
        end = meter.sample()
        reads = max(len(latencies), 1)
        # The server's CPU, and what the same reads cost PostgreSQL and Redis and these
        # clients on the machine's other core: together they bound N reads at once.
        for field, sampled in (
            ("cpu_ms", "server"),
            ("db_cpu_ms", "infra"),
            ("client_cpu_ms", "gen"),
        ):
            cpu[field] = round((end[sampled] - start[sampled]) * 1000 / reads, 2)
    return {
        **cpu,
        "samples": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="The bigdb phase of make bench.")
    sub = parser.add_subparsers(dest="command")
    plan = sub.add_parser("plan")
    plan.add_argument("out", type=Path)
    timing = sub.add_parser("measure")
    timing.add_argument("--url", required=True)
    timing.add_argument("--plan", type=Path, required=True)
    timing.add_argument("--rounds", type=int, default=4)
    timing.add_argument("--out", type=Path, required=True)
    timing.add_argument("--read-budget", type=float, default=READ_BUDGET_S)
    timing.add_argument("--server-pid", type=int, help="the server's process: its CPU per read")
    parser.add_argument("--size", choices=("smoke", "full"))
    parser.add_argument("--db")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    if args.command == "plan":
        make_plan(args.out)
    elif args.command == "measure":
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover
            pass
        plan = json.loads(args.plan.read_text())
        result = asyncio.run(
            measure(args.url, plan, args.rounds, args.read_budget, args.server_pid)
        )
        args.out.write_text(json.dumps(result, indent=2))
    else:
        _alone(args)


def _alone(args) -> None:
    """Run the phase by itself, as `make bench` would run it, and print its report."""
    if args.size:
        os.environ["BENCH_BIGDB_SIZE"] = args.size
    if args.db:
        os.environ["BENCH_BIGDB_DB"] = args.db
    if args.reuse:
        os.environ["BENCH_BIGDB_REUSE"] = "1"
    sys.path.insert(0, str(BENCH))
    import atexit
    import secrets

    import run as runner

    runner.RESULTS.mkdir(parents=True, exist_ok=True)
    runner.TMP.mkdir(parents=True, exist_ok=True)
    atexit.register(runner.stop_all)
    runner.preflight()
    env = runner.product_env("bench-" + secrets.token_urlsafe(32))
    result = bench_bigdb({}, {"product_env": env}, runner)
    print("\n".join(report_lines(result)))


if __name__ == "__main__":
    main()
