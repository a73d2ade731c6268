"""The browser client's rough edges, in real Chromium against a live daphne.

What a new user tripped over: a member added back to a group, reconnecting after an outage
and a server that hangs, the time of a message that waited to go out, the keyboard's focus,
controls that cannot work, a moderator's removal, and small things a person notices.
Like every browser test, these need PostgreSQL and Redis (`services`).
"""

from __future__ import annotations

import re
import signal
from contextlib import contextmanager
from datetime import UTC

from django.contrib.auth import get_user_model
from selenium.webdriver.common.keys import Keys

from messaging.domain import groups, message_changes, services
from messaging.models import Conversation, Message
from messaging.protocol import message_data
from tests import browser as shared
from tests.browser import Browser, direct, hook, hover, say
from tests.factories import UserFactory

pytestmark = shared.BROWSER_MARKS

User = get_user_model()

# One daphne per test and one browser per person (tests/browser.py), as this module's fixtures.
live = shared.live
browsers = shared.browsers

# Counts the page's WebSocket handshakes, before any of the page's own scripts run.
COUNT_SOCKETS = """
(() => {
  const Real = window.WebSocket;
  window.socketsOpened = 0;
  window.WebSocket = class extends Real {
    constructor(...args) {
      super(...args);
      window.socketsOpened += 1;
    }
  };
})();
"""

# The page's clock, moved by `window.clockShift` milliseconds: how a test makes a message
# wait minutes in the outbox without waiting minutes itself.
SHIFT_CLOCK = """
(() => {
  const Real = Date;
  window.clockShift = 0;
  window.Date = class extends Real {
    constructor(...args) {
      if (args.length) super(...args);
      else super(Real.now() + window.clockShift);
    }
    static now() {
      return Real.now() + window.clockShift;
    }
  };
})();
"""


@contextmanager
def hung(server):
    """Freeze the server process (it keeps its sockets but answers nothing), then thaw it."""
    process = server.processes[-1].process
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


def in_view(browser: Browser, element) -> bool:
    """Whether an element is wholly inside the message scroller's visible part."""
    return browser.js(
        """const box = arguments[0].getBoundingClientRect();
           const view = document.getElementById("scroller").getBoundingClientRect();
           return box.top >= view.top - 1 && box.bottom <= view.bottom + 1;""",
        element,
    )


def clock(moment) -> str:
    """A time as the page shows it in UTC, "10:12 AM"."""
    local = moment.astimezone(UTC)
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


# -----------------------------------------------------------------------------------------


