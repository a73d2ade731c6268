import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from messaging.domain.tokens import token_issue
from tests.factories import UserFactory

IN_CI = bool(os.environ.get("CI"))


def have_services() -> bool:
    """Tell whether the suite runs on PostgreSQL and Redis."""
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql") and bool(
        settings.REDIS_URLS
    )


def pytest_collection_modifyitems(config, items):
    """Run the services tests only on PostgreSQL and Redis; in CI, refuse to run without."""
    if have_services():
        return
    if IN_CI:
        pytest.exit(
            "CI must run every test: set DATABASE_URL to PostgreSQL and REDIS_URL to Redis",
            returncode=3,
        )
    skip = pytest.mark.skip(reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL")
    for item in items:
        if "services" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    """In a parallel run, make the file its workers take turns by (see below)."""
    if not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", None):
        handle, path = tempfile.mkstemp(prefix="chat-tests-", suffix=".turns")
        os.close(handle)
        os.environ["CHAT_TEST_TURNS"] = path  # the workers, started after this, inherit it


def pytest_unconfigure(config):
    """Remove the turns file once the whole run, not one of its workers, is done."""
    turns = os.environ.pop("CHAT_TEST_TURNS", None)
    if turns and not hasattr(config, "workerinput"):
        Path(turns).unlink(missing_ok=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Run a test marked `alone` while the other workers wait, and wait while one runs.

    Outside pytest-timeout's clock: a test's wait for its turn is not its own time.
    """
    turns = os.environ.get("CHAT_TEST_TURNS")
    if not turns or not os.environ.get("PYTEST_XDIST_WORKER"):
        return (yield)
    alone = item.get_closest_marker("alone") is not None
    with open(turns, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            return (yield)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session", autouse=True)
def _send_connection_closed_at_the_end(django_db_setup):
    """Close the batches' kept connection before the test database is dropped."""
    yield
    from messaging.sending.queue import close_send_connection

    close_send_connection()


@pytest.fixture(autouse=True)
def _fresh_per_loop_state():
    """Give every test its own registry, rate limiter, send queue, caches and channel layer.

    Each async test runs on a new event loop, the Redis channel layer keeps locks bound to
    the loop that first used it, and the send batches' caches hold ids of an earlier
    test's database.
    """
    from channels.layers import channel_layers

    from messaging.singletons import reset_all

    reset_all()
    channel_layers.backends.clear()
    yield
    reset_all()
    channel_layers.backends.clear()


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def carol(db):
    return UserFactory(username="carol")


@pytest.fixture
def make_user(db):
    return UserFactory


class Client:
    """A WebSocket client of the chat, driven by a test."""

    def __init__(self, communicator: WebsocketCommunicator):
        self.communicator = communicator
        self.ready = None

    async def send(self, frame) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_text(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def recv(self, timeout: float = 3) -> dict:
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def recv_type(self, frame_type: str, timeout: float = 3) -> dict:
        """Receive frames until one of the given type; return it."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == frame_type:
                return frame

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout=timeout)

    async def request(self, frame: dict, answer: str, timeout: float = 3) -> dict:
        await self.send(frame)
        return await self.recv_type(answer, timeout)

    async def close(self) -> None:
        """Close the socket, unless its application ended already (a receive timed out)."""
        if self.communicator.future.done():
            return
        await self.communicator.disconnect()


async def open_socket(headers, path: str = "/ws/chat/"):
    """Open a socket through the real ASGI stack; return (connected, close code, client)."""
    from chatsite.asgi import application

    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if not connected:
        # Let the refused application finish rather than leave it to the loop's shutdown.
        await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await communicator.wait(timeout=2)
    return connected, code, Client(communicator)


@pytest.fixture
async def connect():
    """Open an authenticated socket for a user (bearer token) and read its `ready`."""
    clients = []

    async def _connect(user, *, expect_ready: bool = True) -> Client:
        key = await database_sync_to_async(token_issue)(user=user)
        connected, code, client = await open_socket([(b"authorization", f"Bearer {key}".encode())])
        assert connected, f"handshake refused ({code})"
        clients.append(client)
        if expect_ready:
            client.ready = await client.recv()
            assert client.ready["type"] == "ready"
        return client

    yield _connect
    for client in clients:
        # Whatever one socket's close raises, close the others. A CancelledError (not an
        # Exception) escaping here would also skip the database's flush after the test,
        # and every later test would find this one's rows.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await client.close()
