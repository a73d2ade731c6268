"""Load generator of `make bench`: drive one chat server with N users and measure it.

One process, asyncio + the `websockets` library (+ uvloop when installed), pinned by the
caller to a core of its own. Every server is driven the same way; a small adapter per
server kind builds the send frame and reads the pushes:

- product:  bearer token on the handshake to /ws/chat/, `message.send` to the partner's
            username with a unique `client_id`; the recipient and the sender both get
            `message.new`, the sender also `message.ack` (PROTOCOL.md).
- relay:    the Node `ws` relay, ?user=<index> in the URL, {"to", "client_id", "body"}.
- channels: the tutorial-style Channels consumer, /ws/chat/<index>/, same frames.

Users are paired (0 with 1, 2 with 3, ...) and each sends to its partner. A DM counts as
delivered when the recipient's socket has its `message.new`; every DM is also copied to the
sender's socket (the fan-out multi-tab sync needs), and a closed-loop slot frees only when
both copies have arrived.

Phases (from --plan, a JSON object):
- warmup:  a short closed loop, not reported (opens the product's conversations).
- closed:  each user keeps `window` DMs in flight; throughput = deliveries per second.
- open:    DMs at fixed offered rates; DM k is scheduled at t0 + k/rate and its latency is
           measured from that scheduled time, so a server that makes the sender wait
           (backpressure) cannot hide its latency.
After the phases, for the product only: every client sends `sync` from 0 (paging while
`more`) and the harness compares the acked sends, the database rows and each client's
received set (pushes plus sync): a DM acked but missing from its recipient is lost.

With "chatter" in the plan, the product's users also type and read as people in a chat do:
a `typing` frame before each DM in the pair's conversation (a message typed in under the
client's 3 s between two typing signals), and a `read` frame from its
recipient as soon as it arrives (the conversation is open on the screen). Those frames are
counted, sent and received, over the open-loop phases.

--mode idle opens --sockets authenticated sockets that only wait, and reports the server's
RSS growth per socket.

What this shares with bench/group_load.py (the meter, pacing, settling, the final sync) is
in bench/load_base.py. Every loop here is bounded in count and time; the only network peer
is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from load_base import (
    PRODUCT_COMPRESSION,  # noqa: F401 (bench/storm_load.py imports it from here)
    SOCKET_OPTIONS,
    Budget,
    LoadHarness,
    Meter,  # noqa: F401 (bench/storm_load.py imports it from here)
    _ms,
    _round,
    apply_check,
    check_url,
    common_arguments,
    cpu_fields,
    cpu_use,
    now,
    percentiles,  # noqa: F401 (bench/storm_load.py imports it from here)
    product_client,
    rounded_percentiles,
    run_and_write,
    stored_rows,
)
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from messaging.client import ChatClient

# How often an idle browser tab pings (static/messaging/net/socket.js: PING_EVERY).
PING_EVERY_S = 15.0

# --------------------------------------------------------------------------- accounting


class Rec:
    """One DM: when it was scheduled, sent, acked and seen by each side."""

    __slots__ = ("ack", "echo", "err", "phase", "recipient", "recv", "sched", "sender", "sent")

    def __init__(self, phase: str, sender: int, recipient: int, sched: float) -> None:
        self.phase = phase
        self.sender = sender
        self.recipient = recipient
        self.sched = sched
        self.sent = None
        self.ack = None
        self.recv = None
        self.echo = None
        self.err = None


# --------------------------------------------------------------------------- clients


@dataclass
class Client:
    """One user's socket and what it received."""

    index: int
    name: str
    token: str | None
    partner: int = -1
    conversation: int | None = None  # the pair's conversation, once a message shows it
    ws: object = None
    chat: ChatClient | None = None  # the product's socket: the shared client of the protocol
    ready: asyncio.Future | None = None
    got: set = field(default_factory=set)  # client_ids received as the recipient (pushes)
    max_seq: int = 0
    prev_seq_gaps: int = 0
    reader: asyncio.Task | None = None
    closed: bool = False


