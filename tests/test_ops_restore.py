"""Restoring a backup: clients that saw newer, lost data still get every new message."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command
from django.utils import timezone

from messaging.client import ChatClient
from messaging.domain import services
from messaging.domain.selectors import messages_after
from messaging.models import ChangeStream, Message, PresenceProcess, SocketPresence
from tests.factories import UserFactory
from tests.helpers import token_for
from tests.live import ROOT, Daphne, database_url


def stamps_and_ids() -> tuple[int, int]:
    newest = max(
        Message.objects.order_by("-seq").values_list("seq", flat=True).first() or 0,
        max(ChangeStream.objects.values_list("last_seq", flat=True), default=0),
    )
    return newest, Message.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


@pytest.mark.django_db
def test_after_restore_puts_every_new_change_and_id_past_what_clients_saw(alice, bob):
    for n in range(3):
        services.message_send(sender=alice, body=f"before {n}", client_id=f"b{n}", to="bob")
    carol = UserFactory(username="carol")  # never wrote: no change stream yet
    PresenceProcess.objects.create(id="gone", heartbeat_at=timezone.now())
    SocketPresence.objects.create(channel_name="specific.gone!1", user=alice, process="gone")
    newest_stamp, newest_id = stamps_and_ids()
    # A client saw changes that the restored database lost: stamps and ids a little above.
    seen_stamp, seen_id = newest_stamp + 50, newest_id + 50

    out = StringIO()
    call_command("after_restore", "--margin", "1000", "--rate", "0", stdout=out)

    assert "Presence cleared: 1 socket(s), 1 process(es)" in out.getvalue()
    assert not SocketPresence.objects.exists() and not PresenceProcess.objects.exists()
    stored = services.message_send(sender=bob, body="after", client_id="a1", to="alice").message
    assert stored.seq > seen_stamp and stored.pk > seen_id
    changes, _more = messages_after(user=alice, after=seen_stamp, limit=200)
    assert [m.body for m in changes] == ["after"]
    # Two people whose streams the dump did not have yet are stamped past it too.
    first = services.message_send(sender=carol, body="hi", client_id="c1", to="alice").message
    assert first.seq > seen_stamp


@pytest.mark.django_db
def test_after_restore_counts_the_time_since_the_dump(alice, bob):
    services.message_send(sender=alice, body="x", client_id="x", to="bob")
    newest, _ = stamps_and_ids()
    an_hour_ago = (timezone.now() - timedelta(hours=1)).isoformat()
    call_command(
        "after_restore",
        "--dumped-at",
        an_hour_ago,
        "--margin",
        "10",
        "--rate",
        "100",
        stdout=StringIO(),
    )
    # 10 + 100 per second for the hour since the dump.
    assert min(ChangeStream.objects.values_list("last_seq", flat=True)) >= newest + 360_010
    with pytest.raises(CommandError, match="not an ISO 8601 time"):
        call_command("after_restore", "--dumped-at", "yesterday", stdout=StringIO())


def run(*command: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command[0]} failed: {done.stdout}{done.stderr}"
    return done.stdout


def scalar(url: str, query: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchone()[0] or 0


async def until(condition, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
def restored_database():
    """Name a database of the test's own to restore into; drop it afterwards."""
    source = database_url()
    name = f"opsb_restore_{uuid.uuid4().hex[:10]}"
    yield source.rsplit("/", 1)[0] + "/" + name
    run("dropdb", "--if-exists", "--force", "--maintenance-db", source, name)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
async def test_a_client_that_synced_before_a_restore_sees_every_new_message(
    tmp_path: Path, restored_database: str
):
    alice = await database_sync_to_async(UserFactory)(username="alice")
    bob = await database_sync_to_async(UserFactory)(username="bob")
    alice_token, bob_token = await token_for(alice), await token_for(bob)
    source = Daphne(log_path=tmp_path / "source.log").start()
    restored: Daphne | None = None
    # Alice's client as a bot or a browser tab runs it: it hands on each change once and
    # skips any change stamped at or below the last stamp it saw.
    alice_chat = await ChatClient(source.ws_url, alice_token, max_events=None).connect()
    shown: list[dict] = []

    async def watch() -> None:
        async for event in alice_chat.events(reconnect=True):
            if event["type"] in ("message.new", "message.synced"):
                shown.append(event["message"])

    watcher = asyncio.create_task(watch())
    bob_chat = await ChatClient(source.ws_url, bob_token).connect()
    try:
        for n in range(3):
            await bob_chat.send(f"before the dump {n}", to="alice")
        await until(lambda: len(shown) == 3)
        dump = tmp_path / "chat.dump"
        run("pg_dump", "--format=custom", "--file", str(dump), database_url())
        # Written after the dump: lost by the restore, but Alice's client saw them.
        for n in range(3):
            await bob_chat.send(f"lost {n}", to="alice")
        await until(lambda: len(shown) == 6)
        seen_stamp, seen_ids = alice_chat.last_seq, {m["id"] for m in shown}
        await bob_chat.close()
        source.stop()

        run("createdb", "--maintenance-db", database_url(), restored_database.rsplit("/")[-1])
        run("pg_restore", "--no-owner", "--dbname", restored_database, str(dump))
        stream = "SELECT MAX(last_seq) FROM messaging_changestream"
        assert scalar(restored_database, stream) < seen_stamp  # the trap this command fixes
        assert scalar(restored_database, "SELECT COUNT(*) FROM messaging_socketpresence") > 0
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        report = run(
            sys.executable,
            "manage.py",
            "after_restore",
            env={**env, "DATABASE_URL": restored_database},
        )
        # Alice's and Bob's sockets, and the process that held them.
        assert "Presence cleared: 2 socket(s), 1 process(es)" in report, report
        assert scalar(restored_database, stream) > seen_stamp

        # The chat starts on the restored database at the same address; Alice's client
        # reconnects by itself and syncs from the stamp it saw last.
        restored = Daphne(env={"DATABASE_URL": restored_database}, log_path=tmp_path / "r.log")
        restored.port = source.port
        restored.start()
        bob_chat = await ChatClient(restored.ws_url, bob_token).connect(retry_for=10)
        sent = [await bob_chat.send(f"after the restore {n}", to="alice") for n in range(3)]
        await until(lambda: len(shown) == 9)
        assert [m["body"] for m in shown[6:]] == [f"after the restore {n}" for n in range(3)]
        assert not {m["id"] for m in sent} & seen_ids
    finally:
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
        for chat in (alice_chat, bob_chat):
            await chat.close()
        for server in (source, restored):
            if server is not None:
                server.stop()
    for log in tmp_path.glob("*.log"):
        assert "Traceback" not in log.read_text(), log.read_text()
