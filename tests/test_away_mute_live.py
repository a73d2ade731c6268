"""Muting a conversation reaches the person's other tabs and devices at once, nobody else's."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from messaging.domain import services
from tests.helpers import api

pytestmark = pytest.mark.django_db(transaction=True)


def patch_muted(user, conversation_id: int, muted: bool) -> int:
    response = api(user).patch(
        f"/api/conversations/{conversation_id}/",
        json.dumps({"muted": muted}),
        content_type="application/json",
    )
    return response.status_code


async def test_muting_tells_the_persons_other_sockets_and_nobody_else(connect, alice, bob):
    conversation, _ = await database_sync_to_async(services.conversation_open_direct)(
        user=alice, other=bob
    )
    alice_phone = await connect(alice)
    bob_socket = await connect(bob)

    assert await database_sync_to_async(patch_muted)(alice, conversation.pk, True) == 200
    updated = await alice_phone.recv_type("conversation.updated")
    assert updated["change"]["kind"] == "muted"
    assert updated["conversation"]["id"] == conversation.pk
    assert updated["conversation"]["muted"] is True
    assert [m["username"] for m in updated["conversation"]["members"]] == ["alice", "bob"]
    assert await bob_socket.nothing()

    assert await database_sync_to_async(patch_muted)(alice, conversation.pk, False) == 200
    updated = await alice_phone.recv_type("conversation.updated")
    assert updated["change"]["kind"] == "unmuted"
    assert updated["conversation"]["muted"] is False
