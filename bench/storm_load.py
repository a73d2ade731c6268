"""Load generator of the `reconnect` phase: every socket cut at once, back as browsers come back.

    python bench/storm_load.py --url ws://127.0.0.1:PORT/ws/chat/ --users USERS.json \
        --server-pid PID --talkers N --rate R --db-url postgresql://... --out OUT.json

USERS.json comes from bench/product_users.py (users 0 and 1, 2 and 3, ... share a direct
conversation). Every user opens one socket with the shared client (messaging/client/).
Then all of them are cut in the same instant (their TCP connections aborted, as a dropped
proxy or a lost network does), and each comes back as the browser client does
(static/messaging/net/socket.js): attempt n after half to all of min(5 s, 0.5 s x 2^(n-1)),
20 s once 20 tries in a row failed, each try given CONNECT_TIMEOUT (10 s) to reach `ready`,
then a sync of what it missed. Time to `ready` runs from the cut; a refused handshake is
counted by its HTTP status.

Meanwhile the first `talkers` pairs write to each other at `rate` DMs per second in all: a
DM waits in its sender's outbox while the sender is away and is sent (again, with the same
client_id, until acked) once it is back, as the browser's outbox does. After the storm every
talker syncs from 0: an acked DM missing from its recipient, or from the database, is lost.

Every loop is bounded in count and time; the only network peer is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from loadgen import PRODUCT_COMPRESSION, Meter, _round, now, percentiles
from websockets.exceptions import InvalidStatus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from messaging.client import ChatClient, ChatError

try:  # The generator's own speed; the server is not affected.
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

# static/messaging/net/socket.js
CONNECT_TIMEOUT_S = 10.0
MAX_BACKOFF_S = 5.0
PATIENT_AFTER = 20
MAX_BACKOFF_PATIENT_S = 20.0
LONGEST_BUSY_WAIT_S = 300.0


def backoff_delay(attempt: int) -> float:
    """The browser's wait before reconnect attempt `attempt` (1, 2, ...), in seconds."""
    cap = MAX_BACKOFF_PATIENT_S if attempt > PATIENT_AFTER else MAX_BACKOFF_S
    base = min(cap, 0.5 * 2 ** min(attempt - 1, 6))
    return base / 2 + random.random() * (base / 2)


@dataclass
class User:
    """One person's socket, their way back after the cut, and the DMs they sent and got."""

    index: int
    name: str
    token: str
    chat: ChatClient | None = None
    back: asyncio.Event = field(default_factory=asyncio.Event)
    ready_after_s: float | None = None
    attempts: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)


async def open_first(user: User, url: str) -> None:
    user.chat = ChatClient(
        url,
        user.token,
        max_events=0,
        compression=PRODUCT_COMPRESSION,
        open_timeout=CONNECT_TIMEOUT_S,
        ping_interval=None,
    )
    await user.chat.connect(retry_for=30, ready_timeout=CONNECT_TIMEOUT_S)
    user.back.set()


async def come_back(user: User, cut_at: float, deadline: float) -> None:
    """Reconnect as the browser does until `ready`, or until the deadline."""
    least_wait = 0.0  # what the last answer asked for (a busy server's turn)
    while now() < deadline:
        user.attempts += 1
        await asyncio.sleep(max(least_wait, backoff_delay(user.attempts)))
        least_wait = 0.0
        try:
            # The handshake and the wait for `ready` are each bounded like the browser's
            # CONNECT_TIMEOUT; the sync of what was missed follows within the same call.
            await user.chat.reconnect(retry_for=0)
        except ChatError as busy:
            # Turned away with a turn to come back at (static/messaging/net/socket.js:
            # minimumWaitAfterClose): the turn, and up to a second of jitter.
            user.refused["busy"] = user.refused.get("busy", 0) + 1
            least_wait = min(busy.retry_after or 0, LONGEST_BUSY_WAIT_S) + random.random()
            continue
        except InvalidStatus as refused:
            code = str(refused.response.status_code)
            user.refused[code] = user.refused.get(code, 0) + 1
            continue
        except Exception as failed:  # timed out, closed or broken: the browser tries again
            kind = type(failed).__name__
            user.refused[kind] = user.refused.get(kind, 0) + 1
            continue
        user.ready_after_s = now() - cut_at
        user.back.set()
        return


async def talk(sender: User, recipient: User, client_id: str, stop_at: float) -> None:
    """Send one DM through the sender's outbox: wait while away, resend until acked."""
    while now() < stop_at:
        await sender.back.wait()
        try:
            await sender.chat.send(
                f"during the storm: {client_id}", to=recipient.name, client_id=client_id, timeout=5
            )
        except ChatError as refused:
            if refused.retry_after:
                await asyncio.sleep(refused.retry_after)
            continue
        except Exception:
            await asyncio.sleep(0.2)
            continue
        sender.acked.add(client_id)
        return


