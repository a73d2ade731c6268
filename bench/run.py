"""`make bench`: the product against its baselines, in one run, on this machine.

Starts each server in turn on 127.0.0.1, pinned to core 0, drives it with bench/loadgen.py
pinned to core 1, stops it, and writes bench/results/*.json, summary.md and latency.png
(BENCH_QUICK=1: a short smoke run into bench/results/quick/).

Servers:
  product   the chat as deployed: daphne, DEBUG=0, PostgreSQL (a fresh database chat_bench),
            Redis channel layer, bearer-token sockets, the full guarantees of PROTOCOL.md
  tutorial  the Channels tutorial's design: RedisChannelLayer, one INSERT per message
  inmemory  bare daphne + Channels in-memory layer, group_send per copy, nothing stored
  node      a Node relay on npm `ws`: a userId -> socket map, nothing stored
Then the product again, fresh, for the memory of idle authenticated sockets and the latency
of a low rate spread over many connected users, those users once more while they type and
read as people do (a `typing` frame before each DM, a `read` after); and once more for the
`abuse` phase: one
user's 20 never-reading sockets flood it while two people chat (tests/abuse.py).

Knobs (environment): BENCH_QUICK=1, BENCH_USERS (200), BENCH_RATES ("250,500,1000,2000"),
BENCH_OPEN_S, BENCH_CLOSED_S, BENCH_WINDOW, BENCH_IDLE_SOCKETS (5000), BENCH_IDLE_PING_S
(31: then the idle sockets ping every 15 s as browser tabs do, this long), BENCH_MANY_USERS
(2000), BENCH_SERVERS (comma list of the above, plus "idle" and "abuse"), BENCH_ABUSE_S
(30), BENCH_BIGDB_DB, BENCH_BIGDB_SIZE, BENCH_BIGDB_REUSE (the `bigdb` phase: heavy users'
reads on a seeded database, bench/bigdb.py), BENCH_GROUPS, BENCH_GROUP_SIZE, BENCH_GROUP_RATES
(the `groups` phase: fan-out to groups whose members are all online, bench/groups.py),
BENCH_STORM_USERS, BENCH_STORM_TALKERS, BENCH_STORM_RATE, BENCH_STORM_S (the `reconnect`
phase: every socket cut at once, bench/storm.py),
BENCH_PRODUCT_DB, BENCH_TUTORIAL_DB, BENCH_PRODUCT_REDIS_DB, BENCH_TUTORIAL_REDIS_DB (the
databases it empties: chat_bench, chat_bench_tutorial, 12, 13), BENCH_PROFILE=1 (py-spy of
the product during its closed loop, or the phase named by BENCH_PROFILE_PHASE such as
open1000 or idle (its handshakes), and its many-users phase, or with chatting the many users
who type and read; slows it: its figures are not for quoting), BENCH_DAPHNE_ARGS (options
added to the product's daphne), BENCH_DAPHNE_BACKLOG (the product's daphne listens with this
backlog instead of Twisted's 50).
"""

from __future__ import annotations

import atexit
import datetime as dt
import importlib
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# The product checkout to measure (another worktree, to compare a change): its code runs
# with this checkout's .venv and bench/.
PRODUCT = Path(os.environ.get("BENCH_PRODUCT_DIR") or ROOT).resolve()
PY = str(ROOT / ".venv" / "bin" / "python")
DAPHNE = str(ROOT / ".venv" / "bin" / "daphne")
HOST = "127.0.0.1"
PG = ["-h", HOST, "-p", "5432", "-U", "postgres"]
PRODUCT_DB = os.environ.get("BENCH_PRODUCT_DB") or "chat_bench"
TUTORIAL_DB = os.environ.get("BENCH_TUTORIAL_DB") or "chat_bench_tutorial"
PRODUCT_REDIS_DB = int(os.environ.get("BENCH_PRODUCT_REDIS_DB") or 12)
TUTORIAL_REDIS_DB = int(os.environ.get("BENCH_TUTORIAL_REDIS_DB") or 13)

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0")
# BENCH_RESULTS_DIR: somewhere else than bench/results (a run that must not replace them).
RESULTS_BASE = Path(os.environ.get("BENCH_RESULTS_DIR") or BENCH / "results").resolve()
RESULTS = RESULTS_BASE / ("quick" if QUICK else "")
TMP = RESULTS_BASE / "tmp"

