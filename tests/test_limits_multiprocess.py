"""Limits and staff actions across two daphne processes on PostgreSQL and Redis."""

import pytest
from channels.db import database_sync_to_async

from messaging.domain import moderation
from tests.helpers import send_frame
from tests.live import Daphne, LiveClient, wait_closed
from tests.live import live_client as open_on

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_strict_servers(transactional_db, tmp_path):
    env = {"CHAT_SEND_RATE": "3/86400s"}
    servers = [Daphne(env=env, log_path=tmp_path / f"d{n}.log").start() for n in range(2)]
    yield servers
    for server in servers:
        server.stop()
    for n in range(2):
        assert "Traceback" not in (tmp_path / f"d{n}.log").read_text()


async def test_the_send_limit_counts_across_processes(two_strict_servers, alice, bob):
    first, second = two_strict_servers
    on_first = await open_on(first, alice)
    on_second = await open_on(second, alice)
    await on_first.request(send_frame("1", "r-1", to="bob"), "message.ack")
    await on_second.request(send_frame("2", "r-2", to="bob"), "message.ack")
    await on_first.request(send_frame("3", "r-3", to="bob"), "message.ack")
    error = await on_second.request(send_frame("4", "r-4", to="bob"), "error")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    await on_first.close()
    await on_second.close()


async def test_deactivation_closes_sockets_on_both_processes(two_strict_servers, alice, make_user):
    staff = await database_sync_to_async(make_user)(username="mod", is_staff=True)
    first, second = two_strict_servers
    sockets = [await open_on(first, alice), await open_on(second, alice)]
    await database_sync_to_async(moderation.staff_deactivate_user)(staff=staff, user=alice)
    for socket in sockets:
        assert await wait_closed(socket) == 4401
    with pytest.raises(Exception, match="403"):
        await LiveClient(first.ws_url, sockets[0].token).open()
