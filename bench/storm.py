"""The `reconnect` phase of `make bench`: every socket of one process cut at once.

bench/run.py calls `bench_reconnect` (BENCH_SERVERS holding `reconnect`). It makes its users
with bench/product_users.py (pairs sharing a direct conversation), starts one daphne pinned
to core 0 and drives it from core 1 with bench/storm_load.py: every user online with one
socket, all cut in the same instant, each coming back with the browser client's own
backoff while a few pairs keep writing. The targets of issue 21 are PASS/FAIL lines.

Knobs: BENCH_STORM_USERS (10000; quick 200), BENCH_STORM_TALKERS (pairs writing during
the storm, 20; quick 5), BENCH_STORM_RATE (their DMs per second in all, 20), BENCH_STORM_S
(how long the phase waits for everyone to come back, 300; quick 60). BENCH_PROFILE=1 with
BENCH_PROFILE_PHASE=reconnect writes py-spy's samples of the server's first 20 s after the
cut to reconnect-profile.txt (bench/profile_summary.py reads it); BENCH_PROFILE_NATIVE=1 adds
C's frames (the garbage collector, system calls).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# Issue 21: 10,000 users' sockets dropped at once, every one back with `ready` within 20 s.
TARGET_USERS = 10_000
TARGET_BACK_S = 20


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def bench_reconnect(cfg: dict, ctx: dict, runner) -> dict:
    """Make the users, serve them with one fresh daphne, cut and time their return."""
    quick = runner.QUICK
    users = _env_int("BENCH_STORM_USERS", 200 if quick else TARGET_USERS)
    talkers = _env_int("BENCH_STORM_TALKERS", 5 if quick else 20)
    rate = _env_int("BENCH_STORM_RATE", 20)
    budget = _env_int("BENCH_STORM_S", 60 if quick else 300)
    users_file = runner.TMP / "storm_users.json"
    runner.run(
        [runner.PY, str(BENCH / "product_users.py"), "r", str(users), str(users_file)],
        cwd=runner.PRODUCT,
        env=ctx["product_env"],
        timeout=900,
    )
    runner.analyze(runner.PRODUCT_DB)
    if not quick:
        runner.wait_for_quiet(cfg["quiet_wait_s"] / 4)
    proc, url = runner.start_product("product-reconnect", ctx)
    out = runner.RESULTS / "reconnect.json"
    command = [
        *(runner.PY, str(BENCH / "storm_load.py"), "--url", f"{url}/ws/chat/"),
        *("--users", str(users_file), "--server-pid", str(proc.pid)),
        *("--talkers", str(talkers), "--rate", str(rate), "--budget", str(budget)),
        *("--db-url", f"postgresql://postgres@{runner.HOST}:5432/{runner.PRODUCT_DB}"),
        *("--out", str(out)),
    ]
    if runner.PROFILE and os.environ.get("BENCH_PROFILE_PHASE") == "reconnect":
        command += ["--profile-out", str(runner.RESULTS / "reconnect-profile.txt")]
    runner.log(f"  reconnect storm: {users} sockets cut at once, {talkers} pairs writing")
    # Opening them first takes a while at a few hundred handshakes a second.
    timeout = 120 + users / 20 + budget
    try:
        runner.run(runner.pinned(1, command), cwd=runner.ROOT, timeout=timeout)
    finally:
        runner.save_metrics(url, "reconnect")
        runner.stop_product(proc)
    return json.loads(out.read_text())


def lost_total(result: dict) -> int:
    """Return the DMs the product lost during the storm (acked, then missing)."""
    return result.get("dms_lost", 0) + result.get("dms_acked_not_stored", 0)


def _s(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f} s"


def targets(result: dict):
    """Yield (text, passed) for each target of the phase."""
    note = "" if result["users"] >= TARGET_USERS else f" ({result['users']:,} users in this run)"
    worst = result["ready_after_ms"]["max"]
    yield (
        f"reconnect: every socket back with `ready` within {TARGET_BACK_S} s{note}: "
        f"{result['within_20s']:,} of {result['users']:,}, the last after {_s(worst)}",
        result["within_20s"] == result["users"],
    )
    # A refused handshake answers an HTTP status; a try that timed out is the 20 s target's.
    refusals = {k: v for k, v in result["failed_tries"].items() if k.isdigit()}
    yield (
        "reconnect: no handshake refused: "
        + (", ".join(f"{n} x HTTP {kind}" for kind, n in sorted(refusals.items())) or "none"),
        not refusals,
    )
    lost = lost_total(result)
    yield (
        f"reconnect: every DM written during the storm delivered: {result['dms_acked']} acked, "
        f"{lost} lost, {result['dms_due'] - result['dms_acked']} never acked",
        lost == 0 and result["dms_acked"] == result["dms_due"],
    )


def report_lines(result: dict) -> list[str]:
    """Return the phase's section of summary.md."""
    ready = result["ready_after_ms"]
    lines = [
        "## Reconnect storm",
        "",
        f"{result['users']:,} users online with one socket each (opened at "
        f"{result['handshakes_per_s_first']} handshakes/s), every socket cut in the same "
        "instant; each comes back with the browser client's backoff and syncs what it "
        f"missed. Back: {result['back']:,}, never back: {result['never_back']:,}; time to "
        f"`ready` from the cut p50 {_s(ready['p50'])}, p99 {_s(ready['p99'])}, last "
        f"{_s(ready['max'])}; tries per user p50 {result['attempts']['p50']}, max "
        f"{result['attempts']['max']}; failed tries {result['failed_tries'] or 'none'}; "
        f"server CPU {result['server_cpu_s']} s from the cut until all were back or the phase "
        f"gave up, {result['server_cpu_ms_per_reconnect']} ms per reconnect (the clean-up of "
        f"the cut sockets included), RSS {result['server_rss_mb']} MB.",
        "",
        "Targets of issue 21 (reconnect):",
        "",
    ]
    for text, ok in targets(result):
        lines.append(f"- {'PASS' if ok else 'FAIL'} {text}")
    lines.append("")
    return lines
