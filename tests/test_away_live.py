"""Pushes with every part real: daphne and `manage.py chat_worker` processes on PostgreSQL
and Redis, browsers' sockets, and push services on 127.0.0.1 that check VAPID and decrypt
(tests/push_service.py); a hung push service, a worker killed in the middle of a push."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from channels.db import database_sync_to_async

from messaging.jobs import vapid
from messaging.models import JobClock
from tests.factories import UserFactory
from tests.helpers import send_frame, token_for
from tests.live import ROOT, Daphne, live_client
from tests.push_service import PushService

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


class Worker:
    """A `manage.py chat_worker` process with the daphne processes' environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "chat_worker", "--threads", "2"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


@pytest.fixture
def services(tmp_path):
    """Two push services, a daphne process and what a worker needs to reach them."""
    hung, fine = PushService().start(), PushService().start()
    key = vapid.new_private_key()
    for service in (hung, fine):
        service.expected_key = vapid.public_key_of(key)
    env = {
        "CHAT_VAPID_PRIVATE_KEY": key,
        "CHAT_PUSH_ENDPOINTS_ALLOWED": f"{hung.origin}/,{fine.origin}/",
        "CHAT_EMBEDDED_WORKER": "0",
        "CHAT_WORKER_HEARTBEAT_SECONDS": "1",
        "CHAT_WORKER_TTL": "3",
        "CHAT_JOB_RETRY_SECONDS": "1",
        "CHAT_PUSH_SCAN_SECONDS": "0.1",
        "CHAT_WORKER_POLL_SECONDS": "0.1",
        # A stopping worker finishes the push in flight first: the hung one, until this.
        "CHAT_PUSH_TIMEOUT_SECONDS": "4",
    }
    daphne = Daphne(env=env, log_path=tmp_path / "daphne.log").start()
    workers: list[Worker] = []

    def worker() -> Worker:
        made = Worker(daphne.env, tmp_path / f"worker{len(workers)}.log").start()
        workers.append(made)
        return made

    yield daphne, hung, fine, worker
    for made in workers:
        made.stop()
    daphne.stop()
    hung.stop()
    fine.stop()
    for log in tmp_path.glob("*.log"):
        assert "Traceback" not in log.read_text(), log.read_text()


def subscribe(daphne: Daphne, token: str, browser) -> None:
    """POST the browser's subscription with the person's bearer token, as a client does."""
    request = urllib.request.Request(
        f"{daphne.http_url}/api/push/subscriptions/",
        json.dumps(browser.subscription()).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


async def people(*names: str) -> list:
    return [await database_sync_to_async(UserFactory)(username=name) for name in names]


async def until_scanned() -> None:
    """Wait until the worker's push scan has run once (it starts from the newest message)."""
    deadline = time.monotonic() + 20
    while not await database_sync_to_async(
        lambda: JobClock.objects.filter(name="push_scan", state__has_key="high").exists()
    )():
        assert time.monotonic() < deadline, "the worker never scanned"
        await asyncio.sleep(0.1)


async def test_a_hung_push_service_delays_no_message_and_no_other_persons_push(
    services,
):
    daphne, hung, fine, worker = services
    alice, bob, carol, dave = await people("alice", "bob", "carol", "dave")
    bob_browser, carol_browser = hung.browser("hang"), fine.browser()
    subscribe(daphne, await token_for(bob), bob_browser)
    subscribe(daphne, await token_for(carol), carol_browser)
    worker()
    alice_socket = await live_client(daphne, alice)
    dave_socket = await live_client(daphne, dave)
    await until_scanned()

    # Bob's push service takes the first push and never answers.
    await alice_socket.request(send_frame("for bob", "b1", to="bob"), "message.ack")
    await asyncio.to_thread(hung.wait_arrived, bob_browser)

    # Meanwhile: a message to someone online arrives at once, and carol's push goes through.
    started = time.monotonic()
    await alice_socket.send(send_frame("for dave", "d1", to="dave"))
    pushed = await dave_socket.recv_type("message.new")
    assert pushed["message"]["body"] == "for dave"
    assert time.monotonic() - started < 1.0
    await alice_socket.request(send_frame("for carol", "c1", to="carol"), "message.ack")
    sent_at = time.time()
    (taken,) = await asyncio.to_thread(fine.wait_taken, 1, carol_browser, 5)
    assert taken.payload["body"] == "for carol"
    assert taken.at - sent_at < 2.0, "carol's push waited for bob's push service"
    assert hung.taken() == [] and fine.problems == []
    await alice_socket.close()
    await dave_socket.close()


async def test_a_worker_killed_in_the_middle_of_a_push_delivers_it_once_after_restarting(
    services,
):
    daphne, _, fine, worker = services
    alice, bob = await people("alice", "bob")
    browser = fine.browser("hang-once")
    subscribe(daphne, await token_for(bob), browser)
    first = worker()
    alice_socket = await live_client(daphne, alice)
    await until_scanned()

    await alice_socket.request(send_frame("do not lose me", "k1", to="bob"), "message.ack")
    # The push is on its way: the push service has it and has not answered.
    await asyncio.to_thread(fine.wait_arrived, browser)
    first.kill()
    assert fine.taken() == []

    worker()  # Restarted: it finds the job of the dead worker once its heartbeat is old.
    (taken,) = await asyncio.to_thread(fine.wait_taken, 1, browser, 20)
    assert taken.payload["body"] == "do not lose me"
    await asyncio.sleep(3)
    assert len(fine.taken(browser)) == 1
    await alice_socket.close()


async def test_with_the_embedded_defaults_daphne_itself_sends_the_pushes(tmp_path):
    service = PushService().start()
    key = vapid.new_private_key()
    service.expected_key = vapid.public_key_of(key)
    daphne = Daphne(
        env={
            "CHAT_VAPID_PRIVATE_KEY": key,
            "CHAT_PUSH_ENDPOINTS_ALLOWED": f"{service.origin}/",
            "CHAT_PUSH_SCAN_SECONDS": "0.1",
            # The embedded defaults, as `make run` has them: no Redis (the in-memory layer),
            # so daphne runs the jobs itself; nothing says so but that.
            "REDIS_URL": "",
        },
        log_path=tmp_path / "daphne.log",
    ).start()
    try:
        alice, bob = await people("alice", "bob")
        browser = service.browser()
        subscribe(daphne, await token_for(bob), browser)
        alice_socket = await live_client(daphne, alice)
        await until_scanned()
        await alice_socket.request(send_frame("no worker needed", "e1", to="bob"), "message.ack")
        (taken,) = await asyncio.to_thread(service.wait_taken, 1, browser, 10)
        assert taken.payload["body"] == "no worker needed"
        await alice_socket.close()
    finally:
        daphne.stop()
        service.stop()
    assert "Traceback" not in (tmp_path / "daphne.log").read_text()
