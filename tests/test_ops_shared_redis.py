"""Two sites on one Redis server, each with its own REDIS_PREFIX: nothing of one reaches the
other, although both have a user with the same id (docs/operations.md, "Two sites on one
Redis")."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis
from channels.db import database_sync_to_async

from messaging.domain.tokens import token_issue
from tests.helpers import send_frame
from tests.live import ROOT, Daphne, LiveClient, RedisServer, live_client

PASSWORD = "a-long-pass-phrase-9"


def manage_py(*args: str, env: dict[str, str]) -> str:
    """Run manage.py with the test settings and this environment; return what it printed."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def make_user_of_site(env: dict[str, str], *, user_id: int, username: str) -> str:
    """Make a user with this id in the site's own database; return a bearer token of theirs."""
    code = (
        "from django.contrib.auth import get_user_model\n"
        "from messaging.domain.tokens import token_issue\n"
        f"user = get_user_model().objects.create_user(id={user_id}, username={username!r},"
        f" password={PASSWORD!r})\n"
        "print(token_issue(user=user))\n"
    )
    return manage_py("shell", "-c", code, env=env).strip().splitlines()[-1]


def revoke_tokens(server: Daphne, token: str) -> None:
    """Revoke the caller's every token through the API, as the settings page does."""
    headers = {"Authorization": f"Bearer {token}"}
    listing = urllib.request.Request(f"{server.http_url}/api/tokens/", headers=headers)
    with urllib.request.urlopen(listing, timeout=10) as answer:
        tokens = json.loads(answer.read())["tokens"]
    for item in tokens:
        request = urllib.request.Request(
            f"{server.http_url}/api/tokens/{item['id']}/", headers=headers, method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 204


@pytest.fixture
def shared_redis():
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def two_sites(transactional_db, shared_redis, tmp_path: Path):
    """Site A: two processes on the test database; site B: one process on a database of its
    own. Both on the same Redis server, each with its own prefix."""
    site_a = {"REDIS_URL": shared_redis.url, "REDIS_PREFIX": "chat-a"}
    site_b = {
        "REDIS_URL": shared_redis.url,
        "REDIS_PREFIX": "chat-b",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'site-b.sqlite3'}",
    }
    manage_py("migrate", "--noinput", env=site_b)
    servers = [
        Daphne(env=site_a, log_path=tmp_path / "a1.log"),
        Daphne(env=site_a, log_path=tmp_path / "a2.log"),
        Daphne(env=site_b, log_path=tmp_path / "b1.log"),
    ]
    try:
        for server in servers:
            server.start()
        yield site_b, servers
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        log = server.log_path.read_text()
        assert "Traceback" not in log, log


@pytest.mark.services
async def test_two_sites_on_one_redis_never_reach_each_others_users(
    two_sites, shared_redis, alice, bob
):
    site_b, (a1, a2, b1) = two_sites
    # On site B, a stranger has the id that alice has on site A.
    mallory_token = await asyncio.to_thread(
        make_user_of_site, site_b, user_id=alice.pk, username="mallory"
    )
    alice_token = await database_sync_to_async(token_issue)(user=alice)
    alice_socket = await LiveClient(a2.ws_url, alice_token).open()
    bob_socket = await live_client(a1, bob)
    mallory_socket = await LiveClient(b1.ws_url, mallory_token).open()
    try:
        # Bob (process A1) writes to alice: her socket is on A2, so the push goes through
        # Redis, to the group of user alice.pk.
        await bob_socket.request(send_frame("for alice only", "b-1", to="alice"), "message.ack")
        pushed = await alice_socket.recv_type("message.new")
        assert pushed["message"]["body"] == "for alice only"
        with pytest.raises(TimeoutError):
            frame = await mallory_socket.recv(timeout=1.5)
            pytest.fail(f"site B's user {alice.pk} was sent a frame of site A: {frame}")

        # Alice revokes her tokens on site A: her socket closes (4401), through Redis too;
        # mallory's stays open and working.
        await asyncio.to_thread(revoke_tokens, a1, alice_token)
        assert await alice_socket.chat.wait_closed(10) == 4401
        pong = await mallory_socket.request({"type": "ping"}, "pong")
        assert pong["last_seq"] == 0

        # Every key either site wrote (channel layer, rate limits) is under its prefix;
        # read while sockets are open, so that their groups are there.
        keys = redis.Redis.from_url(shared_redis.url).keys("*")
        assert any(k.startswith(b"chat-a:asgi") for k in keys), keys
        assert any(k.startswith(b"chat-b:asgi") for k in keys), keys
        strays = [k for k in keys if not k.startswith((b"chat-a:", b"chat-b:"))]
        assert not strays, strays
    finally:
        for client in (alice_socket, bob_socket, mallory_socket):
            await client.close()


def test_a_redis_prefix_that_is_not_a_plain_name_is_refused():
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "REDIS_PREFIX": "a b*"},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "REDIS_PREFIX: at most 40 letters, digits" in done.stderr
