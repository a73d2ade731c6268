"""PostgreSQL stopped and restarted under a running daphne, for real (a server of our own)."""

import asyncio

import pytest

from tests.helpers import http_get_json, http_post_json, send_frame
from tests.live import Daphne, LiveClient, PostgresServer, manage

pytestmark = pytest.mark.services


@pytest.fixture
def own_postgres():
    server = PostgresServer().init().start()
    yield server
    server.remove()


async def test_postgres_restart_answers_unavailable_then_stores_the_retry_once(
    own_postgres, tmp_path
):
    env = {"DATABASE_URL": own_postgres.url, "DATABASE_CONNECT_TIMEOUT": "2"}
    await asyncio.to_thread(manage, "migrate", "--noinput", env=env)
    server = Daphne(env=env, log_path=tmp_path / "d.log").start()
    try:
        register = server.http_url + "/api/auth/register/"
        password = "a long enough passphrase"
        alice = await asyncio.to_thread(
            http_post_json, register, {"username": "alice", "password": password}
        )
        await asyncio.to_thread(
            http_post_json, register, {"username": "bob", "password": password}
        )
        client = await LiveClient(server.ws_url, alice["token"]).open()
        await client.request(send_frame("before", "pg-0", to="bob"), "message.ack")

        await asyncio.to_thread(own_postgres.stop)
        error = await client.request(send_frame("during", "pg-1", to="bob"), "error", timeout=15)
        assert error["code"] == "unavailable" and error["client_id"] == "pg-1"
        status, health = await asyncio.to_thread(http_get_json, server.http_url + "/healthz")
        assert status == 503 and health["checks"]["database"] != "ok"

        await asyncio.to_thread(own_postgres.start)
        # The very first requests after the restart succeed: no stale connections.
        status, health = await asyncio.to_thread(http_get_json, server.http_url + "/healthz")
        assert status == 200, health
        first = await client.request(send_frame("during", "pg-1", to="bob"), "message.ack")
        again = await client.request(send_frame("during", "pg-1", to="bob"), "message.ack")
        assert first["message"]["id"] == again["message"]["id"]
        _, history = await asyncio.to_thread(
            http_get_json,
            f"{server.http_url}/api/conversations/{first['message']['conversation']}/messages/",
            token=alice["token"],
        )
        assert [m["body"] for m in history["messages"]] == ["before", "during"]
        await client.close()
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "d.log").read_text()