async def run(args) -> dict:
    users = [
        User(index, entry["username"], entry["token"])
        for index, entry in enumerate(json.loads(Path(args.users).read_text())[: args.count])
    ]
    meter = Meter(args.server_pid)
    started = now()
    gate = asyncio.Semaphore(64)

    async def first(user: User) -> None:
        async with gate:
            await open_first(user, args.url)

    await asyncio.gather(*(first(user) for user in users))
    opened_s = now() - started
    await asyncio.sleep(args.settle)

    # The 10,000 open clients are this process's heap: left in the collector's walks, its
    # full collections took 8.6 s of the generator's core during a storm (the core that
    # PostgreSQL and Redis share), and a slow generator paces the clients' return.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    before = meter.sample()
    for user in users:
        user.back.clear()
    cut_at = now()
    for user in users:
        user.chat.ws.transport.abort()
    spy = _profile(args)
    deadline = cut_at + args.budget
    talkers = users[: 2 * args.talkers]
    sends = []
    if talkers and args.rate > 0:
        # DMs due over the storm's first `talk_s` seconds, spread over the talkers' pairs.
        count = int(args.rate * args.talk_s)
        for k in range(count):
            pair = k % args.talkers
            sender, recipient = talkers[2 * pair + k % 2], talkers[2 * pair + 1 - k % 2]
            due = cut_at + k / args.rate

            async def later(s=sender, r=recipient, cid=f"storm-{k}", at=due) -> None:
                await asyncio.sleep(max(0.0, at - now()))
                await talk(s, r, cid, deadline)

            sends.append(asyncio.create_task(later()))
    # Each try is bounded (CONNECT_TIMEOUT, then the sync's own timeout); the wait for the
    # slowest is bounded too, so that the phase always ends with its figures.
    returns = [asyncio.create_task(come_back(user, cut_at, deadline)) for user in users]
    await asyncio.wait(returns, timeout=args.budget + 3 * CONNECT_TIMEOUT_S)
    back_s = now() - cut_at
    after = meter.sample()
    if sends:
        # The DMs due during the storm: each sent once its sender is back, or given up.
        await asyncio.wait(sends, timeout=max(1.0, cut_at + args.talk_s + 30 - now()))
    for task in [*returns, *sends]:
        task.cancel()
    await asyncio.gather(*returns, *sends, return_exceptions=True)

    if spy is not None:
        await asyncio.to_thread(spy.wait)
    back = [user for user in talkers if user.ready_after_s is not None]
    check = await asyncio.wait_for(lost_after_storm(back, args), 120)
    for user in users:
        if user.chat.ws is not None:
            user.chat.ws.transport.abort()
    times = [u.ready_after_s for u in users if u.ready_after_s is not None]
    refused: dict[str, int] = {}
    for user in users:
        for code, n in user.refused.items():
            refused[code] = refused.get(code, 0) + n
    attempts = [u.attempts for u in users]
    server_cpu = after.get("server", 0) - before.get("server", 0)
    return _rounded(
        {
            "users": len(users),
            "first_open_s": opened_s,
            "handshakes_per_s_first": len(users) / opened_s if opened_s else None,
            "back": len(times),
            "never_back": len(users) - len(times),
            "all_back_s": back_s if len(times) == len(users) else None,
            "ready_after_ms": percentiles([t * 1000 for t in times]),
            "within_20s": sum(1 for t in times if t <= 20),
            "attempts": percentiles(attempts),
            "failed_tries": refused,
            "server_cpu_s": server_cpu,
            "server_cpu_ms_per_reconnect": server_cpu * 1000 / len(times) if times else None,
            "server_rss_mb": after.get("rss", 0) / 2**20,
            "dms_due": len(sends),
            **check,
        }
    )


def _profile(args) -> subprocess.Popen | None:
    """Start py-spy on the server for the storm's first seconds, if asked."""
    if not args.profile_out:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(args.server_pid), "--gil"]
    # With C's frames too (the garbage collector, system calls); it pauses the server to read.
    native = os.environ.get("BENCH_PROFILE_NATIVE", "") not in ("", "0")
    command += ["--native"] if native else ["--nonblocking"]
    command += ["--rate", os.environ.get("BENCH_PROFILE_RATE", "200")]
    command += ["--duration", str(args.profile_s), "--format", "raw", "-o", args.profile_out]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _rounded(figures: dict) -> dict:
    """Round the figures (and those of nested tables) to two decimals."""
    return {
        key: _rounded(value) if isinstance(value, dict) else _round(value)
        for key, value in figures.items()
    }


async def lost_after_storm(talkers: list[User], args) -> dict:
    """Sync every talker that came back from 0; count acked DMs missing from the recipient
    (when both came back) or from the database."""
    acked = {cid for user in talkers for cid in user.acked}
    received: dict[int, set[str]] = {}
    for user in talkers:
        changes = await user.chat.sync(0, timeout=30)
        received[user.index] = {m.get("client_id") for m in changes if m.get("client_id")}
    lost = 0
    for user in talkers:
        partner = user.index ^ 1  # pairs 0 and 1, 2 and 3, ... (bench/product_users.py)
        if partner in received:
            lost += len(user.acked - received[partner])
    with psycopg.connect(args.db_url) as db:
        stored = {
            row[0]
            for row in db.execute(
                "SELECT client_id FROM messaging_message WHERE client_id LIKE 'storm-%%'"
            )
        }
    return {
        "dms_acked": len(acked),
        "dms_stored": len(stored),
        "dms_acked_not_stored": len(acked - stored),
        "dms_lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/ws/chat/")
    parser.add_argument("--users", required=True)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--server-pid", type=int)
    parser.add_argument("--talkers", type=int, default=20, help="pairs writing during it")
    parser.add_argument("--rate", type=float, default=20, help="DMs per second in all")
    parser.add_argument("--talk-s", type=float, default=10, help="how long they write")
    parser.add_argument("--settle", type=float, default=3, help="seconds before the cut")
    parser.add_argument("--budget", type=float, default=120, help="seconds to come back")
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--profile-out", help="py-spy's raw samples of the server after the cut")
    parser.add_argument("--profile-s", type=int, default=20, help="for this many seconds")
    args = parser.parse_args()
    if uvloop is not None:
        uvloop.install()
    result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))


if __name__ == "__main__":
    main()