class Harness(LoadHarness):
    def __init__(self, args, users: list[dict]) -> None:
        super().__init__(args, recent=50, recent_min=20)
        self.kind = args.kind
        self.recs: dict[str, Rec] = {}
        self.clients = [
            Client(i, u["username"], u.get("token"), conversation=u.get("conversation"))
            for i, u in enumerate(users)
        ]
        for client in self.clients:
            client.partner = client.index ^ 1
        self.by_name = {c.name: c for c in self.clients}
        self.seq_counter = 0
        self.pongs = 0
        # The plan's "chatter": typing before each DM, a read of each DM received.
        self.chatter = False
        self.chatter_counts = dict.fromkeys(
            ("typing_sent", "typing_received", "reads_sent", "reads_received"), 0
        )
        self.chatter_tasks: set[asyncio.Task] = set()

    # --- per-server adapter

    def url(self, client: Client) -> str:
        base = self.args.url.rstrip("/")
        if self.kind == "product":
            return f"{base}/ws/chat/"
        if self.kind == "relay":
            return f"{base}/?user={client.index}"
        return f"{base}/ws/chat/{client.index}/"

    def headers(self, client: Client) -> dict[str, str]:
        if self.kind == "product":
            return {"Authorization": f"Bearer {client.token}"}
        return {}

    def send_frame(self, sender: Client, recipient: Client, cid: str, body: str) -> dict:
        if self.kind == "product":
            return {"type": "message.send", "to": recipient.name, "body": body, "client_id": cid}
        return {"to": recipient.index, "client_id": cid, "body": body}

    def on_frame(self, client: Client, frame: dict, t: float) -> None:
        self.frames_in += 1
        kind = frame.get("type")
        if kind == "message.new":
            if self.kind == "product":
                message = frame["message"]
                cid = message["client_id"]
                seq = message["seq"]
                if frame.get("prev_seq", 0) > client.max_seq:
                    client.prev_seq_gaps += 1
                if seq > client.max_seq:
                    client.max_seq = seq
                client.conversation = message["conversation"]
                mine = message["sender"]["username"] == client.name
                if self.chatter and not mine:
                    self._mark_read(client, message)
            else:
                cid = frame["client_id"]
                mine = str(frame["from"]) == str(client.index)
            rec = self.recs.get(cid)
            if mine:
                if rec is not None and rec.echo is None:
                    rec.echo = t
            else:
                client.got.add(cid)
                if rec is not None and rec.recv is None:
                    rec.recv = t
                    if rec.phase == self.current_phase:
                        self.recent.append(t - rec.sched)
            if rec is not None and rec.recv is not None and rec.echo is not None:
                self._done(cid)
        elif kind == "message.ack":
            rec = self.recs.get(frame["client_id"])
            if rec is not None and rec.ack is None:
                rec.ack = t
        elif kind == "ready":
            if self.kind == "product":
                client.max_seq = max(client.max_seq, frame.get("last_seq", 0))
            if client.ready is not None and not client.ready.done():
                client.ready.set_result(frame)
        elif kind == "pong":
            self.pongs += 1
        elif kind == "typing":
            self.chatter_counts["typing_received"] += 1
        elif kind == "read":
            self.chatter_counts["reads_received"] += 1
        elif kind == "error":
            self._on_error(frame)

    # --- connections

    async def open(self, client: Client, attempts: int = 3) -> None:
        if self.kind == "product":
            await self._open_product(client)
            return
        last = None
        for attempt in range(attempts):
            try:
                client.ready = asyncio.get_running_loop().create_future()
                client.ws = await connect(
                    self.url(client),
                    additional_headers=self.headers(client),
                    compression=None,
                    **SOCKET_OPTIONS,
                )
                client.reader = asyncio.create_task(self._read(client))
                await asyncio.wait_for(client.ready, 30)
                return
            except Exception as exc:
                last = exc
                await asyncio.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"could not open socket of {client.name}: {last!r}")

    async def _open_product(self, client: Client) -> None:
        """Open a product socket with the shared client; every frame is timed as it arrives.

        Measured with BENCH_QUICK=1 BENCH_SERVERS=product, two runs each, on a busy machine
        (other CPU 50-150 % of a core): closed loop 2401 and 1401 DMs/s with the generator's
        own reader, 1496 and 2267 with this one; generator CPU 0.105-0.113 ms per DM either
        way, at 16-25 % of its core. The server bounds the figures, not this client, so
        the load loops read through it rather than keep a reader of their own.
        """

        def timed(frame: dict) -> None:
            self.on_frame(client, frame, now())

        client.chat = product_client(self.url(client), client.token, timed)
        try:
            await client.chat.connect(retry_for=5, ready_timeout=30)
        except Exception as exc:
            raise RuntimeError(f"could not open socket of {client.name}: {exc!r}") from exc
        client.ws = client.chat.ws
        client.reader = asyncio.create_task(self._watch_closed(client))

    async def _read(self, client: Client) -> None:
        ws = client.ws
        try:
            async for raw in ws:
                self.on_frame(client, json.loads(raw), now())
        except Exception:
            pass
        finally:
            client.closed = True

    async def open_all(self, clients: list[Client], parallel: int = 32) -> float:
        """Open the sockets, `parallel` handshakes at a time; return handshakes per second."""
        gate = asyncio.Semaphore(parallel)
        started = now()

        async def one(client: Client) -> None:
            async with gate:
                await self.open(client)

        await asyncio.gather(*(one(c) for c in clients))
        return len(clients) / max(now() - started, 1e-9)

    async def ping_like_tabs(self, clients: list[Client], duration: float) -> dict:
        """Ping from every socket as an idle browser tab does; return what it cost the server.

        A tab pings every PING_EVERY_S (static/messaging/net/socket.js); the sockets' turns
        are spread over that interval, as tabs opened at different times are.
        """
        server = self.meter.server
        live = [client for client in clients if not client.closed and client.ws is not None]

        def cpu_s() -> float:
            times = server.cpu_times()
            return times.user + times.system

        # What the sockets cost the server without pinging (its heartbeats, daphne's own
        # keep-alive pings), over a quiet window first: a ping's cost is what comes on top.
        quiet_s = min(duration, PING_EVERY_S)
        quiet_cpu = cpu_s()
        await asyncio.sleep(quiet_s)
        quiet_rate = (cpu_s() - quiet_cpu) / quiet_s
        started = now()
        cpu_before = cpu_s()
        pongs_before = self.pongs

        async def tab(client: Client) -> int:
            sent = 0
            due = started + random.random() * PING_EVERY_S
            while due < started + duration:
                await asyncio.sleep(max(0.0, due - now()))
                try:
                    await client.ws.send('{"type": "ping"}')
                except Exception:
                    return sent
                sent += 1
                due += PING_EVERY_S
            return sent

        sent = sum(await asyncio.gather(*(tab(client) for client in live)))
        # The last pongs: wait until they stop coming (at most a few seconds).
        for _ in range(50):
            if self.pongs - pongs_before >= sent:
                break
            await asyncio.sleep(0.1)
        elapsed = now() - started
        spent = cpu_s() - cpu_before
        extra = spent - quiet_rate * elapsed
        return {
            "sockets": len(live),
            "seconds": round(elapsed, 1),
            "pings": sent,
            "pongs": self.pongs - pongs_before,
            "server_cpu_percent_quiet": round(100 * quiet_rate, 1),
            "server_cpu_percent": round(100 * spent / elapsed, 1),
            "server_cpu_us_per_ping": round(extra * 1e6 / sent, 1) if sent else None,
        }

    async def close_all(self, clients: list[Client]) -> None:
        async def one(client: Client) -> None:
            if client.ws is not None:
                try:
                    await asyncio.wait_for(client.ws.close(), 3)
                except Exception:
                    pass
            if client.reader is not None:
                client.reader.cancel()

        gate = asyncio.Semaphore(200)

        async def gated(client: Client) -> None:
            async with gate:
                await one(client)

        await asyncio.gather(*(gated(c) for c in clients))

    # --- sending

    def new_rec(self, phase: str, sender: Client, sched: float) -> tuple[str, Rec]:
        self.seq_counter += 1
        cid = f"{phase}-{sender.index}-{self.seq_counter}"
        rec = Rec(phase, sender.index, sender.partner, sched)
        self.recs[cid] = rec
        return cid, rec

    def _mark_read(self, client: Client, message: dict) -> None:
        """Tell the server the recipient read the message, as an open conversation does."""
        frame = {"type": "read", "conversation": message["conversation"], "up_to": message["id"]}
        task = asyncio.get_running_loop().create_task(client.chat.send_frame(frame))
        self.chatter_tasks.add(task)
        task.add_done_callback(self.chatter_tasks.discard)
        self.chatter_counts["reads_sent"] += 1

    async def send(self, sender: Client, cid: str, rec: Rec) -> None:
        frame = self.send_frame(sender, self.clients[sender.partner], cid, f"bench {cid}")
        if self.chatter and sender.chat is not None and sender.conversation is not None:
            await sender.chat.send_frame({"type": "typing", "conversation": sender.conversation})
            self.chatter_counts["typing_sent"] += 1
        if sender.chat is not None:
            # The frame as it is, not ChatClient.send: the load loops time acks and copies
            # themselves and never wait for an ack before the next send.
            await sender.chat.send_frame(frame)
        else:
            await sender.ws.send(json.dumps(frame))
        rec.sent = now()

    # --- phases

    def _is_answered(self, rec: Rec) -> bool:
        if self.kind != "product":
            return True  # the baselines answer nothing but the copies, which may be lost
        return rec.ack is not None or rec.err is not None or rec.echo is not None

    async def closed_loop(
        self, phase: str, duration: float, window: int, timeout: float, hard_cap: float = 10
    ) -> dict:
        loop = asyncio.get_running_loop()
        start_sample = self.meter.sample()
        start = start_sample["t"]
        deadline = start + duration

        async def slot(client: Client) -> None:
            while now() < deadline and not client.closed:
                cid, rec = self.new_rec(phase, client, now())
                waiter = loop.create_future()
                self.waiters[cid] = waiter
                try:
                    await self.send(client, cid, rec)
                    await asyncio.wait_for(asyncio.shield(waiter), timeout)
                except TimeoutError:
                    # A copy may be lost: move on, but only once the server has answered
                    # (ack, error or the sender's copy), so that a slow server never holds
                    # more than `window` sends per user.
                    if not await self._answered(rec, hard_cap):
                        self.waiters.pop(cid, None)
                        return
                    self.waiters.pop(cid, None)
                except Exception:
                    self.waiters.pop(cid, None)
                    return

        slots = (slot(c) for c in self.clients for _ in range(window))
        end_sample = await self._gather_profiled(phase, duration, slots)
        return {
            "name": phase,
            "mode": "closed",
            "window": window,
            "duration_s": duration,
            "_start": start,
            "_end": deadline,
            "_samples": (start_sample, end_sample),
        }

    async def open_loop(
        self, phase: str, rate: float, duration: float, drain: float, settle_max: float
    ) -> dict:
        total = int(rate * duration)
        clients = self.clients
        n = len(clients)
        start_sample = self.meter.sample()
        t0 = start_sample["t"] + 0.05
        interval = 1.0 / rate
        phase_cids = []
        self.recent.clear()
        self.current_phase = phase

        async def send(k: int, due: float) -> None:
            sender = clients[k % n]
            if not sender.closed:
                cid, rec = self.new_rec(phase, sender, due)
                phase_cids.append(cid)
                try:
                    await self.send(sender, cid, rec)
                except Exception:
                    pass

        profiler = self._start_profiler(phase, duration)
        stopped_at = await self._pace(t0, total, interval, send)
        sched_end = now()
        sched_sample = self.meter.sample()
        if profiler is not None:
            await asyncio.to_thread(profiler.wait, 60)
        # Drain: wait (bounded) until every DM of this phase reached both sides or failed.
        drain_deadline = sched_end + drain
        while now() < drain_deadline:
            pending = sum(
                1
                for cid in phase_cids
                if (r := self.recs[cid]).err is None and (r.recv is None or r.echo is None)
            )
            if pending == 0:
                break
            await asyncio.sleep(0.1)
        drained = now()
        # Settle: a server still working off a backlog must not bill it to the next phase.
        pending_after_drain = sum(
            1 for cid in phase_cids if (r := self.recs[cid]).err is None and r.recv is None
        )
        settled = await self.settle(settle_max) if pending_after_drain else True
        end_sample = self.meter.sample()
        return {
            "name": phase,
            "mode": "open",
            "offered_per_s": rate,
            "duration_s": duration,
            "scheduled": total,
            "_start": t0,
            "_end": t0 + duration,
            "_sched_end": sched_end,
            "_drain_s": drained - sched_end,
            # Still working off a backlog after the drain and the settle time: overloaded.
            "saturated": not settled or stopped_at is not None,
            "stopped_overloaded_after_s": None if stopped_at is None else round(stopped_at, 2),
            "_gen_cpu_sending": (sched_sample["gen"] - start_sample["gen"])
            / max(sched_sample["t"] - start_sample["t"], 1e-9),
            "_samples": (start_sample, end_sample),
        }

    # --- the product's final check

    async def sync_all(self, client: Client) -> set[str]:
        """Page through `sync` from 0; return every client_id the user can see."""
        return {message["client_id"] for message in await client.chat.sync(0, timeout=60)}

    async def product_check(self, answer_wait: float, deadline: float) -> dict:
        """Compare acked sends, database rows and what each client can see after sync."""
        await self._wait_answered(answer_wait)
        synced, failed_syncs, sync_s = await self._sync_each(self.clients, deadline, self.sync_all)
        names = {c.index: c.name for c in self.clients}
        stored = self._stored_client_ids(list(names.values()))
        totals = {
            "attempted": 0,
            "acked": 0,
            "stored": 0,
            "errors": 0,
            "unanswered": 0,
            "acked_not_stored": 0,
            "lost": 0,
            "push_missed_healed_by_sync": 0,
            "sender_copy_missing": 0,
            "stored_not_acked": 0,
        }
        per_phase: dict[str, dict[str, int]] = {}
        for cid, rec in self.recs.items():
            if rec.sent is None:
                continue
            phase = per_phase.setdefault(rec.phase, {"lost": 0, "push_missed": 0})
            totals["attempted"] += 1
            is_stored = (names[rec.sender], cid) in stored
            totals["stored"] += is_stored
            if rec.err is not None:
                totals["errors"] += 1
            if rec.ack is not None:
                totals["acked"] += 1
            elif rec.err is None:
                totals["unanswered"] += 1
            if rec.ack is not None and not is_stored:
                totals["acked_not_stored"] += 1
            if is_stored and rec.ack is None:
                totals["stored_not_acked"] += 1
            if (is_stored or rec.ack is not None) and rec.recipient in synced:
                recipient = self.clients[rec.recipient]
                pushed = cid in recipient.got
                has = pushed or cid in synced.get(rec.recipient, ())
                if not has:
                    totals["lost"] += 1
                    phase["lost"] += 1
                elif not pushed:
                    totals["push_missed_healed_by_sync"] += 1
                    phase["push_missed"] += 1
                if rec.echo is None and cid not in synced.get(rec.sender, ()):
                    totals["sender_copy_missing"] += 1
        # Rows in the database that no client asked for would be duplicates.
        ours = {(names[r.sender], cid) for cid, r in self.recs.items() if r.sent is not None}
        totals["db_rows_of_run"] = len(stored)
        totals["db_rows_not_sent"] = len(stored - ours)
        totals["prev_seq_gaps_seen"] = sum(c.prev_seq_gaps for c in self.clients)
        totals["sync_s"] = round(sync_s, 2)
        # Clients whose sync did not finish are left out of `lost`: the check is partial.
        totals["sync_failed"] = len(failed_syncs)
        totals["sync_failed_examples"] = failed_syncs[:5]
        totals["per_phase"] = per_phase
        return totals

    def _stored_client_ids(self, usernames: list[str]) -> set[tuple[str, str]]:
        """Return (sender, client_id) of every message these users sent, from the database."""
        rows = stored_rows(
            self.args.db_url,
            "SELECT u.username, m.client_id FROM messaging_message m "
            "JOIN auth_user u ON u.id = m.sender_id WHERE u.username = ANY(%s)",
            (usernames,),
        )
        return {(username, cid) for username, cid in rows}

    # --- reporting

    def phase_report(self, info: dict) -> dict:
        start_sample, end_sample = info.pop("_samples")
        start, end = info.pop("_start"), info.pop("_end")
        recs = [r for r in self.recs.values() if r.phase == info["name"]]
        sent = [r for r in recs if r.sent is not None]
        delivered = [r for r in sent if r.recv is not None]
        in_window = sum(1 for r in delivered if start <= r.recv <= end + 0.0)
        wall = end_sample["t"] - start_sample["t"]
        latencies = [(r.recv - r.sched) * 1000 for r in delivered]
        if trace_dir := os.environ.get("BENCH_TRACE_DIR"):
            # Every DM of the phase: when it was due, its ack and its delivery (for stalls).
            trace = [
                [round(r.sched - start, 4), _ms(r.ack, r.sched), _ms(r.recv, r.sched)]
                for r in sorted(sent, key=lambda r: r.sched)
            ]
            name = re.sub(r"[^\w.-]+", "_", f"{self.args.label}-{info['name']}")
            Path(trace_dir, f"{name}.json").write_text(json.dumps(trace))
        echo = [(r.echo - r.sched) * 1000 for r in sent if r.echo is not None]
        acks = [(r.ack - r.sched) * 1000 for r in sent if r.ack is not None]
        lag = [(r.sent - r.sched) * 1000 for r in sent]
        use = cpu_use(start_sample, end_sample)
        server_cpu = use["server"]
        count = max(len(delivered), 1)
        report = dict(info)
        sched_end = report.pop("_sched_end", None)
        drain = report.pop("_drain_s", None)
        sending = report.pop("_gen_cpu_sending", None)
        if sending is not None:
            report["generator_cpu_pct_while_sending"] = _round(100 * sending)
        report.update(
            {
                "sent": len(sent),
                "delivered": len(delivered),
                "not_delivered": len(sent) - len(delivered),
                "errors": sum(1 for r in sent if r.err is not None),
                "delivered_per_s": round(in_window / info["duration_s"], 1),
                "latency_ms": rounded_percentiles(latencies),
                "sender_copy_latency_ms": rounded_percentiles(echo),
                "ack_latency_ms": rounded_percentiles(acks),
                "send_lag_ms": rounded_percentiles(lag),
                "server_cpu_s": _round(server_cpu),
                "server_cpu_ms_per_dm": _round(server_cpu * 1000 / count),
                "pg_redis_cpu_ms_per_dm": _round(use["infra"] * 1000 / count),
                **cpu_fields(use, end_sample),
                "steal_pct": _round(100 * (end_sample["steal"] - start_sample["steal"]) / wall)
                if wall
                else None,
                "wall_s": _round(wall),
            }
        )
        if sched_end is not None:
            report["schedule_overrun_ms"] = _round((sched_end - end) * 1000)
            report["drain_s"] = _round(drain)
        return report


