"""One user tries to exhaust a server process while two others chat; the figures of it.

The attack of the issue "No one user can hurt the service": the attacker prepares large
messages to a second account of theirs, then keeps up to 20 sockets (the per-user cap) that
complete the handshake and never read, each writing `sync`, `ping`, `read` and
`message.edit` frames as fast as the kernel takes them, reopening any socket the server
closes. Meanwhile two other people chat on the same process. Measured: the process's RSS
before and at its peak, the chatters' delivery latency, how many of the attacker's sockets
the server closed, how long the process takes to go idle once the attack stops, and
whether every chat message was stored and delivered.

`tests/test_abuse.py` runs it against a live daphne and checks the figures; `make bench`
runs it as its `abuse` phase (`python -m tests.abuse`, which prints the figures as JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from tests.live import LiveClient

FLOOD_SOCKETS = 20
# The attacker's large messages: the most code points a body may hold, each a 4-byte emoji.
LARGE_MESSAGES = 60
LARGE_BODY = "\U0001f600" * 4000
# Frames per write: a batch of the four kinds, written again and again.
FRAMES_PER_WRITE = 64
# A closed attacker socket is reopened after this long.
REOPEN_AFTER_S = 0.5
CHAT_EVERY_S = 0.1
IDLE_CPU_SHARE = 0.1


@dataclass
class Prepared:
    """Accounts and ids the attack uses, made by `prepare`."""

    attacker_token: str
    conversation_id: int
    message_id: int
    chatter_tokens: tuple[str, str]
    chatter_names: tuple[str, str]


@dataclass
class Figures:
    """What one run of the attack measured."""

    duration_s: float
    rss_before_mb: float
    rss_peak_mb: float
    rss_growth_mb: float
    rss_after_mb: float
    chat_messages: int
    chat_delivered: int
    chat_p50_ms: float
    chat_p99_ms: float
    chat_max_ms: float
    attacker_sockets_opened: int
    attacker_sockets_closed_by_server: int
    attacker_handshakes_refused: int
    attacker_bytes_written: int
    idle_after_s: float | None
    lost: int
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("latencies_ms")
        return data


def prepare(*, prefix: str = "abuse") -> Prepared:
    """Make the attacker, their second account with the large messages, and two chatters."""
    from django.contrib.auth import get_user_model

    from messaging.domain import services
    from messaging.domain.tokens import token_issue

    User = get_user_model()

    def user(name: str):
        return User.objects.create_user(username=f"{prefix}-{name}", password=uuid.uuid4().hex)

    attacker, second, alice, bob = user("mallory"), user("mallory2"), user("alice"), user("bob")
    sent = None
    for n in range(LARGE_MESSAGES):
        sent = services.message_send(
            sender=attacker, body=LARGE_BODY, client_id=f"large-{n}", to=second.username
        )
    services.message_send(sender=alice, body="hello", client_id="hello", to=bob.username)
    services.message_send(sender=bob, body="hi", client_id="hi", to=alice.username)
    return Prepared(
        attacker_token=token_issue(user=attacker),
        conversation_id=sent.message.conversation_id,
        message_id=sent.message.pk,
        chatter_tokens=(token_issue(user=alice), token_issue(user=bob)),
        chatter_names=(alice.username, bob.username),
    )


def _masked_frame(text: str) -> bytes:
    payload = text.encode()
    header = bytearray([0x81])
    if len(payload) < 126:
        header.append(0x80 | len(payload))
    else:
        header.append(0x80 | 126)
        header += len(payload).to_bytes(2, "big")
    mask = os.urandom(4)
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _flood_batch(prepared: Prepared) -> bytes:
    kinds = [
        {"type": "sync", "after": 0},
        {"type": "ping"},
        {"type": "read", "conversation": prepared.conversation_id, "up_to": prepared.message_id},
        {"type": "message.edit", "id": prepared.message_id, "body": "edited " * 50},
    ]
    return b"".join(
        _masked_frame(json.dumps(kinds[n % len(kinds)])) for n in range(FRAMES_PER_WRITE)
    )


class _Refused(Exception):
    pass


async def _open_never_reading(host: str, port: int, token: str):
    """Complete a WebSocket handshake with a tiny receive buffer; never read after it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/chat/ HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        writer.close()
        raise _Refused(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return writer


class _Attack:
    def __init__(self, url: str, prepared: Prepared) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.prepared = prepared
        self.batch = _flood_batch(prepared)
        self.opened = self.closed = self.refused = self.written = 0

    async def run(self, until: float) -> None:
        await asyncio.gather(*(self._one_socket(until) for _ in range(FLOOD_SOCKETS)))

    async def _one_socket(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < until:
            try:
                writer = await _open_never_reading(
                    self.host, self.port, self.prepared.attacker_token
                )
            except (_Refused, OSError, asyncio.IncompleteReadError, TimeoutError):
                self.refused += 1
                await asyncio.sleep(REOPEN_AFTER_S)
                continue
            self.opened += 1
            try:
                while loop.time() < until:
                    writer.write(self.batch)
                    # Held back: the server stopped reading this socket for a while.
                    await asyncio.wait_for(writer.drain(), max(until - loop.time(), 0.01))
                    self.written += len(self.batch)
            except (OSError, ConnectionError):
                self.closed += 1
                await asyncio.sleep(REOPEN_AFTER_S)
            except TimeoutError:
                pass
            finally:
                writer.transport.abort()


class _Chat:
    """Two people writing to each other; the time from each send to the other's push."""

    def __init__(self, url: str, prepared: Prepared) -> None:
        self.url = url
        self.prepared = prepared
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.acked: set[str] = set()
        self.delivered: set[str] = set()

    async def run(self, until: float) -> None:
        clients = [
            await LiveClient(self.url, token).open() for token in self.prepared.chatter_tokens
        ]
        readers = [asyncio.ensure_future(self._read(client)) for client in clients]
        loop = asyncio.get_running_loop()
        n = 0
        while loop.time() < until:
            for index, client in enumerate(clients):
                client_id = f"chat-{index}-{n}"
                self.sent_at[client_id] = time.perf_counter()
                await client.send(
                    {
                        "type": "message.send",
                        "to": self.prepared.chatter_names[1 - index],
                        "body": f"message {n}",
                        "client_id": client_id,
                    }
                )
            n += 1
            await asyncio.sleep(CHAT_EVERY_S)
        await asyncio.sleep(2)  # the last pushes
        for reader in readers:
            reader.cancel()
        for client in clients:
            await client.close()

    async def _read(self, client: LiveClient) -> None:
        me = client.ready["user"]["id"]
        while True:
            frame = await client.recv(timeout=3600)
            if frame["type"] == "message.ack":
                self.acked.add(frame["client_id"])
            elif frame["type"] == "message.new" and frame["message"]["sender"]["id"] != me:
                client_id = frame["message"]["client_id"]
                if client_id in self.sent_at and client_id not in self.delivered:
                    self.delivered.add(client_id)
                    self.latencies.append((time.perf_counter() - self.sent_at[client_id]) * 1000)


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _sample_rss(pid: int, until: float, peak: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until + 1:
        peak[0] = max(peak[0], _rss_mb(pid))
        await asyncio.sleep(0.1)


async def _idle_after(pid: int, limit_s: float) -> float | None:
    """Return the seconds until the process spends under a tenth of a core for 0.5 s."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = _cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if (_cpu_seconds(pid) - before) / 0.5 < IDLE_CPU_SHARE:
            return round(time.monotonic() - started, 2)
    return None


def _p(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


async def attack(
    *, url: str, server_pid: int, prepared: Prepared, duration_s: float = 30
) -> Figures:
    """Run the attack and the chat side by side against a server; return the figures."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(1)
    rss_before = _rss_mb(server_pid)
    until = loop.time() + duration_s
    peak = [rss_before]
    attack_, chat = _Attack(url, prepared), _Chat(url, prepared)
    sampler = asyncio.ensure_future(_sample_rss(server_pid, until, peak))
    both = asyncio.gather(attack_.run(until), chat.run(until))
    await asyncio.sleep(max(until - loop.time(), 0))
    idle_after = await _idle_after(server_pid, 20)
    await both
    await sampler
    latencies = chat.latencies
    return Figures(
        duration_s=duration_s,
        rss_before_mb=round(rss_before, 1),
        rss_peak_mb=round(peak[0], 1),
        rss_growth_mb=round(peak[0] - rss_before, 1),
        rss_after_mb=round(_rss_mb(server_pid), 1),
        chat_messages=len(chat.sent_at),
        chat_delivered=len(chat.delivered),
        chat_p50_ms=round(statistics.median(latencies), 1) if latencies else float("nan"),
        chat_p99_ms=_p(latencies, 0.99),
        chat_max_ms=round(max(latencies), 1) if latencies else float("nan"),
        attacker_sockets_opened=attack_.opened,
        attacker_sockets_closed_by_server=attack_.closed,
        attacker_handshakes_refused=attack_.refused,
        attacker_bytes_written=attack_.written,
        idle_after_s=idle_after,
        lost=len(chat.sent_at) - len(chat.acked & chat.delivered),
        latencies_ms=latencies,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server's ws://host:port/ws/chat/")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--duration", type=float, default=30)
    args = parser.parse_args()
    import django

    django.setup()
    prepared = prepare(prefix=f"abuse-{uuid.uuid4().hex[:6]}")
    figures = asyncio.run(
        attack(
            url=args.url, server_pid=args.server_pid, prepared=prepared, duration_s=args.duration
        )
    )
    print(json.dumps(figures.summary()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
