"""Operations: /metrics, socket logs, and the management commands."""

import asyncio
import json
import logging
import re
import time
from datetime import timedelta
from io import StringIO

import pytest
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from messaging.domain import services
from messaging.domain.tokens import user_for_token
from messaging.models import AuthToken, Message
from messaging.sending import queue as sending
from tests.conftest import open_socket
from tests.helpers import send_frame

pytestmark = pytest.mark.django_db(transaction=True)


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.M)
    return float(found[1]) if found else 0.0


def slower_than(text: str, histogram: str, bound: str, labels: str = "") -> float:
    """Return how many observations of a histogram took longer than one of its bounds."""
    bucket = f'le="{bound}"' + (f",{labels}" if labels else "")
    return metric(text, f"{histogram}_count", labels) - metric(text, f"{histogram}_bucket", bucket)


def scrape() -> str:
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def test_metrics_are_for_staff_and_allowed_addresses(alice, make_user, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert Client(REMOTE_ADDR="192.168.1.5").get("/metrics").status_code == 403
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    member = Client(REMOTE_ADDR="192.168.1.5")
    member.force_login(alice)
    assert member.get("/metrics").status_code == 403
    staff = Client(REMOTE_ADDR="192.168.1.5")
    staff.force_login(make_user(username="ops", is_staff=True))
    assert staff.get("/metrics").status_code == 200


def test_each_process_can_be_scraped_over_plain_http_behind_a_tls_proxy(settings):
    settings.SECURE_SSL_REDIRECT = True
    # A browser asking for a page over HTTP is sent to HTTPS; the scraper is answered.
    assert Client(REMOTE_ADDR="127.0.0.1").get("/accounts/login/").status_code == 301
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200


async def test_a_stalled_event_loop_shows_on_metrics(connect, alice):
    before = await database_sync_to_async(scrape)()
    await connect(alice)
    await asyncio.sleep(0.15)
    # Something holds the loop that every socket of the process waits on.
    time.sleep(0.5)  # noqa: ASYNC251
    await asyncio.sleep(0.15)
    during = await database_sync_to_async(scrape)()
    lag = "chat_event_loop_lag_seconds"
    stalls = slower_than(during, lag, "0.25") - slower_than(before, lag, "0.25")
    assert stalls >= 1
    bucket = f"{lag}_bucket"
    assert metric(during, bucket, 'le="0.1"') > metric(before, bucket, 'le="0.1"')


async def test_metrics_count_a_known_run(connect, alice, bob):
    before = await database_sync_to_async(scrape)()
    alice_socket = await connect(alice)
    bob_socket = await connect(bob)
    for n in range(5):
        await alice_socket.request(send_frame(f"m{n}", f"c{n}", to="bob"), "message.ack")
    await alice_socket.request(send_frame("m0", "c0", to="bob"), "message.ack")  # a retry
    result = await bob_socket.request({"type": "sync", "after": 0}, "sync.result")
    assert len(result["messages"]) == 5
    await alice_socket.send_text("not json")
    await alice_socket.recv_type("error")
    connected, _, _ = await open_socket([(b"authorization", b"Bearer wrong")])
    assert not connected
    during = await database_sync_to_async(scrape)()

    def grew(name, labels=""):
        return metric(during, name, labels) - metric(before, name, labels)

    assert grew("chat_messages_stored_total") == 5
    assert grew("chat_frames_in_total", 'type="message.send"') == 6
    assert grew("chat_frames_in_total", 'type="invalid"') == 1
    assert grew("chat_frames_out_total", 'type="message.ack"') == 6
    assert grew("chat_syncs_total") == 1
    assert grew("chat_sync_messages_total") == 5
    assert grew("chat_send_latency_seconds_count") == 6
    assert grew("chat_handshakes_refused_total", 'reason="bad_token"') == 1
    assert grew("chat_open_sockets") == 2
    await alice_socket.close()
    await bob_socket.close()
    after = await database_sync_to_async(scrape)()
    assert metric(after, "chat_open_sockets") == metric(before, "chat_open_sockets")


async def test_metrics_tell_in_which_stage_a_slow_send_waited(connect, alice, bob, monkeypatch):
    alice_socket = await connect(alice)
    await connect(bob)
    count = sending.SendQueue._within_rate

    async def slow_count(self, batch):
        await asyncio.sleep(0.3)
        return await count(self, batch)

    monkeypatch.setattr(sending.SendQueue, "_within_rate", slow_count)
    before = await database_sync_to_async(scrape)()
    await alice_socket.request(send_frame("slow", "c-1", to="bob"), "message.ack")
    during = await database_sync_to_async(scrape)()

    def grew(stage: str, *, over_quarter_second: bool = False) -> float:
        histogram, label = "chat_send_stage_seconds", f'stage="{stage}"'
        if over_quarter_second:
            return slower_than(during, histogram, "0.25", label) - slower_than(
                before, histogram, "0.25", label
            )
        return metric(during, f"{histogram}_count", label) - metric(
            before, f"{histogram}_count", label
        )

    assert [grew(stage) for stage in ("waiting", "rate_limit", "acking")] == [1, 1, 1]
    assert grew("rate_limit", over_quarter_second=True) == 1
    assert grew("waiting", over_quarter_second=True) == 0
    assert grew("acking", over_quarter_second=True) == 0


async def test_socket_logs_tell_open_refuse_and_close_without_bodies_or_tokens(
    connect, alice, bob, caplog
):
    caplog.set_level(logging.INFO, logger="messaging")
    socket = await connect(alice)
    await socket.request(send_frame("a very private body", "c-1", to="bob"), "message.ack")
    await socket.close()
    connected, _, _ = await open_socket([(b"authorization", b"Bearer secret-token-value")])
    assert not connected
    text = "\n".join(record.getMessage() for record in caplog.records)
    opened = re.search(rf"socket (\w{{8}}) open user={alice.pk} via=token", text)
    assert opened, text
    assert re.search(rf"socket {opened[1]} closed user={alice.pk} code=\d+ duration=", text)
    assert "socket refused reason=bad_token" in text
    assert "a very private body" not in text and "secret-token-value" not in text


def test_issue_token_prints_a_working_token(alice):
    out = StringIO()
    call_command("issue_token", "alice", "--name", "wscat", stdout=out)
    assert user_for_token(out.getvalue().strip()) == alice
    assert AuthToken.objects.get().name == "wscat"
    with pytest.raises(CommandError):
        call_command("issue_token", "nobody")


def test_export_user_data_has_everything_and_no_secrets(alice, bob):
    services.message_send(sender=alice, body="hello bob", client_id="c-1", to="bob")
    out = StringIO()
    call_command("issue_token", "alice", stdout=StringIO())
    call_command("export_user_data", "alice", stdout=out)
    data = json.loads(out.getvalue())
    assert data["account"]["username"] == "alice"
    assert [m["body"] for m in data["messages_sent"]] == ["hello bob"]
    assert data["conversations"][0]["members"] == ["alice", "bob"]
    assert len(data["tokens"]) == 1 and set(data["tokens"][0]) == {
        "prefix",
        "name",
        "created_at",
        "last_used_at",
    }
    assert AuthToken.objects.get().key_hash not in out.getvalue()


async def test_purge_erases_old_messages_and_clients_see_them_deleted(connect, alice, bob):
    old = await database_sync_to_async(services.message_send)(
        sender=alice, body="ancient", client_id="old", to="bob"
    )
    recent = await database_sync_to_async(services.message_send)(
        sender=alice, body="fresh", client_id="new", to="bob"
    )
    await database_sync_to_async(Message.objects.filter(pk=old.message.pk).update)(
        created_at=timezone.now() - timedelta(days=40)
    )
    bob_socket = await connect(bob)
    out = StringIO()
    await database_sync_to_async(call_command)("purge_messages", "--older-than", "30", stdout=out)
    assert "Erased 1 message" in out.getvalue()
    updated = await bob_socket.recv_type("message.updated")
    assert updated["message"]["id"] == old.message.pk and updated["message"]["deleted"]
    stored = await database_sync_to_async(Message.objects.get)(pk=old.message.pk)
    assert stored.body == "" and stored.deleted_at is not None
    kept = await database_sync_to_async(Message.objects.get)(pk=recent.message.pk)
    assert kept.body == "fresh"
    again = StringIO()
    await database_sync_to_async(call_command)(
        "purge_messages", "--older-than", "30", stdout=again
    )
    assert "Erased 0 message" in again.getvalue()


@pytest.mark.parametrize("command", ["purge_messages", "export_user_data", "issue_token"])
def test_commands_explain_themselves(command, capsys):
    with pytest.raises(SystemExit):
        call_command(command, "--help")
    assert "usage" in capsys.readouterr().out