# --------------------------------------------------------------------------- modes


async def run_load(args, users: list[dict]) -> dict:
    harness = Harness(args, users)
    plan = json.loads(args.plan)
    result: dict = {"server": args.label, "kind": args.kind, "users": len(users), "phases": []}
    budget = Budget(args.budget, Path(args.out))
    result["connect_per_s"] = round(await harness.open_all(harness.clients), 1)
    # Measure connected users, not the tail of their connecting: let the server finish the
    # work the handshakes left it (presence, announcements) first.
    await _settle(harness, plan)
    await asyncio.sleep(0.5)
    if plan.get("warmup_s"):
        info = await harness.closed_loop("warmup", plan["warmup_s"], 1, plan.get("timeout_s", 5))
        await asyncio.sleep(0.5)
        result["warmup"] = harness.phase_report(info)
    closed = plan.get("closed")
    if closed:
        info = await harness.closed_loop(
            "closed", closed["duration_s"], closed["window"], plan.get("timeout_s", 5)
        )
        await asyncio.sleep(plan.get("drain_s", 3) / 3)
        result["phases"].append(harness.phase_report(info))
        budget.save(result)
        await _settle(harness, plan)
    result["skipped_rates"] = []
    harness.chatter = args.kind == "product" and bool(plan.get("chatter"))
    chatter_before = dict(harness.chatter_counts)
    for step in plan.get("open", []):
        rate = step["rate"]
        if budget.skips(result, plan, step["duration_s"]):
            result["skipped_rates"].append(rate)
            continue
        info = await harness.open_loop(
            f"open{rate}",
            rate,
            step["duration_s"],
            plan.get("drain_s", 3),
            plan.get("settle_max_s", 10),
        )
        result["phases"].append(harness.phase_report(info))
        budget.save(result)
    if harness.chatter:
        harness.chatter = False
        await asyncio.sleep(plan.get("drain_s", 3) / 3)  # the last reads' answers
        result["chatter"] = {
            name: count - chatter_before[name] for name, count in harness.chatter_counts.items()
        }
    if args.kind == "product" and args.db_url and plan.get("check", True):
        answer_wait, deadline = budget.check_times(plan)
        result["check"] = await harness.product_check(answer_wait, deadline=deadline)
        apply_check(result)
    else:
        # No sync in the baselines: a DM is lost when its recipient never got the push.
        await asyncio.sleep(plan.get("drain_s", 3) / 3)
        for phase in result["phases"]:
            recs = [r for r in harness.recs.values() if r.phase == phase["name"] and r.sent]
            phase["lost"] = sum(1 for r in recs if r.recv is None)
    result["errors"] = harness.errors
    result["sockets_dropped"] = sum(1 for c in harness.clients if c.closed)
    await harness.close_all(harness.clients)
    return result


