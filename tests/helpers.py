"""Helpers the tests share: ports, HTTP with JSON, API clients and frames.

Only the standard library at import time, so that the soak and the benchmark can use the
network helpers without setting Django up; the Django ones import it when called.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

HOST = "127.0.0.1"
# The tests' servers listen from here up to the ephemeral range (above well-known services).
FIRST_TEST_PORT = 20000


def free_port(host: str = HOST) -> int:
    """Return a TCP port of `host` that nothing uses now, below the kernel's ephemeral range.

    A port from the ephemeral range can be given to an outgoing connection as its own end
    once its server stops, and a server restarted on it (a killed Redis primary the
    sentinels know by its port, say) would then fail to listen.
    """
    first, end = _worker_ports(FIRST_TEST_PORT, _first_ephemeral_port())
    for _ in range(100):
        port = random.randrange(first, end)
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port of {host} in {first}..{end}")


def _worker_ports(first: int, end: int) -> tuple[int, int]:
    """Return this test worker's share of the ports from `first` up to `end`.

    A port probed free is taken only when its server has started, a second or two later:
    the workers of a parallel run (pytest-xdist) each draw from ports of their own, or
    one's daphne could find its port taken by the other's and the test talk to the wrong
    server.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or not worker[2:].isdigit() or count < 2:
        return first, end
    share = (end - first) // count
    index = int(worker[2:]) % count
    return first + index * share, first + (index + 1) * share


def _first_ephemeral_port() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return max(int(ports.read().split()[0]), FIRST_TEST_PORT + 1000)
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere ports are only less likely to collide


def wait_for_port(
    port: int,
    *,
    timeout: float,
    process: subprocess.Popen | None = None,
    name: str = "server",
    host: str = HOST,
) -> None:
    """Wait until something listens on the port; fail when `process` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not start listening on {port}")


def http_get_json(url: str, *, token: str | None = None) -> tuple[int, Any]:
    """GET a JSON document; return the status and the body, for errors too."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def http_post_json(url: str, payload: Any) -> Any:
    """POST JSON and return the JSON answer; raise on an error status."""
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def register(base_url: str, username: str, password: str) -> dict[str, Any]:
    """Register a user over the API; return the user with its `token`."""
    answer = http_post_json(
        f"{base_url}/api/auth/register/", {"username": username, "password": password}
    )
    return {**answer["user"], "token": answer["token"]}


def send_frame(body: str, client_id: str, *, to: str | None = None, conversation=None) -> dict:
    """Build a `message.send` frame."""
    frame = {"type": "message.send", "body": body, "client_id": client_id}
    if to is not None:
        frame["to"] = to
    if conversation is not None:
        frame["conversation"] = conversation
    return frame


def api(user):
    """Return a Django test client that calls the API with a bearer token of the user."""
    from django.test import Client

    from messaging.domain.tokens import token_issue

    return Client(HTTP_AUTHORIZATION=f"Bearer {token_issue(user=user)}")


def post_json(client, path: str, data: Any, **extra):
    """POST JSON with a Django test client."""
    return client.post(path, json.dumps(data), content_type="application/json", **extra)


async def token_for(user) -> str:
    """Issue a bearer token for the user, from async code."""
    from channels.db import database_sync_to_async

    from messaging.domain.tokens import token_issue

    return await database_sync_to_async(token_issue)(user=user)


class Phases:
    """A long live test's phases, with when each began, and a bound on the whole run.

    `async with phases.bounded(seconds)` cancels the run when it is not done in time and
    fails naming the phase it was in and where each task was waiting, so that a slow or
    stuck run says where instead of ending in the test runner's timeout.
    """

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.marks: list[tuple[str, float]] = []
        self._stuck: str | None = None

    def __call__(self, name: str) -> None:
        """Mark the start of the phase `name`."""
        self.marks.append((name, round(time.monotonic() - self.began, 1)))

    def __str__(self) -> str:
        return ", ".join(f"{name} at {at} s" for name, at in self.marks)

    @contextlib.asynccontextmanager
    async def bounded(self, seconds: float) -> AsyncIterator[None]:
        """Run the block for at most `seconds`; past that, fail saying where it was."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None

        def expire() -> None:
            self._stuck = "\n".join(_awaiting(task) for task in asyncio.all_tasks(loop))
            main.cancel()

        watchdog = loop.call_later(seconds, expire)
        try:
            yield
        except asyncio.CancelledError:
            if self._stuck is None:
                raise
            main.uncancel()
            raise AssertionError(
                f"not done within {seconds} s; phases: {self}\nwhere each task waited:\n"
                f"{self._stuck}"
            ) from None
        finally:
            watchdog.cancel()


def _awaiting(task: asyncio.Task) -> str:
    """Say where a task waits: its chain of awaited coroutines, outermost first."""
    where = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return f"{task.get_name()}: {' > '.join(where) or 'running'}"


def calls_of(monkeypatch, owner: Any, name: str) -> list[dict[str, Any]]:
    """Record the keyword arguments of every call of `owner.name`, which still runs."""
    real = getattr(owner, name)
    calls: list[dict[str, Any]] = []

    def recorded(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return calls
