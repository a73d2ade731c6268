"""The inbox in pages: order, cursor, has_more, exact counts, big groups, bad parameters."""

import datetime as dt

import pytest
from django.utils import timezone

from messaging.domain import reading, services
from messaging.models import Conversation
from tests.helpers import api

pytestmark = pytest.mark.django_db


def send(sender, body, to, n=[0]):  # noqa: B006 - a counter shared by the tests
    n[0] += 1
    return services.message_send(sender=sender, body=body, client_id=f"p{n[0]}", to=to).message


def pages(user, limit: int) -> list[dict]:
    """Every page of the user's inbox, following next_cursor."""
    client = api(user)
    found, params = [], {"limit": limit}
    while True:
        response = client.get("/api/conversations/", params)
        assert response.status_code == 200, response.content
        body = response.json()
        found.append(body)
        assert body["has_more"] == (body["next_cursor"] is not None)
        if not body["has_more"]:
            return found
        params = {"limit": limit, "cursor": body["next_cursor"]}


@pytest.fixture
def inbox(alice, make_user):
    """Alice talks with seven people; two of them at the same moment; some unread."""
    people = [make_user(username=f"friend{i}") for i in range(7)]
    for index, person in enumerate(people):
        send(person, f"hello {index}", "alice")
        if index % 2:
            send(person, f"and again {index}", "alice")
    same = timezone.now() - dt.timedelta(days=1)
    tied = Conversation.objects.filter(memberships__user=people[2]).get(memberships__user=alice)
    other = Conversation.objects.filter(memberships__user=people[5]).get(memberships__user=alice)
    Conversation.objects.filter(pk__in=[tied.pk, other.pk]).update(last_activity_at=same)
    return people


def test_pages_list_every_conversation_once_newest_first(alice, inbox):
    everything = pages(alice, limit=3)
    assert [len(page["conversations"]) for page in everything] == [3, 3, 1]
    listed = [c for page in everything for c in page["conversations"]]
    assert len({c["id"] for c in listed}) == 7
    order = [(c["last_activity_at"], c["id"]) for c in listed]
    assert order == sorted(order, reverse=True)
    whole = api(alice).get("/api/conversations/").json()
    assert whole["has_more"] is False and whole["next_cursor"] is None
    assert [c["id"] for c in whole["conversations"]] == [c["id"] for c in listed]


def test_counts_are_exact_on_every_page(alice, inbox):
    first = inbox[0]
    conversation = Conversation.objects.filter(memberships__user=first).get(
        memberships__user=alice
    )
    newest = conversation.messages.order_by("-id").first()
    reading.conversation_mark_read(user=alice, conversation_id=conversation.pk, up_to=newest.pk)
    listed = {c["id"]: c for page in pages(alice, limit=2) for c in page["conversations"]}
    unread = {c["last_message"]["body"]: c["unread"] for c in listed.values()}
    assert unread == {
        "hello 0": 0,
        "and again 1": 2,
        "hello 2": 1,
        "and again 3": 2,
        "hello 4": 1,
        "and again 5": 2,
        "hello 6": 1,
    }


def test_a_conversation_with_new_activity_moves_to_the_first_page(alice, inbox):
    first_page = api(alice).get("/api/conversations/", {"limit": 2}).json()
    oldest = pages(alice, limit=2)[-1]["conversations"][-1]
    assert oldest["id"] not in {c["id"] for c in first_page["conversations"]}
    person = next(u for u in oldest["members"] if u["username"] != "alice")
    send(inbox[[p.username for p in inbox].index(person["username"])], "news", "alice")
    again = api(alice).get("/api/conversations/", {"limit": 2}).json()
    assert again["conversations"][0]["id"] == oldest["id"]
    assert again["conversations"][0]["unread"] == oldest["unread"] + 1


def test_a_big_group_lists_its_count_and_a_few_members(alice, make_user):
    others = [make_user(username=f"member{i:02d}") for i in range(12)]
    group = services.conversation_create_group(creator=alice, others=others, title="Big one")
    listed = api(alice).get("/api/conversations/").json()["conversations"]
    entry = next(c for c in listed if c["id"] == group.pk)
    assert entry["member_count"] == 13
    assert 0 < len(entry["members"]) <= 5
    detail = api(alice).get(f"/api/conversations/{group.pk}/").json()
    assert len(detail["members"]) == 13 and detail["member_count"] == 13


def test_a_direct_conversation_lists_both_people(alice, bob):
    send(bob, "hi", "alice")
    (entry,) = api(alice).get("/api/conversations/").json()["conversations"]
    assert entry["member_count"] == 2
    assert {u["username"] for u in entry["members"]} == {"alice", "bob"}


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "yesterday"},
        {"cursor": "123"},
        {"cursor": "12.x"},
        {"cursor": "-5.3"},
        {"cursor": "99999999999999999999.1"},
        {"cursor": "\uff11\uff12.3"},
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
    ],
)
def test_a_bad_cursor_or_limit_is_a_400_with_a_reason(alice, params):
    response = api(alice).get("/api/conversations/", params)
    assert response.status_code == 400
    body = response.json()
    assert body["detail"]
    assert set(body["errors"]) == set(params)


def test_the_chat_page_shows_the_first_page_and_where_the_next_begins(alice, inbox, settings):
    settings.CHAT_INBOX_PAGE = 4
    client = api(alice)
    client.force_login(alice)
    page = client.get("/")
    assert page.status_code == 200
    config = page.context["chat_config"]
    assert len(page.context["conversations"]) == 4
    assert config["inboxCursor"]
    rest = client.get("/api/conversations/", {"cursor": config["inboxCursor"]}).json()
    assert len(rest["conversations"]) == 3 and rest["has_more"] is False
