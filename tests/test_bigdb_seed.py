"""The big-database seeding command: what it seeds is served correctly by the product."""

import importlib.util
import sys
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from messaging.models import ChangeStream, Membership, Message
from tests.helpers import api, send_frame

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

_spec = importlib.util.spec_from_file_location(
    "seed_bigdb", Path(__file__).resolve().parent.parent / "bench" / "seed_bigdb.py"
)
seed_bigdb = importlib.util.module_from_spec(_spec)
sys.modules["seed_bigdb"] = seed_bigdb
_spec.loader.exec_module(seed_bigdb)


def seed_smoke():
    with transaction.atomic():
        seeded = seed_bigdb.seed(connection, seed_bigdb.SIZES["smoke"], log=lambda _line: None)
    seed_bigdb.analyze(connection)
    return seeded


def inbox_pages(user) -> list[dict]:
    """Every conversation of the user's inbox, following the pages to the end."""
    client = api(user)
    found, params = [], {}
    while True:
        response = client.get("/api/conversations/", params)
        assert response.status_code == 200, response.content
        body = response.json()
        found += body["conversations"]
        if not body.get("has_more"):
            return found
        params = {"cursor": body["next_cursor"]}


def expected_unread(user) -> dict[int, int]:
    """Count each conversation's unread messages straight from the tables."""
    counts = {}
    for membership in Membership.objects.filter(user=user):
        counts[membership.conversation_id] = (
            Message.objects.filter(
                conversation_id=membership.conversation_id,
                id__gt=membership.last_read_message_id,
                kind=Message.Kind.TEXT,
                deleted_at__isnull=True,
            )
            .exclude(sender=user)
            .count()
        )
    return counts


async def test_seeded_heavy_user_is_served_the_same_by_the_api_and_a_socket_sync(connect):
    size = seed_bigdb.SIZES["smoke"]
    seeded = await database_sync_to_async(seed_smoke)()
    assert seeded.messages >= size.messages and seeded.users == size.users
    assert seeded.conversations == size.conversations
    heavy = await database_sync_to_async(get_user_model().objects.get)(username="heavy1")

    inbox = await database_sync_to_async(inbox_pages)(heavy)
    assert len(inbox) == size.heavy_conversations
    assert len({c["id"] for c in inbox}) == len(inbox)
    activity = [c["last_activity_at"] for c in inbox]
    assert activity == sorted(activity, reverse=True)
    unread = await database_sync_to_async(expected_unread)(heavy)
    assert {c["id"]: c["unread"] for c in inbox} == unread
    assert sum(unread.values()) > 0, "some conversations are seeded unread"
    groups = [c for c in inbox if c["kind"] == "group"]
    assert len(groups) == size.heavy_groups

    socket = await connect(heavy)
    stream = await database_sync_to_async(ChangeStream.objects.get)(user=heavy)
    assert socket.ready["last_seq"] == stream.last_seq > 0
    synced, after = [], 0
    while True:
        page = await socket.request({"type": "sync", "after": after}, "sync.result", timeout=10)
        synced += page["messages"]
        if not page["more"]:
            break
        after = page["messages"][-1]["seq"]
    seqs = [m["seq"] for m in synced]
    assert seqs == sorted(set(seqs)), "each change once, ascending"
    assert len(synced) >= size.heavy_messages
    assert seqs[-1] == stream.last_seq
    # As the product's own: the stream names where its last change is (the short read).
    assert stream.last_conversation_id == synced[-1]["conversation"]
    last_by_conversation = {}
    for message in synced:
        last_by_conversation[message["conversation"]] = message["id"]
    assert last_by_conversation == {c["id"]: c["last_message"]["id"] for c in inbox}

    # The product goes on from the seeded data: new ids and stamps come after it.
    newest_id = max(last_by_conversation.values())
    ack = await socket.request(
        send_frame("after the seed", "after-seed-1", conversation=inbox[-1]["id"]),
        "message.ack",
    )
    assert ack["message"]["id"] > newest_id
    assert ack["message"]["seq"] > stream.last_seq
