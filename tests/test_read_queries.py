"""A page costs the same few queries however much it shows: no query per message or row.

A page's rows are read with only what they show (messaging.domain.message_parts
.shown_messages, plain rows for the inbox): a field left out and read later would cost a
query for every message, which a user of a long history would feel as a slow page.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.domain import reactions, selectors, services
from messaging.models import Conversation
from messaging.protocol import message_data
from tests.helpers import api

pytestmark = pytest.mark.django_db


def talk(alice, people, rounds: int) -> int:
    """Alice and each person exchange `rounds` messages with replies, reactions, mentions."""
    group = services.conversation_create_group(creator=alice, others=people, title="all")
    sent = 0
    for person in people:
        previous = None
        for _ in range(rounds):
            sent += 1
            message = services.message_send(
                sender=person,
                body=f"@{alice.username} look {sent}",
                client_id=f"q{sent}",
                to=alice.username,
                reply_to=previous,
            ).message
            reactions.reaction_add(user=alice, message_id=message.pk, emoji="👍")
            previous = message.pk
            services.message_send(
                sender=person,
                body=f"in the group {sent}",
                client_id=f"g{sent}",
                conversation_id=group.pk,
            )
    return group.pk


def queries(read) -> int:
    with CaptureQueriesContext(connection) as captured:
        read()
    return len(captured.captured_queries)


def costs(alice, people, rounds: int) -> dict[str, int]:
    group = talk(alice, people, rounds)
    client = api(alice)
    direct = Conversation.objects.filter(kind="direct", memberships__user=alice).first()

    def ok(response):
        assert response.status_code == 200, response.content
        return response

    return {
        "inbox": queries(lambda: ok(client.get("/api/conversations/"))),
        "history": queries(lambda: ok(client.get(f"/api/conversations/{direct.pk}/messages/"))),
        "group history": queries(lambda: ok(client.get(f"/api/conversations/{group}/messages/"))),
        "search": queries(lambda: ok(client.get("/api/search/", {"q": "look"}))),
        "sync": queries(
            lambda: [
                message_data(m)
                for m in selectors.messages_after(user=alice, after=0, limit=200)[0]
            ]
        ),
    }


def test_a_page_costs_the_same_queries_for_few_rows_as_for_many(alice, make_user):
    few = costs(alice, [make_user(username=f"few{i}") for i in range(2)], rounds=2)
    many = costs(make_user(username="busy"), [make_user(username=f"many{i}") for i in range(6)], 4)
    assert many == few
