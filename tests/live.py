"""Real daphne processes and WebSocket clients, for tests across processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings

from messaging.client import ChatClient
from tests.helpers import free_port, token_for, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """Describe the test database (already created by pytest-django) as a URL."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql"):
        user = db.get("USER") or "postgres"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


class Daphne:
    """One daphne process serving the chat on a free port of 127.0.0.1."""

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        backlog: int | None = None,
    ):
        self.port = free_port()
        self.backlog = backlog
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> Daphne:
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                *self._listen_arguments(),
                "chatsite.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=timeout, process=self.process, name="daphne")
        return self

    def _listen_arguments(self) -> list[str]:
        if self.backlog is None:  # daphne's own endpoint, with Twisted's backlog of 50
            return ["-b", "127.0.0.1", "-p", str(self.port)]
        return ["-e", f"tcp:port={self.port}:interface=127.0.0.1:backlog={self.backlog}"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
            self._log = None


@contextlib.contextmanager
def serving(log_dir: Path, **options: Any) -> Iterator[Daphne]:
    """Run one daphne for a test, its log in `log_dir`; fail if the log holds a traceback."""
    log = log_dir / "daphne.log"
    server = Daphne(log_path=log, **options).start()
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in log.read_text()


class LiveClient:
    """A test's socket to a live server: the shared ChatClient, and every frame in order.

    The protocol (handshake, `ready`, sync paging, reconnecting) is ChatClient's; this adds
    the frame-level view tests assert on: `send` a frame as it is, `recv` the next frame
    that the client did not consume itself.
    """

    def __init__(self, url: str, token: str | None, **options: Any):
        # Every frame is kept for the test to read: none may be dropped.
        self.chat = ChatClient(url, token or None, max_events=None, **options)
        self.ready: dict | None = None

    @property
    def url(self) -> str:
        return self.chat.url

    @property
    def token(self) -> str | None:
        return self.chat.token

    @property
    def ws(self):
        return self.chat.ws

    @ws.setter
    def ws(self, connection) -> None:
        # A connection the test opened itself (with a session cookie, say).
        self.chat.adopt(connection)

    async def open(self, *, retry_for: float = 0) -> LiveClient:
        await self.chat.connect(retry_for=retry_for)
        self.ready = await self.recv()
        assert self.ready["type"] == "ready", self.ready
        return self

    async def send(self, frame: dict) -> None:
        await self.chat.send_frame(frame)

    async def recv(self, timeout: float = 5) -> dict:
        return await self.chat.receive(timeout)

    async def recv_type(self, frame_type: str, timeout: float = 5) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            frame = await self.recv(max(remaining, 0.01))
            if frame["type"] == frame_type:
                return frame

    async def request(self, frame: dict, answer: str, timeout: float = 5) -> dict:
        await self.send(frame)
        return await self.recv_type(answer, timeout)

    async def close(self) -> None:
        await self.chat.close()


async def live_client(server: Daphne, user) -> LiveClient:
    """Open a socket of the user (a bearer token of their own) to a live server."""
    return await LiveClient(server.ws_url, await token_for(user)).open()


class RedisServer:
    """A redis-server of the test's own on a free port, that can be stopped and restarted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=timeout, process=self.process, name="redis-server")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


async def reconnect(url: str, token: str, timeout: float = 20) -> LiveClient:
    """Open a socket, retrying refused handshakes the way a client backs off."""
    return await LiveClient(url, token).open(retry_for=timeout)


async def sync_all(client: LiveClient, after: int = 0) -> list[dict]:
    """Page through `sync` from a stamp; return every change, ascending."""
    return await client.chat.sync(after)


class PostgresServer:
    """A PostgreSQL server of the test's own (initdb in a temporary folder, a free port)."""

    def __init__(self) -> None:
        import glob
        import tempfile

        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        # Outside pytest's own temporary folders, which the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="chat-test-pg-"))
        self.data_dir = self.root / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        # PostgreSQL refuses to run as root: run its tools as the postgres user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def init(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust"
        )
        return self

    def start(self) -> PostgresServer:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-o", options, "-w", "start"
        )
        return self

    def stop(self) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"
        )

    def remove(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def manage(*args: str, env: dict[str, str]) -> None:
    """Run a manage.py command with the given environment; fail on errors."""
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        check=True,
        capture_output=True,
    )


async def wait_closed(client: LiveClient, timeout: float = 10) -> int:
    """Wait until the server closes the socket; return its close code (1006 if none)."""
    return await client.chat.wait_closed(timeout)


def upload_over_http(server: Daphne, token: str, name: str, content: bytes) -> dict:
    """POST a file to /api/uploads/ as a multipart form; return the upload it answers."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        server.http_url + "/api/uploads/",
        data=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201
        return json.loads(answer.read())["upload"]


def download(server: Daphne, token: str, url: str) -> tuple[int, str, bytes]:
    """GET an attachment's URL as a person; return the status, content type and bytes."""
    request = urllib.request.Request(
        server.http_url + url, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()
