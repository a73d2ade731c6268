"""A rolling restart behind nginx, as docs/operations.md ("Deploying a new version") does it:
deploy/nginx/chat.conf in front of two daphne processes started as chat@.service starts
them, restarted one after the other while clients keep their sockets open the way the
browser does (reconnecting with backoff whenever a socket drops); then `manage.py
rebalance_sockets` spreads the sockets that all sit on one process again."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import random
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command
from django.utils import timezone
from websockets.exceptions import ConnectionClosed, InvalidStatus

from messaging.models import PresenceProcess, SocketPresence
from tests.deploy_support import (
    HOSTNAME,
    Nginx,
    ProxiedClient,
    UnitDaphne,
    self_signed_certificate,
)
from tests.helpers import token_for

# The daphne processes: the test settings with the production site's host name.
SERVER_ENV = {
    "ALLOWED_HOSTS": f"{HOSTNAME},127.0.0.1,localhost",
    "SECURE_COOKIES": "1",
    # rebalance_sockets watches the heartbeats for one interval.
    "CHAT_HEARTBEAT_SECONDS": "1",
}
CLIENTS = 12


@pytest.fixture
def stack(transactional_db, tmp_path):
    """Start two daphne processes as chat@.service does and nginx with the site in front."""
    cert, _ = self_signed_certificate(tmp_path)
    static_root = tmp_path / "static"
    static_root.mkdir()
    daphnes = [
        UnitDaphne(
            env={**SERVER_ENV, "STATIC_ROOT": str(static_root)},
            log_path=tmp_path / f"daphne{n}.log",
            access_log=tmp_path / f"a{n}.log",
        )
        for n in range(2)
    ]
    nginx = Nginx(
        tmp_path / "nginx",
        cert=cert,
        static_root=static_root,
        upstream_ports=[daphne.port for daphne in daphnes],
    )
    try:
        for daphne in daphnes:
            daphne.launch()
        nginx.start()
        for daphne in daphnes:
            daphne.wait_listening()
        yield nginx, daphnes
    finally:
        nginx.stop()
        for daphne in daphnes:
            daphne.stop()
    for daphne in daphnes:
        log = daphne.log_path.read_text()
        assert "Traceback" not in log, log


def healthz_direct(port: int) -> bool:
    """`curl -fsS -H "Host: $HOST" http://127.0.0.1:$port/healthz`: True on a 2xx."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz", headers={"Host": HOSTNAME})
        return 200 <= connection.getresponse().status < 300
    except OSError:
        return False
    finally:
        connection.close()


async def restart_like_the_deploy_loop(daphne: UnitDaphne) -> None:
    """`systemctl restart chat@$port` then `until curl ... /healthz; do sleep 1; done`."""
    await asyncio.to_thread(daphne.stop, signal.SIGTERM)
    daphne.launch()
    while not await asyncio.to_thread(healthz_direct, daphne.port):
        await asyncio.sleep(1)


@dataclass
class Fleet:
    """Clients that hold a socket each through nginx and reconnect as the browser does."""

    nginx: Nginx
    tokens: list[str]
    connected: list[ProxiedClient | None] = field(default_factory=list)
    # (when, close code) of every socket the server closed or dropped.
    closes: list[tuple[float, int]] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopping: bool = False

    def __post_init__(self) -> None:
        self.connected = [None] * len(self.tokens)

    @property
    def all_connected(self) -> bool:
        return all(client is not None for client in self.connected)

    async def keep_connected(self, n: int) -> None:
        attempt = 0
        while not self.stopping:
            client = ProxiedClient(self.nginx, self.tokens[n])
            try:
                await client.open()
            except InvalidStatus as refusal:
                self.refused.append(refusal.response.status_code)
            except (OSError, TimeoutError, ConnectionClosed) as error:
                self.failed.append(type(error).__name__)
            else:
                attempt = 0
                self.connected[n] = client
                code = await client.chat.wait_closed()
                self.connected[n] = None
                if self.stopping:
                    return
                self.closes.append((time.monotonic(), code))
            attempt += 1
            # static/messaging/net/socket.js: half to all of 0.5 s, 1 s, 2 s, 4 s, then 5 s.
            base = min(5.0, 0.5 * 2 ** min(attempt - 1, 6))
            await asyncio.sleep(base / 2 + random.random() * base / 2)

    async def wait_all_connected(self, timeout: float) -> float:
        """Wait until every client holds an open socket; return how long it took."""
        started = time.monotonic()
        while not self.all_connected:
            assert time.monotonic() - started < timeout, (
                f"{sum(c is None for c in self.connected)} clients still away after "
                f"{timeout} s; refused: {self.refused}; failed: {self.failed}"
            )
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def close(self) -> None:
        self.stopping = True
        for client in self.connected:
            if client is not None:
                await client.close()


async def poll_through_nginx(nginx: Nginx, statuses: list[int], stop: asyncio.Event) -> None:
    """Ask /healthz through nginx every 0.1 s, as a monitor or a page load would."""
    while not stop.is_set():
        statuses.append((await asyncio.to_thread(nginx.https, "GET", "/healthz")).status)
        await asyncio.sleep(0.1)


def nginx_statuses(nginx: Nginx) -> list[int]:
    """Return the status of every request in nginx's access log (combined format)."""
    access = Path(nginx.folder) / "access.log"
    return [int(s) for s in re.findall(r'" (\d{3}) ', access.read_text())]


