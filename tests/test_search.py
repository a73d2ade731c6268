"""Message search over the full-text index: words, privacy, paging, edits, deletes, admin."""

import pytest
from django.test import Client

from messaging.domain import groups, message_changes, moderation, services
from messaging.domain.search import make_snippet
from tests.helpers import api

pytestmark = pytest.mark.django_db(transaction=True)


def send(sender, body, to, n=[0]):  # noqa: B006 - a counter shared by the tests
    n[0] += 1
    return services.message_send(sender=sender, body=body, client_id=f"s{n[0]}", to=to).message


def search(user, query, **params):
    response = api(user).get("/api/search/", {"q": query, **params})
    assert response.status_code == 200, response.content
    return response.json()


def bodies(result) -> list[str]:
    return [hit["body"] for hit in result["messages"]]


def test_all_words_must_match_newest_first(alice, bob):
    send(alice, "lunch at noon tomorrow", "bob")
    send(bob, "noon is fine", "alice")
    send(alice, "tomorrow lunch then, at the usual place", "bob")
    assert bodies(search(bob, "lunch tomorrow")) == [
        "tomorrow lunch then, at the usual place",
        "lunch at noon tomorrow",
    ]
    assert bodies(search(bob, "NOON")) == ["noon is fine", "lunch at noon tomorrow"]
    assert search(bob, "dinner")["messages"] == []


def test_results_are_only_from_the_callers_conversations(alice, bob, carol):
    send(alice, "secret plan for bob", "bob")
    send(carol, "carol's own plan", "alice")
    assert bodies(search(bob, "plan")) == ["secret plan for bob"]
    assert search(carol, "secret")["messages"] == []


def test_deleted_and_hidden_messages_never_appear(alice, bob, make_user):
    staff = make_user(username="mod", is_staff=True)
    gone = send(alice, "vanishing words", "bob")
    hidden = send(alice, "hidden words", "bob")
    send(alice, "remaining words", "bob")
    message_changes.message_delete(actor=alice, message_id=gone.pk)
    moderation.staff_hide_message(staff=staff, message_id=hidden.pk)
    assert bodies(search(bob, "words")) == ["remaining words"]


def test_edited_messages_are_found_by_their_new_text_only(alice, bob):
    message = send(alice, "the meeting is on monday", "bob")
    message_changes.message_edit(
        editor=alice, message_id=message.pk, body="the meeting is on friday"
    )
    assert bodies(search(bob, "friday")) == ["the meeting is on friday"]
    assert search(bob, "monday")["messages"] == []


def test_hits_page_back_with_before(alice, bob):
    sent = [send(alice, f"report number {n}", "bob") for n in range(5)]
    first = search(bob, "report", limit=2)
    assert bodies(first) == ["report number 4", "report number 3"] and first["has_more"]
    rest = search(bob, "report", limit=2, before=first["messages"][-1]["id"])
    assert bodies(rest) == ["report number 2", "report number 1"]
    last = search(bob, "report", limit=2, before=sent[1].pk)
    assert bodies(last) == ["report number 0"] and not last["has_more"]


def test_each_hit_has_its_conversation_and_a_highlighted_snippet(alice, bob, carol):
    group = services.conversation_create_group(creator=alice, others=[bob, carol], title="team")
    services.message_send(
        sender=alice,
        body="x " * 200 + "the deploy is done",
        client_id="g",
        conversation_id=group.pk,
    )
    hit = search(carol, "deploy")["messages"][0]
    assert hit["conversation"] == group.pk and hit["conversation_title"] == "team"
    assert hit["snippet"].startswith("…")
    ((start, end),) = hit["highlights"]
    assert hit["snippet"][start:end] == "deploy"


def test_someone_removed_from_a_group_no_longer_finds_its_messages(alice, bob, carol):
    group = services.conversation_create_group(creator=alice, others=[bob, carol])
    services.message_send(
        sender=alice, body="group only words", client_id="g", conversation_id=group.pk
    )
    groups.group_remove(actor=alice, conversation_id=group.pk, username="carol")
    assert search(carol, "group")["messages"] == []


@pytest.mark.parametrize("query", ["", "   ", "!!!", '"'])
def test_a_query_without_words_is_400(alice, query):
    response = api(alice).get("/api/search/", {"q": query})
    assert response.status_code == 400 and "q" in response.json()["errors"]


def test_query_syntax_is_never_interpreted(alice, bob):
    send(alice, "plain words here", "bob")
    for query in ("words OR nothing", 'words" NEAR(', "words*", "words -plain", "NOT words"):
        response = api(bob).get("/api/search/", {"q": query})
        assert response.status_code == 200, query


def test_staff_search_in_the_admin_uses_the_same_index(alice, bob, make_user):
    send(alice, "needle in a haystack", "bob")
    send(alice, "just hay", "bob")
    staff = make_user(username="mod", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    html = client.get("/admin/messaging/message/", {"q": "needle"}).content.decode()
    assert "needle in a haystack" in html and "just hay" not in html
    by_sender = client.get("/admin/messaging/message/", {"q": "alice"}).content.decode()
    assert "needle in a haystack" in by_sender and "just hay" in by_sender


def test_snippets_cut_long_bodies_around_the_first_hit():
    snippet, highlights = make_snippet("a " * 300 + "target word" + " b" * 300, ["target"])
    assert len(snippet) <= 142 and snippet.startswith("…") and snippet.endswith("…")
    assert [snippet[s:e] for s, e in highlights] == ["target"]


def test_the_start_of_a_word_finds_it_as_the_search_box_is_typed(alice, bob):
    send(alice, "Hello group!", "bob")
    send(alice, "the meeting moved to Thursday", "bob")
    send(alice, "hell of a day", "bob")
    assert bodies(search(bob, "hell")) == ["hell of a day", "Hello group!"]
    assert bodies(search(bob, "hello")) == ["Hello group!"]
    for typed in ("mee", "meeti", "meetin", "meeting", "meetings", "the meet", "thurs"):
        assert bodies(search(bob, typed)) == ["the meeting moved to Thursday"], typed
    # A prefix of one word never stands for a word in the middle of another.
    assert search(bob, "ello")["messages"] == []
    hit = search(bob, "gro hel")["messages"][0]
    assert [hit["snippet"][s:e] for s, e in hit["highlights"]] == ["Hello", "group"]