SERVERS = {
    "product": "product: daphne + PostgreSQL + Redis, all guarantees",
    "tutorial": "Channels tutorial: RedisChannelLayer + 1 INSERT/DM",
    "inmemory": "bare daphne + in-memory layer, nothing stored",
    "node": "Node ws relay, nothing stored",
}


# Phases in modules of their own: key -> (module, its entry point, what the log says).
MODULE_PHASES = {
    "groups": ("groups", "bench_groups", "fan-out to groups whose members are all online"),
    "reconnect": (
        "storm",
        "bench_reconnect",
        "every socket cut at once and back as browsers come back",
    ),
    "bigdb": ("bigdb", "bench_bigdb", "heavy users' reads on a big seeded database"),
}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def config() -> dict:
    rates = os.environ.get("BENCH_RATES") or ("250,500" if QUICK else "250,500,1000,2000")
    servers = (
        os.environ.get("BENCH_SERVERS")
        or "product,tutorial,inmemory,node,idle,abuse,groups,reconnect,bigdb"
    )
    return {
        "quick": QUICK,
        "users": env_int("BENCH_USERS", 200),
        "window": env_int("BENCH_WINDOW", 2),
        "warmup_s": env_float("BENCH_WARMUP_S", 1 if QUICK else 2),
        "closed_s": env_float("BENCH_CLOSED_S", 3 if QUICK else 10),
        "open_s": env_float("BENCH_OPEN_S", 2 if QUICK else 8),
        "rates": [int(r) for r in rates.split(",") if r.strip()],
        "drain_s": env_float("BENCH_DRAIN_S", 2 if QUICK else 5),
        "settle_max_s": env_float("BENCH_SETTLE_MAX_S", 3 if QUICK else 12),
        # Issue 21 measures an idle socket's memory on 10,000.
        "idle_sockets": env_int("BENCH_IDLE_SOCKETS", 300 if QUICK else 10_000),
        # Then every idle socket pings as a browser tab does (every 15 s), for this long.
        "idle_ping_s": env_int("BENCH_IDLE_PING_S", 16 if QUICK else 31),
        "many_users": env_int("BENCH_MANY_USERS", 200 if QUICK else 2000),
        "many_rate": env_int("BENCH_MANY_RATE", 200),
        "many_s": env_float("BENCH_MANY_S", 2 if QUICK else 10),
        "abuse_s": env_float("BENCH_ABUSE_S", 10 if QUICK else 30),
        "servers": [s.strip() for s in servers.split(",") if s.strip()],
        "max_total_s": env_float("BENCH_MAX_S", 300 if QUICK else 1200),
        "quiet_wait_s": env_float("BENCH_QUIET_WAIT_S", 8 if QUICK else 120),
    }


# --------------------------------------------------------------------------- processes

_started: list[subprocess.Popen] = []