async def rolling_restart(fleet: Fleet, daphnes: list[UnitDaphne]) -> list[float]:
    """Restart the processes one after the other; return how long each one's clients were away."""
    back_within = []
    for daphne in daphnes:
        restarting = asyncio.create_task(restart_like_the_deploy_loop(daphne))
        # The clients of the stopped process are back on the other one long before it has
        # started again: nginx passes them on at their first try.
        while fleet.all_connected and not restarting.done():
            await asyncio.sleep(0.02)
        started = time.monotonic()
        await fleet.wait_all_connected(timeout=20)
        back_within.append(time.monotonic() - started)
        await restarting
    await fleet.wait_all_connected(timeout=20)
    return back_within


def open_sockets(daphne: UnitDaphne) -> int:
    """Read chat_open_sockets from the process's own /metrics, as Prometheus does."""
    connection = http.client.HTTPConnection("127.0.0.1", daphne.port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    found = re.search(r"^chat_open_sockets ([0-9.e+]+)$", text, re.M)
    assert found, text[:500]
    return int(float(found.group(1)))


@pytest.fixture
async def fleet(stack, make_user):
    """CLIENTS people, each holding one socket through nginx and reconnecting as browsers do."""
    nginx, _ = stack
    users = [await database_sync_to_async(make_user)() for _ in range(CLIENTS)]
    running = Fleet(nginx, [await token_for(user) for user in users])
    tasks = [asyncio.create_task(running.keep_connected(n)) for n in range(CLIENTS)]
    try:
        await running.wait_all_connected(timeout=20)
        yield running
    finally:
        await running.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.services
async def test_a_rolling_restart_behind_nginx_answers_no_502_and_everyone_is_back_at_once(
    stack, fleet
):
    nginx, daphnes = stack
    statuses: list[int] = []
    stop_polling = asyncio.Event()
    poller = asyncio.create_task(poll_through_nginx(nginx, statuses, stop_polling))
    try:
        back_within = await rolling_restart(fleet, daphnes)
    finally:
        stop_polling.set()
        await poller

    assert 502 not in fleet.refused, f"handshakes refused: {fleet.refused}"
    assert fleet.refused == [] and fleet.failed == [], (fleet.refused, fleet.failed)
    assert statuses and set(statuses) == {200}, statuses
    assert 502 not in nginx_statuses(nginx)
    assert "no live upstreams" not in nginx.error_log.read_text()
    # Every client of a stopped process reconnects at its first or second try (the first
    # waits 0.25 to 0.5 s), not one by one as nginx lets failed servers back in.
    assert max(back_within) < 3, back_within
    print(json.dumps({"clients": CLIENTS, "back_within_seconds": back_within}))


@pytest.mark.services
async def test_rebalance_sockets_spreads_the_sockets_a_rolling_restart_left_on_one_process(
    stack, fleet, settings
):
    settings.CHAT_HEARTBEAT_SECONDS = 1
    _, daphnes = stack
    await rolling_restart(fleet, daphnes)
    # least_conn never moves an open socket: the process restarted first holds them all.
    counts = [await asyncio.to_thread(open_sockets, daphne) for daphne in daphnes]
    assert counts == [CLIENTS, 0], counts

    output = io.StringIO()
    closes_before = len(fleet.closes)
    asked_at = time.monotonic()
    await database_sync_to_async(call_command)(
        "rebalance_sockets", "--processes", "2", "--over", "3", stdout=output
    )
    assert f"asked {CLIENTS // 2} socket(s) to reconnect over 3 s" in output.getvalue()
    deadline = time.monotonic() + 20
    while True:
        counts = [await asyncio.to_thread(open_sockets, daphne) for daphne in daphnes]
        if counts == [CLIENTS // 2, CLIENTS // 2] and fleet.all_connected:
            break
        assert time.monotonic() < deadline, (counts, output.getvalue())
        await asyncio.sleep(0.1)

    # Half of the clients were asked, with the close code they answer by reconnecting, one
    # at a time over the 3 s rather than all at once; nginx placed each on the other process.
    asked = fleet.closes[closes_before:]
    assert [code for _, code in asked] == [1013] * (CLIENTS // 2), asked
    times = [when - asked_at for when, _ in asked]
    assert max(times) - min(times) >= 2, times
    assert fleet.refused == [] and fleet.failed == [], (fleet.refused, fleet.failed)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--share", "2"], "--share must be more than 0 and at most 1"),
        (["--over", "-1"], "--over must be zero or more seconds"),
    ],
)
def test_rebalance_sockets_explains_a_wrong_argument(db, arguments, error):
    with pytest.raises(CommandError, match=error):
        call_command("rebalance_sockets", *arguments)


def test_rebalance_sockets_counts_only_the_processes_that_go_on_beating(make_user, settings):
    """A process just stopped keeps its sockets' rows and a fresh heartbeat for a while."""
    settings.CHAT_HEARTBEAT_SECONDS = 0.05
    users = [make_user() for _ in range(CLIENTS + 5)]
    now = timezone.now()
    # "running" beats while the command watches; "stopped" beat last a few seconds ago.
    PresenceProcess.objects.create(id="running", heartbeat_at=now + timedelta(seconds=60))
    PresenceProcess.objects.create(id="stopped", heartbeat_at=now - timedelta(seconds=5))
    for n, user in enumerate(users):
        process = "running" if n < CLIENTS else "stopped"
        SocketPresence.objects.create(channel_name=f"specific.x!{n}", user=user, process=process)
    output = io.StringIO()
    call_command("rebalance_sockets", "--processes", "2", "--dry-run", stdout=output)
    assert "12 socket(s), 6 to reconnect" in output.getvalue(), output.getvalue()
    assert "6 socket(s) would be asked to reconnect" in output.getvalue()
