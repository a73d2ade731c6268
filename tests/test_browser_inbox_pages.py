"""The inbox in pages in the browser: scrolled to its end it shows the next page."""

from __future__ import annotations

import pytest

from tests import browser as shared
from tests.factories import UserFactory

pytestmark = shared.BROWSER_MARKS

browsers = shared.browsers


@pytest.fixture
def live(transactional_db, tmp_path, monkeypatch):
    """The chat with inbox pages of five conversations."""
    monkeypatch.setenv("CHAT_INBOX_PAGE", "5")
    server = shared.LiveServer(tmp_path).start()
    yield server
    server.stop()
    assert "Traceback" not in server.logs()


def test_the_inbox_pages_in_as_it_is_scrolled_and_a_far_conversation_still_opens(browsers):
    alice_user = UserFactory(username="alice")
    people = [UserFactory(username=f"friend{i:02d}") for i in range(40)]
    conversations = []
    for person in people:
        conversation = shared.direct(alice_user, person)
        shared.say(person, conversation, f"hi from {person.username}")
        conversations.append(conversation)
    oldest, second_oldest = conversations[0], conversations[1]

    alice = browsers("alice")
    alice.log_in("alice", f"/c/{oldest.pk}/")
    alice.wait_online()
    # Opened by its address although it is on the last page: its row is there too.
    assert oldest.pk in alice.inbox_ids()
    assert second_oldest.pk not in alice.inbox_ids()

    # A message in a conversation of no loaded page puts it at the top.
    shared.say(people[1], second_oldest, "remember me?")
    alice.until(
        lambda: alice.inbox_ids()[:1] == [second_oldest.pk],
        "alice: the conversation with news did not come to the top",
    )

    def scrolled_to_the_end() -> int:
        alice.js(
            "const box = document.querySelector('.inbox-wrap');"
            "box.scrollTop = box.scrollHeight;"
            "box.dispatchEvent(new Event('scroll'));"
        )
        return len(alice.inbox_ids())

    alice.until(lambda: scrolled_to_the_end() == 40, "alice: the inbox did not page to its end")
    ids = alice.inbox_ids()
    assert len(set(ids)) == 40
    rest = [c.pk for c in reversed(conversations) if c != second_oldest]
    assert ids == [second_oldest.pk, *rest]
    assert alice.badge(conversations[-1].pk) == "1"