def shown(path: Path) -> str:
    """Name a path from the checkout when it lies inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def log(text: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {text}", flush=True)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run(command, **kwargs)


NICE = os.environ.get("BENCH_NICE", "-10")


def pinned(core: int, command: list[str]) -> list[str]:
    """Pin a command to one core; raise its priority over whatever else runs here."""
    if os.cpu_count() and os.cpu_count() >= 2 and shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    if NICE not in ("", "0") and os.geteuid() == 0:
        command = ["nice", "-n", NICE, *command]
    return command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Stop a process this script started (by its pid), politely and then not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc in _started:
        _started.remove(proc)


def stop_all() -> None:
    for proc in list(_started):
        stop(proc)


def start_server(
    name: str,
    command: list[str],
    *,
    cwd: Path,
    env: dict,
    port: int,
    health: str | None = None,
    ready_line: str | None = None,
) -> subprocess.Popen:
    """Start a server pinned to core 0 and wait until it answers on 127.0.0.1:port."""
    logfile = open(TMP / f"{name}.log", "w")
    proc = subprocess.Popen(
        pinned(0, command),
        cwd=cwd,
        env=env,
        stdout=logfile,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _started.append(proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited at start; see {TMP / (name + '.log')}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                pass
            if health:
                with urllib.request.urlopen(f"http://{HOST}:{port}{health}", timeout=5) as answer:
                    if answer.status != 200:
                        raise OSError(answer.status)
            return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"{name} did not answer on {HOST}:{port} within 60 s")


# --------------------------------------------------------------------------- setup


# Per-user limits the load phases would meet (each loadgen user pages `sync` from 0 at the
# end, the same second as all the others); the abuse phase keeps all but the send limit.
RAISED_LIMITS = (
    "CHAT_SEND_RATE",
    "CHAT_TYPING_RATE",
    "CHAT_SYNC_RATE",
    "CHAT_PING_RATE",
    "CHAT_READ_RATE",
    "CHAT_EDIT_RATE",
    "CHAT_CONNECT_RATE",
)


def product_env(secret: str) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": secret,
            "ALLOWED_HOSTS": HOST,
            "DATABASE_URL": f"postgres://postgres@{HOST}:5432/{PRODUCT_DB}",
            "REDIS_URL": f"redis://{HOST}:6379/{PRODUCT_REDIS_DB}",
            # The load phases measure speed, not the limits: raised like the send limit.
            **{name: "1000000/1s" for name in RAISED_LIMITS},
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def tutorial_env(layer: str, store: bool) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "TUTORIAL_DATABASE_URL": f"postgres://postgres@{HOST}:5432/{TUTORIAL_DB}",
            "TUTORIAL_REDIS_URL": f"redis://{HOST}:6379/{TUTORIAL_REDIS_DB}",
            "TUTORIAL_LAYER": layer,
            "TUTORIAL_STORE": "1" if store else "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def fresh_database(name: str) -> None:
    run(["dropdb", *PG, "--if-exists", "--force", name])
    run(["createdb", *PG, name])


def analyze(name: str) -> None:
    """Vacuum and bring the planner's statistics up to date, as autovacuum does in production.

    A test server may run PostgreSQL with autovacuum off; without statistics the planner
    takes a table of thousands of users for a few pages and scans it whole, and the rows
    of 5,000 closed sockets stay in the presence table as dead tuples.
    """
    run(["psql", *PG, "-q", "-d", name, "-c", "VACUUM ANALYZE"], stdout=subprocess.DEVNULL)


def preflight() -> None:
    for tool in ("psql", "createdb", "dropdb", "redis-cli", "node"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is not installed")
    if run(["pg_isready", "-h", HOST, "-p", "5432"], check=False).returncode != 0:
        raise SystemExit("bench: PostgreSQL does not answer on 127.0.0.1:5432")
    pong = run(["redis-cli", "-h", HOST, "-p", "6379", "ping"], capture_output=True, text=True)
    if "PONG" not in pong.stdout:
        raise SystemExit("bench: Redis does not answer on 127.0.0.1:6379")
    if not (BENCH / "node-relay" / "node_modules" / "ws").exists():
        run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH / "node-relay")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_for_quiet(limit_s: float) -> float:
    """Wait (bounded) until the machine is nearly idle; return its busy % when we start.

    Another user's test suite on this machine takes the cores the servers are pinned to;
    the figures would then measure that. Each phase also reports `other_cpu_pct`.
    """
    import psutil

    deadline = time.monotonic() + limit_s
    quiet_for = 0
    busy = 100.0
    announced = False
    while True:
        busy = psutil.cpu_percent(interval=1.0) * (os.cpu_count() or 1)
        quiet_for = quiet_for + 1 if busy < 25 else 0
        if quiet_for >= 3:
            return busy
        if time.monotonic() > deadline:
            log(f"machine still busy ({busy:.0f} % of a core); measuring anyway")
            return busy
        if not announced:
            log(f"machine busy ({busy:.0f} % of a core): waiting up to {limit_s:.0f} s for quiet")
            announced = True


def machine_info(cfg: dict) -> dict:
    def git(*args: str) -> str:
        done = run(["git", *args], cwd=PRODUCT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": ("BENCH_QUICK=1 " if QUICK else "") + "make bench",
        "product_dir": str(PRODUCT),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty_product": bool(
            git("status", "--porcelain", "--", "messaging", "chatsite", "requirements.txt")
        ),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "node": run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "loadavg_at_start": os.getloadavg(),
        "config": cfg,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# --------------------------------------------------------------------------- steps


def loadgen(args: list[str], out: Path, timeout: float) -> dict:
    """Run the load generator on core 1; it stops itself within `timeout` (then is stopped)."""
    command = pinned(
        1,
        [PY, str(BENCH / "loadgen.py"), *args, "--out", str(out), "--budget", str(timeout - 15)],
    )
    log("  loadgen " + " ".join(a if len(a) < 60 else a[:57] + "..." for a in args))
    proc = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    _started.append(proc)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        if out.exists():
            log(f"load generator ran over {timeout:.0f} s: partial results kept")
            return json.loads(out.read_text())
        raise RuntimeError(f"load generator ran over {timeout:.0f} s") from None
    _started.remove(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode})")
    return json.loads(out.read_text())


def load_plan(cfg: dict, *, check: bool) -> dict:
    return {
        "warmup_s": cfg["warmup_s"],
        "closed": {"duration_s": cfg["closed_s"], "window": cfg["window"]},
        "open": [{"rate": rate, "duration_s": cfg["open_s"]} for rate in cfg["rates"]],
        "drain_s": cfg["drain_s"],
        "settle_max_s": cfg["settle_max_s"],
        "timeout_s": 3 if QUICK else 5,
        "answer_wait_s": 30 if not QUICK else 5,
    }


def plan_budget(cfg: dict, users: int) -> float:
    per_open = cfg["open_s"] + cfg["drain_s"] + cfg["settle_max_s"] + 1
    return (
        60
        + users / 20
        + cfg["warmup_s"]
        + cfg["closed_s"]
        + 10
        + cfg["settle_max_s"]
        + per_open * len(cfg["rates"])
        + 60
    )


def bench_server(key: str, cfg: dict, ctx: dict) -> dict:
    port = free_port()
    url = f"ws://{HOST}:{port}"
    users = cfg["users"]
    extra: list[str] = []
    if key == "product":
        proc, url = start_product(key, ctx)
        extra = [
            "--kind",
            "product",
            "--users",
            str(ctx["users_file"]),
            "--count",
            str(users),
            "--db-url",
            f"postgresql://postgres@{HOST}:5432/{PRODUCT_DB}",
        ]
        if PROFILE:
            extra += ["--profile-out", str(RESULTS / "product-profile.txt")]
            extra += ["--profile-phase", os.environ.get("BENCH_PROFILE_PHASE", "closed")]
    elif key in ("tutorial", "inmemory"):
        env = tutorial_env("redis", True) if key == "tutorial" else tutorial_env("memory", False)
        proc = start_server(
            key,
            [DAPHNE, "-b", HOST, "-p", str(port), "tutorial_site.asgi:application"],
            cwd=BENCH / "tutorial",
            env=env,
            port=port,
        )
        extra = ["--kind", "channels", "--count", str(users)]
    elif key == "node":
        env = dict(os.environ, PORT=str(port))
        proc = start_server(
            key, ["node", "server.js"], cwd=BENCH / "node-relay", env=env, port=port
        )
        extra = ["--kind", "relay", "--count", str(users)]
    else:
        raise ValueError(key)
    try:
        out = RESULTS / f"{key}.json"
        result = loadgen(
            [
                "--label",
                SERVERS[key],
                "--url",
                url,
                "--server-pid",
                str(proc.pid),
                "--plan",
                json.dumps(load_plan(cfg, check=key == "product")),
                *extra,
            ],
            out,
            plan_budget(cfg, users),
        )
    finally:
        if key == "product":
            save_metrics(url, "product")
            stop_product(proc)
        else:
            stop(proc)
    result["key"] = key
    out.write_text(json.dumps(result, indent=2))
    return result


def start_product(name: str, ctx: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    backlog = os.environ.get("BENCH_DAPHNE_BACKLOG")
    # Twisted listens with a backlog of 50 unless an endpoint says otherwise.
    where = (
        ["-e", f"tcp:port={port}:interface={HOST}:backlog={backlog}"]
        if backlog
        else ["-b", HOST, "-p", str(port)]
    )
    proc = start_server(
        name,
        [
            DAPHNE,
            *where,
            "--proxy-headers",
            *os.environ.get("BENCH_DAPHNE_ARGS", "").split(),
            "chatsite.asgi:application",
        ],
        cwd=PRODUCT,
        env=ctx["product_env"],
        port=port,
        health="/healthz",
    )
    return proc, f"ws://{HOST}:{port}"


def save_metrics(url: str, name: str) -> None:
    """Keep the product's /metrics (batch sizes and times, send latency) in results/tmp."""
    import urllib.request

    try:
        with urllib.request.urlopen(url.replace("ws://", "http://") + "/metrics", timeout=5) as r:
            (TMP / f"{name}-metrics.txt").write_bytes(r.read())
    except OSError as exc:
        log(f"{name}: /metrics not saved: {exc}")


