"""One user with 20 sockets that never read and flood the server, while two others chat."""

import pytest

from tests.abuse import attack, prepare
from tests.live import Daphne

pytestmark = [pytest.mark.services, pytest.mark.alone, pytest.mark.django_db(transaction=True)]

# The limits as deployed, not the suite's generous ones (tests/settings.py); the chatters
# send at 20 messages a second between them, above the default send limit, which is not
# what this test is about.
DEPLOYED_LIMITS = {
    "CHAT_SYNC_RATE": "30/10s,600/600s",
    "CHAT_PING_RATE": "60/30s",
    "CHAT_READ_RATE": "30/5s,300/60s",
    "CHAT_EDIT_RATE": "10/5s,60/60s",
    "CHAT_CONNECT_RATE": "60/60s,600/3600s",
    "DEBUG": "0",
}


@pytest.fixture
def server(transactional_db, tmp_path):
    daphne = Daphne(env=DEPLOYED_LIMITS, log_path=tmp_path / "daphne.log").start()
    yield daphne
    daphne.stop()
    log = (tmp_path / "daphne.log").read_text()
    assert "Traceback" not in log, log[-3000:]


async def test_a_flooding_user_neither_grows_the_process_nor_slows_the_others(server):
    from channels.db import database_sync_to_async

    prepared = await database_sync_to_async(prepare)()
    figures = await attack(
        url=server.ws_url, server_pid=server.process.pid, prepared=prepared, duration_s=30
    )
    print("abuse:", figures.summary())
    assert figures.rss_growth_mb <= 50, figures.summary()
    assert figures.chat_p99_ms < 250, figures.summary()
    assert figures.attacker_sockets_closed_by_server >= 20, figures.summary()
    assert figures.idle_after_s is not None and figures.idle_after_s <= 5, figures.summary()
    assert figures.lost == 0, figures.summary()
    assert figures.chat_delivered == figures.chat_messages > 400, figures.summary()
