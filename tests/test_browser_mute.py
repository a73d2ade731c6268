"""A muted conversation stays quiet in the browser, except when someone mentions the person."""

from __future__ import annotations

from messaging.domain import services
from messaging.models import Membership
from tests import browser as shared
from tests.browser import hook
from tests.factories import UserFactory
from tests.test_browser import FAKE_NOTIFICATIONS

pytestmark = shared.BROWSER_MARKS

live = shared.live
browsers = shared.browsers


def test_a_muted_group_notifies_only_a_mention(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    group = services.conversation_create_group(
        creator=bob_user, others=[alice_user, carol_user], title="noisy"
    )
    Membership.objects.filter(conversation=group, user=alice_user).update(muted=True)
    alice = browsers("alice")
    alice.add_script("notifications", FAKE_NOTIFICATIONS)
    bob = browsers("bob")
    alice.log_in("alice", "/")
    bob.log_in("bob", f"/c/{group.pk}/")
    alice.by_testid("settings-button").click()
    toggle = alice.visible(hook("notify-toggle"))
    toggle.click()
    alice.until(toggle.is_selected, "alice: notifications did not turn on")
    alice.js("window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'));")

    def notes() -> list[dict]:
        return alice.js('return JSON.parse(sessionStorage.getItem("notes") || "[]");')

    bob.send("lunch anyone?")
    alice.until(lambda: alice.badge(group.pk) == "1", "alice: the message did not arrive")
    assert notes() == []  # muted: unread still counts, no notification
    bob.send("@alice you said noon?")
    alice.until(lambda: alice.badge(group.pk) == "2", "alice: the mention did not arrive")
    alice.until(lambda: len(notes()) == 1, "alice: a mention should notify even when muted")
    assert notes()[0]["body"] == "@alice you said noon?"


def muted_row(person, conversation_id: int) -> bool:
    """Whether the inbox row shows the conversation muted (its bell named "Muted")."""
    item = person.inbox_item(conversation_id)
    icon = person.find(hook("inbox-muted"), item)
    shown = item.get_attribute("data-muted") == "true" and icon.is_displayed()
    return shown and icon.get_attribute("aria-label") == "Muted"


def test_muting_from_the_header_shows_in_the_inbox_here_and_on_other_devices(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = shared.direct(alice_user, bob_user)
    shared.say(bob_user, conversation, "are you there?")
    alice = browsers("alice")
    phone = browsers("alice-phone")
    alice.log_in("alice", f"/c/{conversation.pk}/")
    phone.log_in("alice", "/")
    alice.wait_message("are you there?")
    assert not muted_row(alice, conversation.pk)
    assert not alice.by_testid("conversation-muted").is_displayed()

    # Mute from the conversation's menu: the row and the header say so at once.
    alice.open_menu_item("mute-toggle")
    alice.until(lambda: muted_row(alice, conversation.pk), "alice: the row does not show muted")
    assert alice.by_testid("conversation-muted").is_displayed()
    assert alice.focused_testid() == "conversation-menu-button"
    alice.until(
        lambda: Membership.objects.get(conversation=conversation, user=alice_user).muted,
        "the server did not store the mute",
    )
    alice.by_testid("conversation-menu-button").click()
    assert alice.visible(hook("mute-toggle")).text == "Unmute conversation"
    alice.by_testid("conversation-menu-button").click()
    # Her other device learns it without a reload.
    phone.until(lambda: muted_row(phone, conversation.pk), "phone: the row did not turn muted")

    # A reload keeps it, and unread messages still count, in a quieter badge.
    alice.open("/")
    alice.visible(hook("empty-state"))
    shared.say(bob_user, conversation, "still counts")
    alice.reload()
    assert muted_row(alice, conversation.pk)
    alice.until(lambda: alice.badge(conversation.pk) == "1", "alice: unread not counted")
    item = alice.inbox_item(conversation.pk)
    assert "is-muted" in item.get_attribute("class")
    assert "Muted" in item.accessible_name

    # Unmute: here and on the phone.
    item.click()
    alice.wait_message("still counts")
    alice.open_menu_item("mute-toggle")
    alice.until(lambda: not muted_row(alice, conversation.pk), "alice: still shown muted")
    assert not alice.by_testid("conversation-muted").is_displayed()
    phone.until(lambda: not muted_row(phone, conversation.pk), "phone: still shown muted")
    assert not Membership.objects.get(conversation=conversation, user=alice_user).muted


def test_a_mute_the_server_never_gets_is_undone_and_explained(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = shared.direct(alice_user, bob_user)
    alice = browsers("alice")
    alice.log_in("alice", f"/c/{conversation.pk}/")
    alice.cdp("Network.enable")
    alice.cdp("Network.setBlockedURLs", {"urls": [f"*/api/conversations/{conversation.pk}/"]})
    alice.open_menu_item("mute-toggle")
    notice = alice.visible(hook("notice"))
    assert "reach the server" in notice.text
    alice.until(lambda: not muted_row(alice, conversation.pk), "alice: the mute was not undone")
    assert not alice.by_testid("conversation-muted").is_displayed()
    alice.cdp("Network.setBlockedURLs", {"urls": []})
    assert not Membership.objects.get(conversation=conversation, user=alice_user).muted
