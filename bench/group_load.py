"""Load generator of the `groups` phase: groups whose members are all online, one socket each.

    python bench/group_load.py --url ws://127.0.0.1:PORT --groups GROUPS.json --plan JSON \
        --db-url postgresql://... --out OUT.json [--server-pid PID] [--budget S]

GROUPS.json (bench/groups.py `setup`) lists each group's conversation id and its members'
usernames and bearer tokens. Every member opens one socket (the shared client of the
protocol, messaging/client/). A message to a group of N is N deliveries: it counts as
delivered to a member when that member's socket has its `message.new` (the sender's own
socket too, which PROTOCOL.md promises it), and each delivery's latency runs from the time
the message was due.

Phases (--plan):
- warmup:  a short closed loop, not reported.
- closed:  `senders` members of each group keep `window` messages each in flight; a slot
           frees when every member has the message (or the server refused it).
- open:    messages at fixed offered rates, given in deliveries per second (rate / N
           messages per second), the senders taking turns over every member of every group;
           message k is due at t0 + k / rate and its deliveries are timed from then.
Then every member pages `sync` from 0 and the check compares the acked sends, the database
rows and what each member has (pushes plus sync): an acked message missing from a member is
a lost delivery.

What this shares with bench/loadgen.py (the meter, pacing, settling, the final sync) is in
bench/load_base.py. Every loop is bounded in count and time; the only network peer is
127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from load_base import (
    Budget,
    LoadHarness,
    _round,
    apply_check,
    check_url,
    common_arguments,
    cpu_fields,
    cpu_use,
    now,
    product_client,
    rounded_percentiles,
    run_and_write,
    stored_rows,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from messaging.client import ChatClient


class Rec:
    """One message to a group: when it was due, sent, acked, and how many members lack it."""

    __slots__ = ("ack", "err", "group", "left", "phase", "sched", "sender", "sent")

    def __init__(self, phase: str, sender: int, group: int, sched: float, size: int) -> None:
        self.phase = phase
        self.sender = sender
        self.group = group
        self.sched = sched
        self.sent = None
        self.ack = None
        self.err = None
        self.left = size


@dataclass
class Member:
    """One member's socket and the client_ids it was pushed."""

    index: int
    name: str
    token: str
    group: int
    chat: ChatClient | None = None
    got: set = field(default_factory=set)
    closed: bool = False
    watcher: asyncio.Task | None = None


@dataclass
class PhaseStats:
    """What the deliveries of one phase did, counted as they arrive."""

    start: float
    end: float
    latencies: list = field(default_factory=list)  # s, one per delivery
    in_window: int = 0


