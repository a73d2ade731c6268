"""The `groups` phase of `make bench`: fan-out to groups of 50 whose members are all online.

bench/run.py calls `bench_groups` (BENCH_SERVERS holding `groups`). It makes the groups'
users and tokens in the product's database through the product's own services (`setup`,
below: conversation_create_group, as a person creating a group does), starts one daphne
pinned to core 0, and drives it from core 1 with bench/group_load.py: every member online
with one socket, a closed loop (a few senders per group, each keeping a window of messages
in flight) and an open loop at offered rates in deliveries per second (a message to a
group of 50 is 50 deliveries). The targets of issue 21 are PASS/FAIL lines of the report.

Knobs: BENCH_GROUPS (20; quick 4), BENCH_GROUP_SIZE (50; quick 10), BENCH_GROUP_SENDERS
(senders per group in the closed loop, 2), BENCH_GROUP_WINDOW (messages in flight per
sender, 2), BENCH_GROUP_RATES (offered deliveries/s, "2500,5000,10000"; quick "1000,2000"),
BENCH_GROUP_CLOSED_S and BENCH_GROUP_OPEN_S (the run's closed_s and open_s).
BENCH_PROFILE=1 with BENCH_PROFILE_PHASE=groups-closed (or groups-open5000) writes a py-spy
profile of the server to groups-profile.txt.

    python bench/groups.py setup COUNT SIZE OUT.json   # with the product's settings
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# Issue 21: groups of 50, every member online.
TARGET_CLOSED_PER_S = 15_000
TARGET_OPEN_RATE = 5_000
TARGET_P99_MS = 50


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def plan_of(cfg: dict, quick: bool) -> tuple[dict, int, int]:
    """Return the load plan, the number of groups and their size."""
    rates = os.environ.get("BENCH_GROUP_RATES") or ("1000,2000" if quick else "2500,5000,10000")
    plan = {
        "warmup_s": cfg["warmup_s"],
        "closed": {
            "duration_s": float(os.environ.get("BENCH_GROUP_CLOSED_S") or cfg["closed_s"]),
            "senders": _env_int("BENCH_GROUP_SENDERS", 2),
            "window": _env_int("BENCH_GROUP_WINDOW", 2),
        },
        "open": [
            {
                "deliveries_per_s": int(rate),
                "duration_s": float(os.environ.get("BENCH_GROUP_OPEN_S") or cfg["open_s"]),
            }
            for rate in rates.split(",")
            if rate.strip()
        ],
        "drain_s": cfg["drain_s"],
        "settle_max_s": cfg["settle_max_s"],
        "answer_wait_s": 5 if quick else 30,
    }
    count = _env_int("BENCH_GROUPS", 4 if quick else 20)
    size = _env_int("BENCH_GROUP_SIZE", 10 if quick else 50)
    return plan, count, size


def bench_groups(cfg: dict, ctx: dict, runner) -> dict:
    """Make the groups, serve them with one fresh daphne, drive it; return the figures."""
    plan, count, size = plan_of(cfg, runner.QUICK)
    env = dict(ctx["product_env"])
    # A group of more than the deployed maximum only when asked for (BENCH_GROUP_SIZE).
    env["CHAT_MAX_GROUP_SIZE"] = str(max(size, 50))
    env["CHAT_CONVERSATION_RATE"] = "1000000/1s"
    users_file = runner.TMP / "group_users.json"
    runner.run(
        [runner.PY, str(BENCH / "groups.py"), "setup", str(count), str(size), str(users_file)],
        cwd=runner.PRODUCT,
        env=env,
        timeout=600,
    )
    runner.analyze(runner.PRODUCT_DB)
    if not runner.QUICK:
        runner.wait_for_quiet(cfg["quiet_wait_s"] / 4)
    proc, url = runner.start_product("product-groups", {**ctx, "product_env": env})
    out = runner.RESULTS / "groups.json"
    per_open = plan["open"][0]["duration_s"] + plan["drain_s"] + plan["settle_max_s"] + 6
    budget = (
        60
        + count * size / 20
        + plan["warmup_s"]
        + plan["closed"]["duration_s"]
        + 2 * plan["settle_max_s"]
        + per_open * len(plan["open"])
        + 60
    )
    command = [
        *(runner.PY, str(BENCH / "group_load.py"), "--url", url, "--groups", str(users_file)),
        *("--server-pid", str(proc.pid), "--plan", json.dumps(plan)),
        *("--db-url", f"postgresql://postgres@{runner.HOST}:5432/{runner.PRODUCT_DB}"),
        *("--timeout", "3" if runner.QUICK else "5"),
        *("--out", str(out), "--budget", str(budget)),
    ]
    phase = os.environ.get("BENCH_PROFILE_PHASE", "")
    if runner.PROFILE and phase.startswith("groups-"):
        command += ["--profile-out", str(runner.RESULTS / "groups-profile.txt")]
        command += ["--profile-phase", phase.removeprefix("groups-")]
    runner.log(f"  group load: {count} groups of {size}, rates {plan['open']}")
    try:
        runner.run(runner.pinned(1, command), cwd=runner.ROOT, timeout=budget + 30)
    finally:
        runner.save_metrics(url, "groups")
        runner.stop_product(proc)
    result = json.loads(out.read_text())
    result["plan"] = plan
    out.write_text(json.dumps(result, indent=2))
    return result


# --------------------------------------------------------------------------- report


def _phase(result: dict, name: str) -> dict | None:
    return next((p for p in result.get("phases", []) if p["name"] == name), None)


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.1f} ms"


def targets(result: dict):
    """Yield (text, passed) for each target of the phase (None: not measured)."""
    size = result.get("group_size")
    note = "" if size == 50 else f" (groups of {size} in this run)"
    closed = _phase(result, "closed")
    rate = closed["deliveries_per_s"] if closed else None
    yield (
        f"groups: closed loop ≥ {TARGET_CLOSED_PER_S:,} deliveries/s{note}: "
        + (f"{rate:,.0f}" if rate is not None else "not measured"),
        rate >= TARGET_CLOSED_PER_S if rate is not None else None,
    )
    name = f"open{TARGET_OPEN_RATE}"
    opened = _phase(result, name)
    if opened:
        p99 = opened["latency_ms"]["p99"]
        yield (
            f"groups: {TARGET_OPEN_RATE:,} deliveries/s offered, p99 ≤ {TARGET_P99_MS} ms "
            f"and 0 lost{note}: p99 {_ms(p99)}, lost {opened.get('lost', 0)}",
            p99 is not None
            and p99 <= TARGET_P99_MS
            and not opened.get("lost")
            and opened["delivered"] == opened["deliveries_expected"],
        )
    else:
        skipped = TARGET_OPEN_RATE in result.get("skipped_rates", [])
        yield (
            f"groups: {TARGET_OPEN_RATE:,} deliveries/s offered: "
            + ("not run (saturated at a lower rate)" if skipped else "not in this run's rates"),
            False if skipped else None,
        )
    check = result.get("check")
    if check:
        lost = check["lost_deliveries"] + check["acked_not_stored"]
        yield (
            f"groups: nothing lost (acked ⇒ stored ⇒ every member has it): {lost} lost",
            lost == 0 and not check["sync_failed"],
        )


def lost_total(result: dict) -> int:
    """Return the deliveries the product lost in the phase (acked, then missing)."""
    check = result.get("check") or {}
    return check.get("lost_deliveries", 0) + check.get("acked_not_stored", 0)


def report_lines(result: dict) -> list[str]:
    """Return the phase's section of summary.md."""
    lines = ["## Groups", ""]
    lines.append(
        f"{result['groups']} groups of {result['group_size']} ({result['members']} users, "
        f"every one online with one socket, handshakes {result['connect_per_s']}/s); one "
        "message is a delivery to each member's socket, the sender's own included. Latency "
        "runs from the time a message was due to each member's `message.new`. Closed loop: "
        f"{result['plan']['closed']['senders']} senders per group, "
        f"{result['plan']['closed']['window']} messages in flight each."
    )
    lines.append("")
    cols = [
        "phase",
        "messages",
        "deliveries/s",
        "p50",
        "p99",
        "max",
        "lost",
        "server CPU µs/delivery",
        "server CPU %",
        "PG+Redis µs/delivery",
        "generator CPU %",
        "other CPU %",
    ]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for phase in result.get("phases", []):
        lat = phase["latency_ms"]
        name = (
            "closed"
            if phase["mode"] == "closed"
            else f"open {phase['offered_deliveries_per_s']:,}/s"
            f" ({phase['offered_messages_per_s']:g} messages/s)"
        )
        if phase.get("stopped_overloaded_after_s") is not None:
            name += f", overloaded after {phase['stopped_overloaded_after_s']} s"
        cells = [
            name,
            str(phase["messages_sent"]),
            f"{phase['deliveries_per_s']:,.0f}",
            _ms(lat["p50"]),
            _ms(lat["p99"]),
            _ms(lat["max"]),
            str(phase.get("lost", 0)),
            str(phase["server_cpu_us_per_delivery"]),
            str(phase["server_cpu_pct"]),
            str(phase["pg_redis_cpu_us_per_delivery"]),
            str(phase["generator_cpu_pct"]),
            f"{max(phase.get('other_cpu_pct') or 0, 0):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for rate in result.get("skipped_rates", []):
        lines.append(f"| open {rate:,}/s | not run: saturated below |" + " |" * (len(cols) - 2))
    lines.append("")
    check = result.get("check")
    if check:
        lines.append(
            f"Check (every member pages `sync` from 0): {check['messages']} messages, "
            f"{check['acked']} acked, {check['stored']} stored, {check['errors']} refused, "
            f"{check['unanswered']} unanswered, {check['acked_not_stored']} acked but not "
            f"stored; **{check['lost_deliveries']} deliveries lost** "
            f"({check['messages_with_lost_deliveries']} messages); "
            f"{check['push_missed_healed_by_sync']} pushes missed and healed by sync; "
            f"{check['sync_failed']} syncs failed."
        )
        lines.append("")
    lines.append("Targets of issue 21 (groups):")
    lines.append("")
    for text, ok in targets(result):
        lines.append(f"- {'PASS' if ok else 'FAIL' if ok is not None else 'n/a '} {text}")
    lines.append("")
    return lines


# --------------------------------------------------------------------------- setup


def setup(count: int, size: int, out: Path) -> None:
    """Make COUNT groups of SIZE new users through the product's services; write tokens."""
    sys.path.insert(0, os.getcwd())  # the product checkout (bench/run.py sets it)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from messaging.domain.services import conversation_create_group
    from messaging.domain.tokens import token_issue

    User = get_user_model()
    names = [f"g{index:05d}" for index in range(count * size)]
    with transaction.atomic():
        fresh = []
        for name in names:
            user = User(username=name)
            user.set_unusable_password()
            fresh.append(user)
        User.objects.bulk_create(fresh, batch_size=1000)
    users = {user.username: user for user in User.objects.filter(username__in=names)}
    groups = []
    for g in range(count):
        members = [users[name] for name in names[g * size : (g + 1) * size]]
        conversation = conversation_create_group(
            creator=members[0], others=members[1:], title=f"bench group {g}"
        )
        groups.append(
            {
                "conversation": conversation.pk,
                "members": [
                    {"username": m.username, "token": token_issue(user=m)} for m in members
                ],
            }
        )
    out.write_text(json.dumps(groups))
    print(f"{count} groups of {size} in {out}")


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "setup":
        raise SystemExit("usage: python bench/groups.py setup COUNT SIZE OUT.json")
    setup(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