def stop_product(proc: subprocess.Popen) -> None:
    """Let a product process finish its socket clean-ups, stop it, forget its presence rows.

    A daphne stopped with sockets open leaves their presence rows behind; the next
    process's heartbeat would sweep them and announce thousands of people offline at once,
    which is a test of its own (see docs/performance.md), not of the next phase.
    """
    import psutil

    try:
        server = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.cpu_percent(interval=1.0) > 30:
            pass
    except psutil.Error:
        pass
    stop(proc)
    run(
        ["psql", *PG, "-q", "-d", PRODUCT_DB, "-c", "DELETE FROM messaging_socketpresence"],
        stdout=subprocess.DEVNULL,
        check=False,
    )


def bench_idle(cfg: dict, ctx: dict) -> dict:
    """Idle sockets on a fresh product process; then, on another, many users at a low rate."""
    proc, url = start_product("product-idle", ctx)
    try:
        idle = loadgen(
            [
                *("--mode", "idle", "--kind", "product", "--label", "product: idle sockets"),
                *("--url", url, "--server-pid", str(proc.pid), "--users", str(ctx["idle_file"])),
                *("--count", str(cfg["idle_sockets"]), "--idle-ping-s", str(cfg["idle_ping_s"])),
                *(
                    ("--profile-out", str(RESULTS / "idle-profile.txt"), "--profile-phase", "idle")
                    if PROFILE and os.environ.get("BENCH_PROFILE_PHASE") == "idle"
                    else ()
                ),
            ],
            RESULTS / "idle.json",
            120 + cfg["idle_sockets"] / 10 + 2 * cfg["idle_ping_s"],
        )
    finally:
        stop_product(proc)
    if not QUICK:
        wait_for_quiet(cfg["quiet_wait_s"] / 4)
    analyze(PRODUCT_DB)
    plan = {
        # As in the product's phases: its people have talked before (a conversation's first
        # messages also open it and show each writer's presence to the other).
        "warmup_s": cfg["warmup_s"],
        "open": [{"rate": cfg["many_rate"], "duration_s": cfg["many_s"]}],
        "drain_s": cfg["drain_s"],
        "settle_max_s": cfg["settle_max_s"],
        "timeout_s": 5,
        "answer_wait_s": 15,
    }
    proc, url = start_product("product-many", ctx)
    try:
        many = loadgen(
            [
                *("--kind", "product", "--label", f"product: {cfg['many_users']} users"),
                *("--url", url, "--server-pid", str(proc.pid), "--users", str(ctx["idle_file"])),
                *("--count", str(cfg["many_users"]), "--plan", json.dumps(plan)),
                *("--db-url", f"postgresql://postgres@{HOST}:5432/{PRODUCT_DB}"),
                *(
                    (
                        *("--profile-out", str(RESULTS / "many-users-profile.txt")),
                        *("--profile-phase", f"open{cfg['many_rate']}"),
                    )
                    if PROFILE
                    else ()
                ),
            ],
            RESULTS / "many_users.json",
            120 + cfg["many_users"] / 10 + cfg["many_s"],
        )
    finally:
        save_metrics(url, "many-users")
        stop_product(proc)
    # The same people typing before each DM and reading each one received (bench/loadgen.py,
    # "chatter"), on a fresh process: what those frames add to a DM's cost and its tail.
    if not QUICK:
        wait_for_quiet(cfg["quiet_wait_s"] / 4)
    chatter_plan = json.dumps(plan | {"chatter": True})
    proc, url = start_product("product-chatting", ctx)
    try:
        chatting = loadgen(
            [
                *("--kind", "product", "--label", f"product: {cfg['many_users']} users chatting"),
                *("--url", url, "--server-pid", str(proc.pid), "--users", str(ctx["idle_file"])),
                *("--count", str(cfg["many_users"]), "--plan", chatter_plan),
                *("--db-url", f"postgresql://postgres@{HOST}:5432/{PRODUCT_DB}"),
                *(
                    (
                        *("--profile-out", str(RESULTS / "chatting-profile.txt")),
                        *("--profile-phase", f"open{cfg['many_rate']}"),
                    )
                    if PROFILE and os.environ.get("BENCH_PROFILE_PHASE") == "chatting"
                    else ()
                ),
            ],
            RESULTS / "many_users_chatting.json",
            120 + cfg["many_users"] / 10 + cfg["many_s"],
        )
    finally:
        stop_product(proc)
    return {"idle": idle, "many_users": many, "many_users_chatting": chatting}