class GroupHarness(LoadHarness):
    def __init__(self, args, groups: list[dict]) -> None:
        super().__init__(args, recent=200, recent_min=50)
        self.members: list[Member] = []
        self.groups: list[list[int]] = []
        self.conversations: list[int] = []
        for g, group in enumerate(groups):
            self.conversations.append(group["conversation"])
            first = len(self.members)
            for person in group["members"]:
                member = Member(len(self.members), person["username"], person["token"], g)
                self.members.append(member)
            self.groups.append(list(range(first, len(self.members))))
        self.recs: dict[str, Rec] = {}
        self.stats: dict[str, PhaseStats] = {}
        self.counter = 0

    # --- frames

    def on_frame(self, member: Member, frame: dict) -> None:
        t = now()
        self.frames_in += 1
        kind = frame.get("type")
        if kind == "message.new":
            cid = frame["message"].get("client_id")
            rec = self.recs.get(cid) if cid else None
            if rec is None or cid in member.got:
                return
            member.got.add(cid)
            rec.left -= 1
            stats = self.stats[rec.phase]
            stats.latencies.append(t - rec.sched)
            if stats.start <= t <= stats.end:
                stats.in_window += 1
            if rec.phase == self.current_phase:
                self.recent.append(t - rec.sched)
            if rec.left == 0:
                self._done(cid)
        elif kind == "message.ack":
            rec = self.recs.get(frame["client_id"])
            if rec is not None and rec.ack is None:
                rec.ack = t
        elif kind == "error":
            self._on_error(frame)

    # --- sockets

    async def open_all(self, parallel: int = 8) -> float:
        """Open every member's socket, `parallel` at a time; return handshakes per second.

        Fewer at a time than the DM phases' 32: each member's handshake announces them to
        the rest of their group, and 32 such handshakes queued in one process overran
        daphne's 5 s handshake timeout on a busy machine (the client retries for a minute).
        """
        gate = asyncio.Semaphore(parallel)
        started = now()

        async def one(member: Member) -> None:
            async with gate:
                member.chat = product_client(
                    self.member_url(member),
                    member.token,
                    lambda frame: self.on_frame(member, frame),
                )
                try:
                    await member.chat.connect(retry_for=60, ready_timeout=30)
                except Exception as exc:
                    raise RuntimeError(f"could not open socket of {member.name}: {exc!r}") from exc
                member.watcher = asyncio.create_task(self._watch_closed(member))

        await asyncio.gather(*(one(m) for m in self.members))
        return len(self.members) / max(now() - started, 1e-9)

    def member_url(self, member: Member) -> str:
        """Return the socket URL of a member (one server here; bench/costs.py spreads them)."""
        return f"{self.args.url.rstrip('/')}/ws/chat/"

    async def close_all(self) -> None:
        async def one(member: Member) -> None:
            try:
                await asyncio.wait_for(member.chat.close(), 3)
            except Exception:
                pass

        await asyncio.gather(*(one(m) for m in self.members if m.chat is not None))

    # --- sending

    async def send(self, phase: str, sender: Member, sched: float) -> str:
        self.counter += 1
        cid = f"{phase}-{sender.index}-{self.counter}"
        rec = Rec(phase, sender.index, sender.group, sched, len(self.groups[sender.group]))
        self.recs[cid] = rec
        frame = {
            "type": "message.send",
            "conversation": self.conversations[sender.group],
            "body": f"bench {cid}",
            "client_id": cid,
        }
        await sender.chat.send_frame(frame)
        rec.sent = now()
        return cid

    async def closed_loop(self, phase: str, duration: float, senders: int, window: int) -> dict:
        loop = asyncio.get_running_loop()
        timeout = self.args.timeout
        start_sample = self.meter.sample()
        start = start_sample["t"]
        deadline = start + duration
        self.stats[phase] = PhaseStats(start, deadline)

        async def slot(member: Member) -> None:
            while now() < deadline and not member.closed:
                waiter = loop.create_future()
                try:
                    cid = await self.send(phase, member, now())
                    self.waiters[cid] = waiter
                    if self.recs[cid].left == 0 or self.recs[cid].err:
                        self.waiters.pop(cid, None)
                        continue
                    await asyncio.wait_for(waiter, timeout)
                except TimeoutError:
                    # A delivery may be lost: move on once the server answered, so that a
                    # slow server never holds more than `window` messages per sender.
                    self.waiters.pop(cid, None)
                    if not await self._answered(self.recs[cid], 10):
                        return
                except Exception:
                    return

        chosen = [self.members[i] for group in self.groups for i in group[:senders]]
        slots = (slot(m) for m in chosen for _ in range(window))
        end_sample = await self._gather_profiled(phase, duration, slots)
        return {
            "name": phase,
            "mode": "closed",
            "senders": len(chosen),
            "window": window,
            "duration_s": duration,
            "_samples": (start_sample, end_sample),
        }

    async def open_loop(self, phase: str, rate: float, duration: float, plan: dict) -> dict:
        """Offer `rate` deliveries per second for `duration` s; drain and settle after."""
        size = len(self.groups[0])
        per_s = rate / size
        total = int(per_s * duration)
        interval = 1.0 / per_s
        count = len(self.groups)
        start_sample = self.meter.sample()
        t0 = start_sample["t"] + 0.05
        self.stats[phase] = PhaseStats(t0, t0 + duration)
        self.recent.clear()
        self.current_phase = phase
        cids: list[str] = []

        async def send(k: int, due: float) -> None:
            # Turns across the groups first, so that consecutive messages go to
            # different groups, then across each group's members.
            group = self.groups[k % count]
            sender = self.members[group[(k // count) % len(group)]]
            if not sender.closed:
                try:
                    cids.append(await self.send(phase, sender, due))
                except Exception:
                    pass

        profiler = self._start_profiler(phase, duration)
        stopped_at = await self._pace(t0, total, interval, send)
        sched_end = now()
        if profiler is not None:
            await asyncio.to_thread(profiler.wait, 60)
        drain_deadline = sched_end + plan.get("drain_s", 3)
        while now() < drain_deadline:
            if not any(self.recs[c].left and self.recs[c].err is None for c in cids):
                break
            await asyncio.sleep(0.1)
        pending = any(self.recs[c].left and self.recs[c].err is None for c in cids)
        settled = await self.settle(plan.get("settle_max_s", 10)) if pending else True
        end_sample = self.meter.sample()
        return {
            "name": phase,
            "mode": "open",
            "offered_deliveries_per_s": rate,
            "offered_messages_per_s": round(per_s, 1),
            "duration_s": duration,
            "scheduled": total,
            "saturated": not settled or stopped_at is not None,
            "stopped_overloaded_after_s": None if stopped_at is None else round(stopped_at, 2),
            "_samples": (start_sample, end_sample),
        }

    # --- report and check

    def phase_report(self, info: dict) -> dict:
        start_sample, end_sample = info.pop("_samples")
        stats = self.stats[info["name"]]
        recs = [r for r in self.recs.values() if r.phase == info["name"] and r.sent is not None]
        size = len(self.groups[0])
        delivered = len(stats.latencies)
        use = cpu_use(start_sample, end_sample)
        per = max(delivered, 1)
        latencies = [s * 1000 for s in stats.latencies]
        acks = [(r.ack - r.sched) * 1000 for r in recs if r.ack is not None]
        report = dict(info)
        report.update(
            {
                "messages_sent": len(recs),
                "deliveries_expected": len(recs) * size,
                "delivered": delivered,
                "errors": sum(1 for r in recs if r.err is not None),
                "deliveries_per_s": round(stats.in_window / info["duration_s"], 1),
                "latency_ms": rounded_percentiles(latencies),
                "ack_latency_ms": rounded_percentiles(acks),
                "server_cpu_us_per_delivery": _round(use["server"] * 1e6 / per),
                "pg_redis_cpu_us_per_delivery": _round(use["infra"] * 1e6 / per),
                **cpu_fields(use, end_sample),
                "wall_s": _round(use["wall"]),
            }
        )
        return report

    async def check(self, answer_wait: float, deadline: float) -> dict:
        """Sync every member from 0; count acked messages a member has neither by push nor sync."""
        await self._wait_answered(answer_wait)

        async def seen(member: Member) -> set[str]:
            changes = await member.chat.sync(0, timeout=60)
            return {c.get("client_id") for c in changes} - {None}

        synced, failed, sync_s = await self._sync_each(self.members, deadline, seen)
        stored = self._stored()
        totals = {
            "messages": 0,
            "acked": 0,
            "stored": 0,
            "errors": 0,
            "unanswered": 0,
            "acked_not_stored": 0,
            "lost_deliveries": 0,
            "messages_with_lost_deliveries": 0,
            "push_missed_healed_by_sync": 0,
        }
        per_phase: dict[str, dict[str, int]] = {}
        for cid, rec in self.recs.items():
            if rec.sent is None:
                continue
            counts = per_phase.setdefault(rec.phase, {"lost": 0, "push_missed": 0})
            totals["messages"] += 1
            is_stored = cid in stored
            totals["stored"] += is_stored
            totals["errors"] += rec.err is not None
            totals["acked"] += rec.ack is not None
            totals["unanswered"] += rec.ack is None and rec.err is None
            totals["acked_not_stored"] += rec.ack is not None and not is_stored
            if not (is_stored or rec.ack is not None):
                continue
            missing = 0
            for index in self.groups[rec.group]:
                if index not in synced:
                    continue  # its sync failed: counted in sync_failed, not as lost
                if cid in self.members[index].got:
                    continue
                if cid in synced[index]:
                    totals["push_missed_healed_by_sync"] += 1
                    counts["push_missed"] += 1
                else:
                    missing += 1
            totals["lost_deliveries"] += missing
            totals["messages_with_lost_deliveries"] += missing > 0
            counts["lost"] += missing
        totals["db_rows_not_sent"] = len(stored - {c for c, r in self.recs.items() if r.sent})
        totals["sync_s"] = round(sync_s, 2)
        totals["sync_failed"] = len(failed)
        totals["sync_failed_examples"] = failed[:5]
        totals["per_phase"] = per_phase
        return totals

    def _stored(self) -> set[str]:
        """Return the client_ids of every message the members sent, from the database."""
        rows = stored_rows(
            self.args.db_url,
            "SELECT m.client_id FROM messaging_message m "
            "JOIN auth_user u ON u.id = m.sender_id "
            "WHERE u.username = ANY(%s) AND m.client_id IS NOT NULL",
            ([m.name for m in self.members],),
        )
        return {cid for (cid,) in rows}


async def run(args, groups: list[dict]) -> dict:
    harness = GroupHarness(args, groups)
    plan = json.loads(args.plan)
    budget = Budget(args.budget, Path(args.out))
    result: dict = {
        "groups": len(harness.groups),
        "group_size": len(harness.groups[0]),
        "members": len(harness.members),
        "phases": [],
        "skipped_rates": [],
    }
    result["connect_per_s"] = round(await harness.open_all(), 1)
    # Presence announcements of the handshakes: let the server finish them first.
    await harness.settle(plan.get("settle_max_s", 10))
    closed = plan["closed"]
    if plan.get("warmup_s"):
        info = await harness.closed_loop("warmup", plan["warmup_s"], 1, 1)
        result["warmup"] = harness.phase_report(info)
        await harness.settle(plan.get("settle_max_s", 10))
    info = await harness.closed_loop(
        "closed", closed["duration_s"], closed["senders"], closed["window"]
    )
    await asyncio.sleep(plan.get("drain_s", 3) / 3)
    result["phases"].append(harness.phase_report(info))
    budget.save(result)
    await harness.settle(plan.get("settle_max_s", 10))
    for step in plan.get("open", []):
        rate = step["deliveries_per_s"]
        if budget.skips(result, plan, step["duration_s"]):
            result["skipped_rates"].append(rate)
            continue
        info = await harness.open_loop(f"open{rate}", rate, step["duration_s"], plan)
        result["phases"].append(harness.phase_report(info))
        budget.save(result)
    answer_wait, deadline = budget.check_times(plan)
    result["check"] = await harness.check(answer_wait, deadline=deadline)
    apply_check(result)
    result["errors"] = harness.errors
    result["sockets_dropped"] = sum(1 for m in harness.members if m.closed)
    await harness.close_all()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", required=True, help="JSON from bench/groups.py setup")
    parser.add_argument("--plan", required=True)
    parser.add_argument("--db-url", required=True, help="the product database, for the check")
    parser.add_argument("--timeout", type=float, default=5, help="closed loop: per message")
    common_arguments(parser)
    args = parser.parse_args()
    check_url(parser, args.url)
    run_and_write(args, run, json.loads(Path(args.groups).read_text()))


if __name__ == "__main__":
    main()