async def _settle(harness: Harness, plan: dict) -> None:
    await harness.settle(plan.get("settle_max_s", 10))


async def run_idle(args, users: list[dict]) -> dict:
    """Open many authenticated sockets that only wait; report the server's RSS per socket."""
    harness = Harness(args, users)
    server = harness.meter.server
    clients = harness.clients
    first, rest = clients[: args.idle_warm], clients[args.idle_warm :]
    await harness.open_all(first)
    await asyncio.sleep(1)
    before = server.memory_info().rss
    cpu_before = server.cpu_times()
    # py-spy (--profile-phase idle) while the handshakes are made, not while the sockets wait.
    spy = harness._start_profiler("idle", 600)
    rate = await harness.open_all(rest, parallel=args.idle_parallel)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await asyncio.to_thread(spy.wait, 30)
    await asyncio.sleep(args.idle_hold)
    after = server.memory_info().rss
    cpu_after = server.cpu_times()
    opened = sum(1 for c in clients if not c.closed)
    extra = len(rest)
    pinging = await harness.ping_like_tabs(clients, args.idle_ping_s) if args.idle_ping_s else None
    result = {
        "server": args.label,
        "kind": args.kind,
        "sockets": opened,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "kb_per_socket": round((after - before) / 1024 / extra, 1) if extra else None,
        "handshakes_per_s": round(rate, 1),
        "server_cpu_ms_per_handshake": round(
            (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system)
            * 1000
            / max(extra, 1),
            2,
        ),
        "hold_s": args.idle_hold,
        "pinging": pinging,
    }
    await harness.close_all(clients)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["load", "idle"], default="load")
    parser.add_argument("--kind", choices=["product", "relay", "channels"], required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--users", help="JSON list of {username, token} (product)")
    parser.add_argument("--count", type=int, help="number of users (baselines)")
    parser.add_argument("--plan", default="{}")
    parser.add_argument("--db-url", help="product database, for the final check")
    parser.add_argument("--idle-warm", type=int, default=20)
    parser.add_argument("--idle-parallel", type=int, default=32)
    parser.add_argument("--idle-hold", type=float, default=3)
    parser.add_argument(
        "--idle-ping-s", type=float, default=0, help="then ping as idle tabs do, this long"
    )
    common_arguments(parser)
    args = parser.parse_args()
    check_url(parser, args.url)
    if args.users:
        users = json.loads(Path(args.users).read_text())
        if args.count:
            users = users[: args.count]
    else:
        users = [{"username": str(i)} for i in range(args.count)]
    if len(users) % 2:
        users = users[:-1]
    run_and_write(args, run_idle if args.mode == "idle" else run_load, users)


if __name__ == "__main__":
    main()