def bench_abuse(cfg: dict, ctx: dict) -> dict:
    """One user floods a fresh product process from 20 never-reading sockets; two others chat."""
    deployed = {k: v for k, v in ctx["product_env"].items() if k not in RAISED_LIMITS[1:]}
    proc, url = start_product("product-abuse", {**ctx, "product_env": deployed})
    try:
        done = run(
            [
                PY,
                "-m",
                "tests.abuse",
                *("--url", f"{url}/ws/chat/", "--server-pid", str(proc.pid)),
                *("--duration", str(cfg["abuse_s"])),
            ],
            cwd=PRODUCT,
            env={**deployed, "DJANGO_SETTINGS_MODULE": "chatsite.settings"},
            timeout=cfg["abuse_s"] + 120,
            capture_output=True,
            text=True,
        )
    finally:
        save_metrics(url, "abuse")
        stop_product(proc)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    (RESULTS / "abuse.json").write_text(json.dumps(figures, indent=2))
    return figures


def main() -> None:
    cfg = config()
    started = time.monotonic()
    RESULTS.mkdir(parents=True, exist_ok=True)
    TMP.mkdir(parents=True, exist_ok=True)
    atexit.register(stop_all)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    preflight()
    busy = wait_for_quiet(cfg["quiet_wait_s"])
    info = machine_info(cfg)
    info["machine_busy_pct_at_start"] = round(busy, 1)
    log(f"{'quick' if QUICK else 'full'} run; results in {shown(RESULTS)}")
    for old in RESULTS.glob("*.json"):
        old.unlink()

    log("fresh databases, migrations, users and tokens")
    fresh_database(PRODUCT_DB)
    fresh_database(TUTORIAL_DB)
    for db in (PRODUCT_REDIS_DB, TUTORIAL_REDIS_DB):
        run(
            ["redis-cli", "-h", HOST, "-p", "6379", "-n", str(db), "flushdb"],
            stdout=subprocess.DEVNULL,
        )
    penv = product_env("bench-" + secrets.token_urlsafe(32))
    run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=PRODUCT, env=penv, timeout=300)
    run(
        [PY, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=BENCH / "tutorial",
        env=tutorial_env("redis", True),
        timeout=300,
    )
    users_file = TMP / "users.json"
    idle_file = TMP / "idle_users.json"
    run(
        [PY, str(BENCH / "product_users.py"), "u", str(cfg["users"]), str(users_file)],
        cwd=PRODUCT,
        env=penv,
        timeout=300,
    )
    wants_idle = "idle" in cfg["servers"]
    if wants_idle:
        count = max(cfg["idle_sockets"], cfg["many_users"])
        run(
            [PY, str(BENCH / "product_users.py"), "i", str(count), str(idle_file)],
            cwd=PRODUCT,
            env=penv,
            timeout=600,
        )
    analyze(PRODUCT_DB)
    analyze(TUTORIAL_DB)
    ctx = {"product_env": penv, "users_file": users_file, "idle_file": idle_file}

    results: dict = {"machine": info, "servers": {}}
    for key in cfg["servers"]:
        if key in ("idle", "abuse", *MODULE_PHASES):
            continue
        if time.monotonic() - started > cfg["max_total_s"]:
            log(f"time budget spent: {key} skipped")
            continue
        if not QUICK:
            wait_for_quiet(cfg["quiet_wait_s"] / 4)
        log(f"{key}: {SERVERS[key]}")
        try:
            results["servers"][key] = bench_server(key, cfg, ctx)
            if key == "product":
                # The bigdb phase compares its DM closed loop with this one.
                phases = results["servers"][key].get("phases", [])
                closed = [phase for phase in phases if phase["name"] == "closed"]
                ctx["product_closed_per_s"] = closed[0]["delivered_per_s"] if closed else None
        except RuntimeError as exc:
            log(f"{key} FAILED: {exc}")
            results["servers"][key] = {"key": key, "server": SERVERS[key], "failed": str(exc)}
    if wants_idle and time.monotonic() - started <= cfg["max_total_s"]:
        log(
            f"product: {cfg['idle_sockets']} idle sockets, then {cfg['many_users']} users "
            f"at {cfg['many_rate']} DMs/s"
        )
        try:
            results.update(bench_idle(cfg, ctx))
        except RuntimeError as exc:
            log(f"idle/many-users FAILED: {exc}")
            results["idle_failed"] = str(exc)
    if "abuse" in cfg["servers"] and time.monotonic() - started <= cfg["max_total_s"]:
        log(f"product: abuse, one user's 20 never-reading sockets flood for {cfg['abuse_s']} s")
        try:
            results["abuse"] = bench_abuse(cfg, ctx)
        except (RuntimeError, subprocess.SubprocessError, ValueError, IndexError) as exc:
            log(f"abuse FAILED: {exc}")
            results["abuse_failed"] = str(exc)
    for key, (module_name, function, what) in MODULE_PHASES.items():
        if key not in cfg["servers"] or time.monotonic() - started > cfg["max_total_s"]:
            continue
        module = importlib.import_module(module_name)
        log(f"product: {what} ({key})")
        try:
            results[key] = getattr(module, function)(cfg, ctx, sys.modules[__name__])
        except (RuntimeError, subprocess.SubprocessError, ValueError, OSError) as exc:
            log(f"{key} FAILED: {exc}")
            results[f"{key}_failed"] = str(exc)
    results["machine"]["elapsed_s"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    (RESULTS / "summary.json").write_text(json.dumps(results, indent=2))
    stop_all()

    from report import write_report

    write_report(results, RESULTS)
    for name in ("product-profile", "idle-profile", "many-users-profile", "groups-profile"):
        profile = RESULTS / f"{name}.txt"
        if PROFILE and profile.exists():
            from profile_summary import summarise

            (RESULTS / f"{name}-summary.txt").write_text(summarise(profile, 40))
            log(f"py-spy profile: {shown(RESULTS)}/{name}-summary.txt")
    log(f"done in {results['machine']['elapsed_s']} s: {shown(RESULTS)}/summary.md")
    print((RESULTS / "summary.md").read_text())
    failed = [k for k, v in results["servers"].items() if v.get("failed")]
    if failed or results.get("idle_failed") or results.get("abuse_failed"):
        raise SystemExit(f"bench: failed: {', '.join(failed) or 'idle or abuse'}")
    for key in MODULE_PHASES:
        if results.get(f"{key}_failed"):
            raise SystemExit(f"bench: {key} failed: {results[f'{key}_failed']}")
    product = results["servers"].get("product") or {}
    product_lost = sum(phase.get("lost", 0) for phase in product.get("phases", []))
    product_lost += (results.get("abuse") or {}).get("lost", 0)
    for key in ("many_users", "many_users_chatting"):
        product_lost += sum(
            phase.get("lost", 0) for phase in (results.get(key) or {}).get("phases", [])
        )
    for key in ("groups", "reconnect"):
        if results.get(key):
            module = importlib.import_module(MODULE_PHASES[key][0])
            product_lost += module.lost_total(results[key])
    if product_lost:
        # The other servers make no promise; the product does.
        raise SystemExit(f"bench: the product lost {product_lost} message(s)")


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    main()