def test_a_member_removed_keeps_what_she_saw_and_added_back_writes_again(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    group = services.conversation_create_group(
        creator=alice_user, others=[bob_user, carol_user], title="Lake trip"
    )
    say(alice_user, group, "Bring the tent")
    say(carol_user, group, "I have one")
    carol = browsers("carol")
    bob = browsers("bob")
    carol.log_in("carol", f"/c/{group.pk}/")
    bob.log_in("bob", f"/c/{group.pk}/")
    carol.wait_message("I have one")

    # Only the creator may remove people: nobody else is offered a Remove that fails.
    bob.open_menu_item("group-details-button")
    members = bob.visible(hook("group-members"))
    assert len(bob.find_all(hook("group-member"), members)) == 3
    assert bob.find_all(hook("group-member-remove"), members) == []
    assert bob.find_all(hook("member-block-toggle"), members), "blocking is still offered"

    # Alice removes Carol: Carol is told, and keeps what she saw, read-only.
    groups.group_remove(actor=alice_user, conversation_id=group.pk, username="carol")
    gone = carol.visible(hook("conversation-gone"))
    assert gone.text.startswith("alice removed you from “Lake trip”"), gone.text
    assert carol.bodies() == ["Bring the tent", "I have one"]
    assert carol.find_all(f"#messages {hook('message-edit')}") == []
    assert carol.find_all(f"#messages {hook('message-report')}") == []
    assert not carol.by_testid("composer").is_displayed()
    carol.until(lambda: group.pk not in carol.inbox_ids(), "carol: the group stayed listed")

    # Alice adds her back while the group is still open in Carol's tab: it opens afresh.
    say(alice_user, group, "Said while carol was out")
    groups.group_add(actor=alice_user, conversation_id=group.pk, usernames=["carol"])
    carol.gone(hook("conversation-gone"))
    carol.visible(hook("composer"))
    carol.until(
        lambda: "alice added carol" in carol.system_lines(), "carol: no line for her return"
    )
    carol.wait_message("Said while carol was out")
    carol.until(
        lambda: carol.by_testid("conversation-status").text.startswith("3 members"),
        "carol: the header does not list her",
    )
    carol.until(lambda: group.pk in carol.inbox_ids(), "carol: the group is not listed again")
    carol.send("Back again")
    carol.wait_message("Back again")
    bob.wait_message("Back again")
    assert Message.objects.filter(body="Back again", conversation=group).count() == 1


def test_a_hung_server_is_told_within_seconds_and_a_waiting_message_keeps_its_time(browsers, live):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = direct(alice_user, bob_user)
    say(bob_user, conversation, "Are you coming?")
    alice = browsers("alice", timezone="UTC")
    alice.add_script("clock", SHIFT_CLOCK)
    alice.log_in("alice", f"/c/{conversation.pk}/")
    alice.wait_message("Are you coming?")

    # Alice writes while the server hangs; her clock says it is two minutes earlier, as if
    # the message then waited two minutes for the server.
    alice.js("window.clockShift = -120000;")
    with hung(live):
        alice.send("On my way")
        pending = alice.wait_message("On my way", state="pending")
        assert pending
        written = alice.find(hook("message-time"), alice.message_element("On my way")).text
        # No pong within a few seconds: the page says the server is not answering.
        banner = alice.visible(hook("connection-banner"), timeout=8)
        assert "isn\N{RIGHT SINGLE QUOTATION MARK}t answering" in banner.text, banner.text
        assert alice.wait_message("On my way", state="pending")
        alice.js("window.clockShift = 0;")

    alice.wait_message("On my way", timeout=20)
    alice.gone(hook("connection-banner"))
    stored = Message.objects.get(body="On my way")
    assert Message.objects.filter(body="On my way").count() == 1

    def times() -> tuple[str, str | None]:
        line = alice.message_element("On my way")
        sent = alice.find_all(hook("message-sent-time"), line)
        return alice.find(hook("message-time"), line).text, (sent[0].text if sent else None)

    # The time it was written stays; when it went out is added beside it.
    assert times() == (written, f"sent {clock(stored.created_at)}"), times()
    assert written != clock(stored.created_at)
    alice.reload()
    alice.wait_message("On my way")
    assert times() == (written, f"sent {clock(stored.created_at)}"), "the same after a reload"
    # A message that went out at once shows one time.
    alice.send("See you")
    alice.wait_message("See you")
    assert alice.find_all(hook("message-sent-time"), alice.message_element("See you")) == []


def test_after_an_outage_the_page_is_back_within_seconds_of_the_server(browsers, live):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = direct(alice_user, bob_user)
    alice = browsers("alice")
    alice.add_script("count", COUNT_SOCKETS)
    alice.log_in("alice", f"/c/{conversation.pk}/")
    opened = alice.js("return window.socketsOpened;")

    live.kill()
    # Four tries fail while the server is down (a long outage, for the waits between tries).
    alice.until(
        lambda: alice.js("return window.socketsOpened;") >= opened + 4,
        "alice: the page stopped trying",
        timeout=9,
    )
    # Screen readers are told what the banner shows, and that the connection is back.
    said = "return document.querySelector('[data-testid=\"status-region\"]').textContent"
    alice.until(
        lambda: alice.js(said)
        and alice.js(said) == alice.find(hook("connection-banner") + " .banner-text").text,
        "alice: the lost connection was not said",
    )
    live.start()
    alice.wait_online(timeout=7)
    alice.gone(hook("connection-banner"))
    alice.until(lambda: alice.js(said) == "Connected again.", "alice: not told it is back")
    alice.send("Back so soon")
    alice.wait_message("Back so soon")


def test_focus_stays_put_after_edit_and_delete_and_the_skip_link_leads_somewhere(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    staff = UserFactory(username="moderator", is_staff=True)
    conversation = direct(alice_user, bob_user)
    say(alice_user, conversation, "Typo herr")
    say(alice_user, conversation, "Delete me")
    spam = say(bob_user, conversation, "Cheap watches")
    alice = browsers("alice")
    alice.log_in("alice", "/")

    # On the inbox there is no message box: the skip link leads to the conversations.
    skip = alice.find(".skip-link")
    alice.driver.find_element("css selector", "body").send_keys(Keys.TAB)
    alice.until(lambda: alice.driver.switch_to.active_element == skip, "no skip link first")
    skip.send_keys(Keys.ENTER)
    assert alice.focused_testid() == "inbox-item"
    assert "#" not in alice.driver.current_url, alice.driver.current_url

    alice.inbox_item(conversation.pk).click()
    alice.wait_message("Delete me")

    # Saving an edit with Enter keeps the keyboard on that message.
    line = alice.message_element("Typo herr")
    hover(alice, line)
    alice.find(hook("message-edit"), line).click()
    box = alice.visible(hook("edit-input"))
    box.send_keys(Keys.BACK_SPACE * 4, "here", Keys.ENTER)
    alice.until(lambda: (alice.message("Typo here") or {}).get("edited"), "alice: not saved")
    assert alice.focused_testid() == "message-edit"
    assert alice.js(
        "return document.activeElement.closest('[data-testid=\"message\"]')"
        ".querySelector('[data-testid=\"message-body\"]').textContent;"
    ) == ("Typo here")

    # Escape takes back "Delete for everyone?"; confirming keeps the focus on the message.
    line = alice.message_element("Delete me")
    hover(alice, line)
    alice.find(hook("message-delete"), line).click()
    alice.visible(hook("message-delete-confirm"))
    alice.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    alice.gone(hook("message-delete-confirm"))
    assert alice.find_all(hook("message-delete"), alice.message_element("Delete me"))
    assert alice.focused_testid() in ("message-edit", "message-delete")
    line = alice.message_element("Delete me")
    hover(alice, line)
    alice.find(hook("message-delete"), line).click()
    alice.visible(hook("message-delete-confirm")).send_keys(Keys.ENTER)
    alice.until(lambda: any(m["deleted"] for m in alice.messages()), "alice: the message stayed")
    assert alice.focused_testid() == "message"
    assert alice.js("return document.activeElement.dataset.deleted;") == "true"

    # In a conversation, the skip link leads to the message box.
    alice.by_testid("conversation-title").click()
    alice.js("document.querySelector('.skip-link').focus();")
    alice.driver.switch_to.active_element.send_keys(Keys.ENTER)
    assert alice.focused_testid() == "composer-input"

    # A moderator hides Bob's message: everyone, Bob too, is told who removed it.
    bob = browsers("bob")
    bob.log_in("bob", f"/c/{conversation.pk}/")
    bob.wait_message("Cheap watches")
    message_changes.message_hide(moderator=staff, message_id=spam.pk)
    removed = "This message was removed by a moderator"
    for person in (alice, bob):
        person.until(lambda p=person: removed in p.bodies(), f"{person.name}: not told")
    assert "This message was deleted" in alice.bodies(), "her own delete reads as before"
    hidden = message_data(Message.objects.get(pk=spam.pk))
    assert (hidden["deleted"], hidden["body"], hidden["removed_by"]) == (True, "", "moderator")
    assert (
        message_data(Message.objects.get(body="", deleted_at__isnull=False, hidden_by=None))[
            "removed_by"
        ]
        is None
    )


TALL = "\n".join(f"Point {n} of the plan" for n in range(1, 12))


def test_small_things_drafts_long_messages_search_highlight_and_report(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    with_bob = direct(alice_user, bob_user)
    with_carol = direct(alice_user, carol_user)
    say(carol_user, with_carol, "Hello from carol")
    for n in range(1, 31):
        say(bob_user, with_bob, f"Line {n} about the lighthouse" if n == 12 else f"Line {n}")
        if n == 20:
            say(bob_user, with_bob, TALL)
    say(bob_user, with_bob, "word " * 800)
    alice = browsers("alice", size=(1000, 600))
    alice.log_in("alice", f"/c/{with_bob.pk}/")
    alice.wait_message("Line 30")

    # Alice reports a tall message seen at the bottom of the view: it stays in view above
    # its form, rather than the form's box being scrolled to the middle.
    target = alice.message_element(TALL)
    alice.js("arguments[0].scrollIntoView({block: 'end'});", target)
    hover(alice, target)
    alice.find(hook("message-report"), target).click()
    alice.visible(hook("report-reason"))
    assert alice.focused_testid() == "report-reason"
    bubble = alice.find(".bubble", alice.message_element(TALL))
    assert in_view(alice, bubble), "the reported message went out of view"
    alice.by_testid("report-cancel").click()

    # A 4,000-character message shows folded; "Show more" shows it all.
    long_line = alice.find('#messages [data-testid="message"]:last-of-type')
    body = alice.find(hook("message-body"), long_line)
    folded = body.size["height"]
    assert folded < 300, folded
    more = alice.find(hook("message-more"), long_line)
    assert more.text == "Show more" and more.get_attribute("aria-expanded") == "false"
    more.click()
    alice.until(lambda: body.size["height"] > 2 * folded, "alice: it did not unfold")
    assert more.text == "Show less" and more.get_attribute("aria-expanded") == "true"

    # A draft left behind shows in the inbox.
    alice.type("half a thought")
    alice.inbox_item(with_carol.pk).click()
    alice.wait_message("Hello from carol")
    preview = alice.find(hook("inbox-preview"), alice.inbox_item(with_bob.pk))
    alice.until(lambda: preview.text == "Draft: half a thought", f"no draft: {preview.text!r}")

    # A search hit's highlight goes with the search.
    search = alice.by_testid("message-search")
    search.send_keys("lighthouse", Keys.ENTER)
    alice.visible(hook("search-hit")).click()
    alice.until(lambda: alice.conversation_id() == with_bob.pk, "alice: the hit did not open")
    alice.visible('[data-found="true"]')
    alice.by_testid("message-search-close").click()
    alice.until(lambda: alice.find_all('[data-found="true"]') == [], "the highlight stayed")
    assert alice.find_all("#messages .is-found") == []
    assert re.search(r"/c/\d+/", alice.driver.current_url)
    assert Conversation.objects.count() == 2


def find_person(browser: Browser, name: str) -> None:
    """Type a name in the people finder and press Enter on the first one found."""
    search = browser.by_testid("user-search")
    search.send_keys(name)
    browser.until(
        lambda: name
        in [
            r.get_attribute("data-username") for r in browser.find_all(hook("user-search-result"))
        ],
        f"{browser.name}: {name} was not found",
    )
    search.send_keys(Keys.ENTER)
    browser.until(
        lambda: browser.by_testid("conversation-title").text == name,
        f"{browser.name}: no pane for {name}",
    )


def test_a_person_found_opens_empty_and_the_first_message_makes_the_conversation(browsers, live):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    bob = browsers("bob")
    bob.log_in("bob", "/")
    alice = browsers("alice")
    alice.log_in("alice", "/")

    # Enter on Bob in the people finder: an empty pane for him, ready to write in, and
    # nothing made or shown anywhere yet.
    find_person(alice, "bob")
    start = alice.visible(hook("history-start"))
    assert start.text == "No messages yet. Say hello to bob!"
    assert alice.focused_testid() == "composer-input"
    assert alice.conversation_id() is None
    assert alice.driver.current_url.endswith("/?to=bob"), alice.driver.current_url
    assert alice.inbox_ids() == []
    assert not Conversation.objects.exists()
    assert bob.inbox_ids() == []

    # The first message makes the conversation: Alice's pane is that conversation now.
    alice.send("Hi Bob, it is Alice")
    alice.wait_message("Hi Bob, it is Alice")
    alice.until(lambda: alice.conversation_id() is not None, "alice: the pane kept no address")
    conversation = Conversation.objects.get()
    assert alice.conversation_id() == conversation.pk
    assert {m.user_id for m in conversation.memberships.all()} == {alice_user.pk, bob_user.pk}
    alice.until(lambda: alice.inbox_ids() == [conversation.pk], "alice: not in her inbox")
    preview = alice.find(hook("inbox-preview"), alice.inbox_item(conversation.pk))
    assert preview.text == "You: Hi Bob, it is Alice"
    bob.until(lambda: bob.inbox_ids() == [conversation.pk], "bob: nothing arrived")
    alice.send("Are you free later?")
    bob.inbox_item(conversation.pk).click()
    bob.wait_message("Are you free later?")
    assert bob.bodies() == ["Hi Bob, it is Alice", "Are you free later?"]
    assert Message.objects.filter(conversation=conversation).count() == 2
    alice.reload()
    alice.wait_message("Are you free later?")
    assert alice.bodies() == ["Hi Bob, it is Alice", "Are you free later?"]

    # Someone already written to opens as before, on the conversation.
    find_person(alice, "bob")
    assert alice.conversation_id() == conversation.pk
    assert alice.bodies() == ["Hi Bob, it is Alice", "Are you free later?"]

    # Written to while the server is down: the first message waits, and goes once when
    # the server is back, opening the conversation then.
    find_person(alice, "carol")
    live.kill()
    alice.visible(hook("connection-banner"))
    alice.send("Carol, are you there?")
    alice.wait_message("Carol, are you there?", state="pending")
    assert Conversation.objects.count() == 1
    live.start()
    alice.wait_online(timeout=30)
    alice.wait_message("Carol, are you there?")
    alice.until(lambda: alice.conversation_id() is not None, "alice: the pane kept no address")
    with_carol = Conversation.objects.exclude(pk=conversation.pk).get()
    assert alice.conversation_id() == with_carol.pk
    assert {m.user_id for m in with_carol.memberships.all()} == {alice_user.pk, carol_user.pk}
    assert Message.objects.filter(body="Carol, are you there?").count() == 1
    alice.until(
        lambda: alice.inbox_ids() == [with_carol.pk, conversation.pk], "alice: the inbox is off"
    )


def online_dot(browser: Browser, conversation_id: int) -> str | None:
    """Whether the inbox row shows its person online ("true"), as its green dot says."""
    row = browser.inbox_item(conversation_id)
    return browser.find(hook("online-dot"), row).get_attribute("data-online")


def test_a_new_contact_shows_online_at_once_on_every_tab_once_she_writes(browsers):
    UserFactory(username="alice")
    UserFactory(username="bob")
    bob = browsers("bob")
    bob.log_in("bob", "/")
    tabs = [bob.driver.current_window_handle]
    bob.driver.switch_to.new_window("tab")
    bob.open("/")
    bob.visible(hook("app"))
    bob.wait_online()
    tabs.append(bob.driver.current_window_handle)
    alice = browsers("alice")
    alice.log_in("alice", "/")

    # Alice is about to write to Bob, a stranger: he sees nothing of her yet.
    find_person(alice, "bob")
    for tab in tabs:
        bob.driver.switch_to.window(tab)
        bob.by_testid("user-search").send_keys("alice")
        found = bob.visible(f'{hook("user-search-result")}[data-username="alice"]')
        assert bob.find_all(".search-online", found) == [], "her presence showed before she wrote"
        bob.by_testid("user-search").send_keys(Keys.ESCAPE)
        assert bob.inbox_ids() == []

    # She writes: on every tab of Bob's, her conversation arrives with her online, no reload.
    alice.send("Hi Bob, new here")
    alice.wait_message("Hi Bob, new here")
    conversation = Conversation.objects.get().pk
    for tab in tabs:
        bob.driver.switch_to.window(tab)
        bob.until(lambda: conversation in bob.inbox_ids(), "bob: her conversation did not arrive")
        bob.until(lambda: online_dot(bob, conversation) == "true", "bob: she is not shown online")
        bob.inbox_item(conversation).click()
        bob.wait_message("Hi Bob, new here")
        status = bob.by_testid("conversation-status")
        assert status.text == "Online" and status.get_attribute("data-online") == "true"
        head = bob.find(hook("online-dot"), bob.by_testid("conversation"))
        assert head.get_attribute("data-online") == "true"

    # Bob has not written there: Alice sees nothing of him until he answers, then at once.
    assert alice.by_testid("conversation-status").text == "Offline"
    bob.send("Welcome!")
    alice.wait_message("Welcome!")
    alice.until(
        lambda: alice.by_testid("conversation-status").text == "Online",
        "alice: he is not shown online after answering",
    )
