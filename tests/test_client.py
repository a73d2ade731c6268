"""The Python client of the protocol (messaging.client) against a real daphne.

Each test runs on SQLite with the in-memory layer (one daphne process, what a developer
runs) and again on PostgreSQL and Redis (`services`).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from messaging.client import SYNCED, ChatClient, ChatError
from tests.helpers import register
from tests.live import ROOT, Daphne, manage

PASSWORD = "a long enough passphrase"
# Small sync pages (a few messages each), so that paging through `more` is exercised.
SERVER_ENV = {"CHAT_SYNC_MAX_CHARS": "1500", "CHAT_HEARTBEAT_SECONDS": "1"}


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """Migrate one SQLite database for the session; each test starts from a copy."""
    path = tmp_path_factory.mktemp("client") / "template.sqlite3"
    manage("migrate", "--noinput", env={"DATABASE_URL": f"sqlite:///{path}", "REDIS_URL": ""})
    return path


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "services", marks=[pytest.mark.services, pytest.mark.django_db(transaction=True)]
        ),
    ]
)
def server(request, tmp_path, migrated_sqlite):
    log = tmp_path / "daphne.log"
    if request.param == "sqlite":
        database = tmp_path / "chat.sqlite3"
        shutil.copy(migrated_sqlite, database)
        env = {**SERVER_ENV, "DATABASE_URL": f"sqlite:///{database}", "REDIS_URL": ""}
    else:
        env = SERVER_ENV
    daphne = Daphne(env=env, log_path=log).start()
    yield daphne
    daphne.stop()
    assert "Traceback" not in log.read_text()


@pytest.fixture
def users(server):
    """Register alice, bob and carol on the server; map each name to its bearer token."""
    suffix = uuid.uuid4().hex[:6]
    return {
        name: register(server.http_url, f"{name}{suffix}", PASSWORD)
        for name in ("alice", "bob", "carol")
    }


@pytest.fixture
async def client_of(server, users):
    """Connect a ChatClient of a user; close them all after the test."""
    opened: list[ChatClient] = []

    async def _connect(name: str, **options) -> ChatClient:
        client = await ChatClient(server.ws_url, users[name]["token"], **options).connect()
        opened.append(client)
        return client

    yield _connect
    for client in opened:
        await client.close()


async def next_events(client: ChatClient, count: int, timeout: float = 10, **options) -> list:
    """Return the next `count` message changes that `events()` hands on."""
    changes = []
    iterator = client.events(**options)
    while len(changes) < count:
        event = await asyncio.wait_for(anext(iterator), timeout)
        if event["type"] in ("message.new", "message.updated", SYNCED):
            changes.append(event)
    await iterator.aclose()
    return changes


async def nothing_more(client: ChatClient, wait: float = 0.5) -> list:
    """Return the message changes `events()` still hands on within `wait` seconds."""
    more = []

    async def collect():
        async for event in client.events():
            if event["type"] in ("message.new", "message.updated", SYNCED):
                more.append(event)

    try:
        await asyncio.wait_for(collect(), wait)
    except TimeoutError:
        pass
    return more


def bodies(changes: list[dict]) -> list[str]:
    return [change["message"]["body"] for change in changes]


async def test_connect_keeps_the_ready_state_and_send_returns_the_stored_message(client_of, users):
    alice = await client_of("alice")
    bob = await client_of("bob")
    assert alice.user["username"] == users["alice"]["username"]
    assert alice.last_seq == 0 and alice.online == []

    message = await alice.send("hello bob", to=users["bob"]["username"])
    assert message["body"] == "hello bob" and message["id"] > 0
    assert str(uuid.UUID(message["client_id"])) == message["client_id"]
    [pushed] = await next_events(bob, 1)
    assert pushed["type"] == "message.new" and pushed["message"] == message
    assert bob.last_seq == message["seq"]
    # Alice is online for bob now that she wrote to him; ping answers the newest stamp.
    assert await bob.ping() == message["seq"]

    answer = await bob.send("hi alice", conversation=message["conversation"])
    assert answer["conversation"] == message["conversation"]
    assert bodies(await next_events(alice, 2)) == ["hello bob", "hi alice"]


async def test_a_retry_with_the_same_client_id_stores_once_and_refusals_raise(client_of, users):
    alice = await client_of("alice")
    bob_name = users["bob"]["username"]
    first = await alice.send("once", to=bob_name, client_id="retry-1")
    again = await alice.send("once", to=bob_name, client_id="retry-1")
    assert again["id"] == first["id"]

    with pytest.raises(ChatError) as conflict:
        await alice.send("another body", to=bob_name, client_id="retry-1")
    assert conflict.value.code == "conflict" and conflict.value.client_id == "retry-1"
    with pytest.raises(ChatError) as unknown:
        await alice.send("hello?", to="nobody-by-this-name")
    assert unknown.value.code == "not_found"
    with pytest.raises(ChatError) as empty:
        await alice.send("   ", to=bob_name)
    assert empty.value.code == "empty"
    # The socket stays open and usable after refusals.
    assert (await alice.send("still here", to=bob_name))["body"] == "still here"


async def test_sync_pages_through_more_and_returns_every_change(client_of, users):
    alice = await client_of("alice")
    sent = [
        await alice.send(f"message {n} " + "x" * 200, to=users["bob"]["username"])
        for n in range(9)
    ]
    changes = await alice.sync(0)
    assert [m["id"] for m in changes] == [m["id"] for m in sent]
    assert [m["id"] for m in await alice.sync(sent[4]["seq"])] == [m["id"] for m in sent[5:]]


class LossyClient(ChatClient):
    """A client whose channel loses the pushes of chosen bodies, as a dropped push does."""

    def __init__(self, *args, lose: set[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lose = lose

    def _receive(self, frame: dict) -> None:
        if frame.get("type") == "message.new" and frame["message"]["body"] in self.lose:
            return
        super()._receive(frame)


async def test_a_lost_push_is_synced_before_the_next_one_is_handed_on(server, users, client_of):
    alice = await client_of("alice")
    bob = await LossyClient(server.ws_url, users["bob"]["token"], lose={"two"}).connect()
    try:
        for body in ("one", "two", "three", "four"):
            await alice.send(body, to=users["bob"]["username"])
        changes = await next_events(bob, 4)
        assert bodies(changes) == ["one", "two", "three", "four"]
        assert changes[1]["type"] == SYNCED, "the lost one comes from sync"
        seqs = [change["message"]["seq"] for change in changes]
        assert seqs == sorted(seqs) and bob.last_seq == seqs[-1]
        # Pushes of changes that the sync already handed on are not handed on twice.
        assert await nothing_more(bob) == []
    finally:
        await bob.close()


async def test_an_unasked_pong_syncs_what_was_missed(server, users, client_of):
    """The server's channel layer came back: pushes may have been lost, and it says so with
    a pong nobody asked for (its `last_seq`)."""
    alice = await client_of("alice")
    bob = await LossyClient(server.ws_url, users["bob"]["token"], lose={"two"}).connect()
    try:
        await alice.send("one", to=users["bob"]["username"])
        [first] = await next_events(bob, 1)
        last = await alice.send("two", to=users["bob"]["username"])
        assert await nothing_more(bob) == []  # lost, and nothing shows the gap yet
        bob._receive({"type": "pong", "last_seq": last["seq"]})
        [synced] = await next_events(bob, 1)
        assert synced["type"] == SYNCED and synced["message"]["body"] == "two"
        assert bob.last_seq == last["seq"] > first["message"]["seq"]
    finally:
        await bob.close()


async def test_pushes_dropped_while_nobody_reads_are_synced_again(client_of, users):
    alice = await client_of("alice")
    bob = await client_of("bob", max_events=2)
    sent = [await alice.send(f"m{n}", to=users["bob"]["username"]) for n in range(6)]
    await asyncio.sleep(0.5)  # every push reached bob's full queue, most were dropped
    changes = await next_events(bob, 6)
    assert [change["message"]["id"] for change in changes] == [m["id"] for m in sent]
    assert await nothing_more(bob) == []


async def test_reconnect_retries_a_restarting_server_and_syncs_what_was_missed(
    server, client_of, users
):
    bob = await client_of("bob")
    alice = await client_of("alice")
    await alice.send("before", to=users["bob"]["username"])
    assert bodies(await next_events(bob, 1)) == ["before"]

    server.stop()
    reconnecting = asyncio.ensure_future(bob.reconnect(retry_for=30))
    await asyncio.sleep(1)  # refused meanwhile: nothing listens
    assert not reconnecting.done()
    server.start()
    await alice.reconnect()
    for body in ("while away 1", "while away 2"):
        await alice.send(body, to=users["bob"]["username"])
    await reconnecting
    assert bodies(await next_events(bob, 2)) == ["while away 1", "while away 2"]
    assert await nothing_more(bob) == []


def syncs_asked(server) -> float:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as answer:
        found = re.search(
            r'^chat_frames_in_total{type="sync"} (\S+)$', answer.read().decode(), re.M
        )
    return float(found[1]) if found else 0.0


async def test_a_reconnect_with_nothing_missed_asks_for_no_sync(server, client_of, users):
    bob = await client_of("bob")
    alice = await client_of("alice")
    await alice.send("seen", to=users["bob"]["username"])
    assert bodies(await next_events(bob, 1)) == ["seen"]
    before = await asyncio.to_thread(syncs_asked, server)
    await bob.reconnect()
    assert await asyncio.to_thread(syncs_asked, server) == before, "ready said nothing changed"
    await bob.ws.close()
    await alice.send("while away", to=users["bob"]["username"])
    await bob.reconnect()
    assert await asyncio.to_thread(syncs_asked, server) == before + 1
    assert bodies(await next_events(bob, 1)) == ["while away"]
    assert await nothing_more(bob) == []


async def test_events_reconnect_by_themselves_when_asked(server, client_of, users):
    bob = await client_of("bob")
    alice = await client_of("alice")
    events = bob.events(reconnect=True)
    await bob.ws.close()  # the connection is lost under the iteration
    await alice.send("after the loss", to=users["bob"]["username"])
    event = await asyncio.wait_for(anext(events), 20)
    while event["type"] not in ("message.new", SYNCED):
        event = await asyncio.wait_for(anext(events), 20)
    assert event["message"]["body"] == "after the loss"
    await events.aclose()


async def test_a_resumed_client_gets_the_history_since_its_stamp(server, client_of, users):
    alice = await client_of("alice")
    first = await alice.send("first", to=users["bob"]["username"])
    await alice.send("second", to=users["bob"]["username"])
    bob = await client_of("bob", last_seq=0)
    assert bodies(await next_events(bob, 2)) == ["first", "second"]
    later = await client_of("bob", last_seq=first["seq"])
    assert bodies(await next_events(later, 1)) == ["second"]


async def test_edit_delete_read_and_typing(client_of, users):
    alice = await client_of("alice")
    bob = await client_of("bob")
    message = await alice.send("tpyo", to=users["bob"]["username"])
    conversation = message["conversation"]
    edited = await alice.edit(message["id"], "typo")
    assert edited["body"] == "typo" and edited["edited_at"] is not None
    with pytest.raises(ChatError) as forbidden:
        await bob.edit(message["id"], "not mine")
    assert forbidden.value.code == "forbidden"
    deleted = await alice.delete(message["id"])
    assert deleted["deleted"] is True and deleted["body"] == ""
    with pytest.raises(ChatError) as gone:
        await alice.delete(message["id"])
    assert gone.value.code == "not_found"
    changes = await next_events(bob, 3)
    assert [(c["type"], c["message"]["body"]) for c in changes] == [
        ("message.new", "tpyo"),
        ("message.updated", "typo"),
        ("message.updated", ""),
    ]

    await bob.send("seen it", conversation=conversation)
    await bob.typing(conversation)
    await bob.read(conversation, message["id"])
    seen = set()
    async for event in alice.events():
        seen.add(event["type"])
        if {"typing", "read"} <= seen:
            break
    assert {"typing", "read"} <= seen


async def test_a_refused_handshake_raises_and_is_retried_only_when_asked(server, monkeypatch):
    # Without jitter the pauses are 0.2 s and 0.4 s before the third try, so a client that
    # retries takes at least 0.6 s; with jitter a retry could give up sooner, by chance.
    monkeypatch.setattr("messaging.client.connection.random.uniform", lambda low, high: 1.0)
    client = ChatClient(server.ws_url, "not-a-token")
    with pytest.raises(InvalidStatus) as refused:
        await client.connect()
    assert refused.value.response.status_code == 403
    started = asyncio.get_running_loop().time()
    with pytest.raises(InvalidStatus):
        await client.connect(retry_for=1.5)
    assert asyncio.get_running_loop().time() - started >= 0.5, "it backed off and retried"


def test_the_client_needs_no_django():
    code = "import sys; sys.modules['django'] = None; from messaging.client import ChatClient"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


async def test_catch_up_hands_what_it_found_to_an_iteration_that_waits(server, users, client_of):
    alice = await client_of("alice")
    lost = {"lost 1", "lost 2"}
    bob = await LossyClient(server.ws_url, users["bob"]["token"], lose=lost).connect()
    try:
        waiting = asyncio.ensure_future(next_events(bob, 2))
        for body in sorted(lost):
            await alice.send(body, to=users["bob"]["username"])
        await asyncio.sleep(0.3)
        assert not waiting.done(), "no push came"
        assert await bob.catch_up() == 2
        assert bodies(await waiting) == ["lost 1", "lost 2"]
    finally:
        await bob.close()
