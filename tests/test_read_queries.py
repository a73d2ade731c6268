"""A page costs the same few queries however much it shows: no query per message or row.

A page's rows are read with only what they show (messaging.domain.message_parts
.shown_rows, plain rows for the inbox too): a field left out and read later would cost a
query for every message, which a user of a long history would feel as a slow page.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.domain import message_changes, reactions, reading, selectors, services
from messaging.domain.events import collecting, user_group
from messaging.domain.message_parts import with_parts
from messaging.models import Conversation, Message
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


def test_every_page_shows_a_message_as_the_message_itself_is_shown(alice, bob, carol, make_user):
    """History, sync, search and the inbox read plain rows; each must show a message exactly
    as the message itself is shown when sent or changed (its model, with its parts)."""
    group = talk(alice, [bob, carol], rounds=4)
    direct = Conversation.objects.get(kind="direct", memberships__user=bob)
    sent = list(Message.objects.filter(conversation=direct).order_by("id"))
    message_changes.message_edit(editor=bob, message_id=sent[0].pk, body="look, edited")
    message_changes.message_delete(actor=bob, message_id=sent[1].pk)
    staff = make_user(username="staff", is_staff=True)
    message_changes.message_hide(moderator=staff, message_id=sent[2].pk)
    services.message_send(
        sender=bob, body="@alice look here", client_id="m1", conversation_id=group
    )

    def as_itself(message_id: int) -> dict:
        return message_data(with_parts([Message.objects.get(pk=message_id)])[0])

    client = api(alice)
    history = client.get(f"/api/conversations/{direct.pk}/messages/").json()["messages"]
    synced = [message_data(m) for m in selectors.messages_after(user=alice, after=0, limit=200)[0]]
    found = client.get("/api/search/", {"q": "look"}).json()["messages"]
    inbox = client.get("/api/conversations/").json()["conversations"]
    assert [m["id"] for m in history] == [m.pk for m in sent]
    assert {m["deleted"] for m in history} == {True, False}
    assert any(m["reply_to"] and m["reactions"] for m in history)
    assert any(m["mentions"] for m in synced)
    assert any(m["edited_at"] for m in history)
    assert any(m["removed_by"] == "moderator" for m in history)
    for shown in [*history, *synced, *(c["last_message"] for c in inbox)]:
        assert shown == as_itself(shown["id"])
    assert found
    for hit in found:
        assert hit["conversation_title"] == Conversation.objects.get(pk=hit["conversation"]).title
        shown = {
            key: hit[key]
            for key in hit
            if key not in ("conversation_title", "snippet", "highlights")
        }
        assert shown == as_itself(hit["id"])
    assert group in {c["id"] for c in inbox}


def statements(call) -> int:
    """Count the statements a call makes, without the savepoints of the test's transaction."""
    with CaptureQueriesContext(connection) as captured:
        call()
    savepoints = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
    return sum(not query["sql"].startswith(savepoints) for query in captured.captured_queries)


def test_typing_and_reading_cost_two_or_three_statements_however_many_conversations(
    alice, bob, carol, make_user, django_capture_on_commit_callbacks
):
    """Every `typing` frame (each 3 s while someone writes) and every `read` frame asks the
    privacy rule; it is one statement, which does not grow with the writer's conversations."""
    group = talk(alice, [bob, carol], rounds=1)
    newest = Message.objects.filter(conversation_id=group).order_by("-seq")

    def frame_costs() -> tuple[int, int]:
        services.message_send(
            sender=bob, body="more", client_id=f"r{newest.count()}", conversation_id=group
        )
        up_to = newest.first().pk
        with collecting() as told, django_capture_on_commit_callbacks(execute=True):
            typing = statements(
                lambda: reading.conversation_typing(user=alice, conversation_id=group)
            )
            read = statements(
                lambda: reading.conversation_mark_read(
                    user=alice, conversation_id=group, up_to=up_to
                )
            )
        told_of = {
            kind: {g for g, e in told if e["frame"]["type"] == kind} for kind in ("typing", "read")
        }
        everyone = {user_group(person.pk) for person in (alice, bob, carol)}
        assert told_of == {"typing": everyone - {user_group(alice.pk)}, "read": everyone}
        return typing, read

    few = frame_costs()
    talk(alice, [make_user(username=f"other{i}") for i in range(8)], rounds=1)
    assert frame_costs() == few
    typing, read = few
    assert typing <= 2 and read <= 3
