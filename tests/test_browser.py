"""The chat in real Chromium against a live daphne, driven the way a person drives it.

Each test opens one browser per person (a profile of their own), signs in through the login
form and asserts what the person sees; where it matters, the database is checked too. Each
browser leaves a screenshot of its final state in `tests.browser.ARTIFACTS`.

These tests need PostgreSQL and Redis (`services`): see `tests.browser.BROWSER_MARKS`.
"""

from __future__ import annotations

import time
from urllib.parse import quote
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from selenium.webdriver.common.keys import Keys

from messaging.domain import reading, services
from messaging.models import Block, Conversation, Membership, Message, Report
from tests import browser as shared
from tests.browser import Browser, direct, hook, hover, say, stored
from tests.factories import UserFactory

pytestmark = shared.BROWSER_MARKS

# One daphne per test and one browser per person (tests/browser.py), as this module's fixtures.
live = shared.live
browsers = shared.browsers

User = get_user_model()


# -----------------------------------------------------------------------------------------


def test_two_people_chat_live_with_unread_badge_title_and_seen(browsers):
    UserFactory(username="alice")
    UserFactory(username="bob")
    alice = browsers("alice")
    bob = browsers("bob", timezone="Asia/Kolkata")  # half an hour off UTC: no accident
    alice.log_in("alice", "/dm/bob/")
    conversation = alice.conversation_id()
    assert conversation, alice.driver.current_url
    bob.log_in("bob", "/")
    assert bob.title() == "Chat"

    alice.send("Hi Bob!")
    alice.wait_message("Hi Bob!")
    assert alice.composer() == "" and alice.focused_testid() == "composer-input"

    # Bob is on his inbox: the new conversation arrives with its badge, no reload.
    bob.until(lambda: bob.badge(conversation) == "1", "bob: no unread badge")
    assert bob.title() == "(1) Chat"
    item = bob.inbox_item(conversation)
    assert bob.find(hook("inbox-name"), item).text == "alice"
    assert bob.find(hook("inbox-preview"), item).text == "Hi Bob!"
    spoken = bob.by_testid("live-region").get_attribute("textContent")
    assert "New message from alice: Hi Bob!" in spoken, "screen readers are told"
    alice.send("Are you there?")
    bob.until(lambda: bob.badge(conversation) == "2", "bob: the badge did not count up")
    bob.until(lambda: bob.title() == "(2) Chat", "bob: the title did not count up")
    assert bob.find(hook("inbox-preview"), item).text == "Are you there?"
    assert alice.message("Are you there?")["seen"] is None

    # Bob opens the conversation: both messages, a divider at the first unread, and the
    # badge, the title's count and the unread state clear; Alice sees "Seen".
    item.click()
    bob.wait_message("Are you there?")
    assert bob.bodies() == ["Hi Bob!", "Are you there?"]
    assert bob.first_unread() == "New messages | Hi Bob!"
    assert bob.messages()[1]["grouped"], "one sender's run is grouped"
    assert bob.visible(hook("day-separator")).text == "Today"
    bob.until(lambda: bob.badge(conversation) is None, "bob: the badge stayed")
    bob.until(lambda: bob.title() == "Chat", "bob: the title kept a count")
    assert bob.focused_testid() == "composer-input"
    assert alice.message("Are you there?")["seen"] is None, "Bob's reading is his until he answers"
    assert Membership.objects.get(
        user__username="bob", conversation_id=conversation
    ).last_read_message_id == (Message.objects.get(body="Are you there?").pk)

    # Times are in the reader's zone.
    sent = Message.objects.get(body="Hi Bob!").created_at.astimezone(ZoneInfo("Asia/Kolkata"))
    shown = bob.find(hook("message-time"), bob.message_element("Hi Bob!")).text
    assert f"{sent.hour % 12 or 12}:{sent.minute:02d}" in shown, shown

    # And back the other way.
    bob.send("Yes, here!")
    bob.wait_message("Yes, here!")
    assert bob.first_unread() is None, "answering clears the divider"
    alice.wait_message("Yes, here!")
    assert alice.bodies() == ["Hi Bob!", "Are you there?", "Yes, here!"]
    alice_item = alice.inbox_item(conversation)
    alice.until(
        lambda: alice.find(hook("inbox-preview"), alice_item).text == "Yes, here!",
        "alice: the inbox preview did not follow",
    )
    assert alice.badge(conversation) is None and alice.title() == "Chat"
    bob.until(
        lambda: (bob.message("Yes, here!") or {}).get("seen") == "Seen", "bob: no Seen marker"
    )
    # Bob has answered: now Alice sees him read, live.
    alice.send("Great!")
    bob.wait_message("Great!")
    alice.until(
        lambda: (alice.message("Great!") or {}).get("seen") == "Seen", "alice: no Seen marker"
    )
    assert alice.message("Hi Bob!")["seen"] is None, "Seen is shown once, under the last one"
    assert Message.objects.count() == 4
    alice.no_dialog_opened()
    bob.no_dialog_opened()


def test_typing_shows_and_clears_and_edits_and_deletes_appear_live(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = direct(alice_user, bob_user)
    # Bob has written here before: Alice may see him typing.
    hello = say(bob_user, conversation, "Hello")
    lunch = say(alice_user, conversation, "Lunch at noon?")
    slides = say(alice_user, conversation, "Bring the slides")
    alice = browsers("alice")
    bob = browsers("bob")
    alice.log_in("alice", f"/c/{conversation.pk}/")
    bob.log_in("bob", f"/c/{conversation.pk}/")
    typing = hook("typing-indicator")

    # Bob types without sending: Alice sees it in the conversation and in her inbox.
    bob.type("Let me check")
    alice.until(lambda: alice.find(typing).text == "bob is typing…", "alice: no typing")
    item = alice.inbox_item(conversation.pk)
    assert alice.find(hook("inbox-preview"), item).text == "bob is typing…"
    shown_at = time.monotonic()

    # Alice edits a message: Bob sees the new text, marked edited, in the same place.
    hover(alice, alice.message_element("Lunch at noon?"))
    alice.find(hook("message-edit"), alice.message_element("Lunch at noon?")).click()
    box = alice.visible(hook("edit-input"))
    assert alice.focused_testid() == "edit-input"
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("Lunch at one?")
    alice.by_testid("edit-save").click()
    alice.until(lambda: (alice.message("Lunch at one?") or {}).get("edited"), "alice: no edit")
    bob.until(lambda: (bob.message("Lunch at one?") or {}).get("edited"), "bob: no edit")
    assert bob.message("Lunch at one?")["id"] == lunch.pk
    assert bob.bodies() == ["Hello", "Lunch at one?", "Bring the slides"]

    # Alice deletes one: Bob sees it go, where it was.
    target = alice.message_element("Bring the slides")
    hover(alice, target)
    alice.find(hook("message-delete"), target).click()
    alice.find(hook("message-delete-confirm"), target).click()
    gone = "This message was deleted"
    bob.until(lambda: (bob.message(gone) or {}).get("deleted"), "bob: the delete did not show")
    assert [m["id"] for m in bob.messages()] == [hello.pk, lunch.pk, slides.pk]
    assert bob.message(gone)["id"] == slides.pk
    assert alice.message(gone)["deleted"]
    bob_item = bob.inbox_item(conversation.pk)
    assert bob.find(hook("inbox-preview"), bob_item).text == "Message deleted"
    Message.objects.get(pk=slides.pk, deleted_at__isnull=False)
    Message.objects.get(pk=lunch.pk, body="Lunch at one?", edited_at__isnull=False)

    # Bob stopped typing: after a few seconds the indicator goes by itself.
    alice.until(lambda: alice.find(typing).text == "", "alice: typing never cleared", timeout=9)
    assert time.monotonic() - shown_at > 3, "typing cleared too early"
    assert alice.find(hook("inbox-preview"), item).text != "bob is typing…"

    # He types again and sends: the message itself clears it at once.
    bob.type(" — one works")
    alice.until(lambda: alice.find(typing).text == "bob is typing…", "alice: no typing again")
    bob.by_testid("composer-input").send_keys(Keys.ENTER)
    alice.wait_message("Let me check — one works")
    assert alice.find(typing).text == ""


def test_messages_written_while_the_server_is_down_go_out_once_when_it_is_back(browsers, live):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = direct(alice_user, bob_user)
    say(bob_user, conversation, "Before the outage")
    alice = browsers("alice")
    bob = browsers("bob")
    alice.log_in("alice", f"/c/{conversation.pk}/")
    bob.log_in("bob", f"/c/{conversation.pk}/")
    assert not alice.by_testid("connection-banner").is_displayed()

    live.kill()
    for person in (alice, bob):
        banner = person.visible(hook("connection-banner"))
        assert "Reconnecting" in banner.text or "offline" in banner.text, banner.text
        assert person.connection() in ("offline", "connecting")

    during = {alice: ["Down 1 from alice", "Down 2 from alice"], bob: ["Down from bob"]}
    for person, bodies in during.items():
        for body in bodies:
            person.send(body)
            assert person.wait_message(body, state="pending")
        assert person.focused_testid() == "composer-input"
    assert Message.objects.count() == 1

    live.start()  # on the same port, while both pages stay open
    everything = ["Before the outage", *during[alice], *during[bob]]
    for person in (alice, bob):
        person.wait_online(timeout=30)
        person.gone(hook("connection-banner"))
        for body in everything:
            person.wait_message(body, state="sent")
        bodies = person.bodies()
        assert sorted(bodies) == sorted(everything), bodies
        assert bodies[0] == "Before the outage"
        assert bodies.index("Down 1 from alice") < bodies.index("Down 2 from alice")
    for body in everything:
        assert stored(body) == 1, body
    assert Message.objects.count() == len(everything)
    # A message sent now goes straight out.
    alice.send("All good again")
    bob.wait_message("All good again")
    assert stored("All good again") == 1


# The page's socket never gets through, as when the server cannot be reached: every
# connection attempt fails the way a refused one does.
NO_SOCKET = """
(() => {
  class Unreachable extends EventTarget {
    constructor(url) {
      super();
      this.url = String(url);
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        const event = new CloseEvent("close", { code: 1006 });
        if (this.onclose) this.onclose(event);
        this.dispatchEvent(event);
      }, 50);
    }
    send() {
      throw new DOMException("The socket is not open", "InvalidStateError");
    }
    close() {
      this.readyState = 3;
    }
  }
  Object.assign(Unreachable, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Unreachable;
})();
"""


def test_a_reload_keeps_unsent_messages_and_drafts(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    with_bob = direct(alice_user, bob_user)
    with_carol = direct(alice_user, carol_user)
    alice = browsers("alice")
    alice.log_in("alice", f"/c/{with_bob.pk}/")

    # Each conversation keeps its own draft when Alice switches away and back.
    alice.type("Draft for Bob")
    alice.inbox_item(with_carol.pk).click()
    alice.until(lambda: alice.conversation_id() == with_carol.pk, "alice: no switch")
    assert alice.composer() == "" and alice.focused_testid() == "composer-input"
    alice.type("Draft for Carol")
    alice.inbox_item(with_bob.pk).click()
    alice.until(lambda: alice.composer() == "Draft for Bob", "alice: Bob's draft was lost")
    assert alice.focused_testid() == "composer-input"

    # The counter shows near the limit, and a message over it cannot be sent.
    counter = alice.by_testid("char-counter")
    assert not counter.is_displayed()
    alice.js(
        """const box = document.querySelector('[data-testid="composer-input"]');
           box.value = "x".repeat(3990); box.dispatchEvent(new Event("input"));"""
    )
    assert alice.visible(hook("char-counter")).text == "10 left"
    alice.type("y" * 11)
    assert counter.text == "1 over the limit"
    assert not alice.by_testid("send-button").is_enabled()
    alice.by_testid("composer-input").send_keys(Keys.ENTER)
    assert alice.messages() == [] and stored("x" * 3990 + "y" * 11) == 0
    alice.by_testid("composer-input").send_keys(Keys.CONTROL, "a", Keys.DELETE)
    alice.type("Draft for Bob")

    # The server cannot be reached: a message waits in the outbox.
    alice.add_script("no-socket", NO_SOCKET)
    alice.reload()
    alice.until(lambda: alice.connection() != "online", "alice: still online")
    assert alice.composer() == "Draft for Bob"
    alice.by_testid("composer-input").send_keys(Keys.CONTROL, "a", Keys.DELETE)
    alice.send("Written offline")
    alice.wait_message("Written offline", state="pending")
    alice.type("Half a thought")

    alice.reload()  # still unreachable
    alice.wait_message("Written offline", state="pending")
    assert alice.composer() == "Half a thought"
    assert stored("Written offline") == 0

    alice.remove_script("no-socket")
    alice.reload()
    alice.wait_online()
    shown = alice.wait_message("Written offline", state="sent")
    assert shown["id"] == Message.objects.get(body="Written offline").pk
    assert alice.composer() == "Half a thought"
    assert [m["body"] for m in alice.messages()] == ["Written offline"]
    alice.reload()
    alice.wait_online()
    assert alice.bodies() == ["Written offline"], "sent once, and the outbox is empty"
    assert alice.messages()[0]["state"] == "sent"
    assert Message.objects.count() == 1
    alice.inbox_item(with_carol.pk).click()
    alice.until(lambda: alice.composer() == "Draft for Carol", "alice: Carol's draft was lost")


XSS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "<svg><svg onload=alert(3)>",
    '"><iframe src="javascript:alert(4)"></iframe>',
    "javascript:alert(5)",
    'https://example.com/"onmouseover="alert(6)',
    "{{ 7*7 }} ${alert(8)} {% if 1 %}9{% endif %}",
    "<b>bold</b>\n<i>second line</i> &amp; &lt;",
]
XSS_TITLE = '<img src=x onerror=alert("title")>'


def test_markup_in_bodies_titles_and_names_is_shown_as_text_and_never_runs(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    odd = UserFactory(username="x.y+z")
    group = services.conversation_create_group(
        creator=alice_user, others=[bob_user, odd], title=XSS_TITLE
    )
    alice = browsers("alice")
    bob = browsers("bob")
    alice.log_in("alice", f"/c/{group.pk}/")
    bob.log_in("bob", f"/c/{group.pk}/")
    for person in (alice, bob):
        assert person.by_testid("conversation-title").text == XSS_TITLE
        assert person.find(hook("inbox-name"), person.inbox_item(group.pk)).text == XSS_TITLE

    for body in XSS:
        alice.send(body)
    alice.wait_message(XSS[-1])
    for body in XSS:
        bob.wait_message(body)  # exactly this text, pushed live

    def inert(person: Browser) -> None:
        assert person.bodies() == XSS
        assert person.find_all("#messages img, #messages script, #messages svg") == []
        assert person.find_all("#messages iframe, #messages b, #messages i") == []
        links = [a.get_attribute("href") for a in person.find_all("#messages a")]
        assert links == ["https://example.com/"], links
        assert person.by_testid("conversation-title").text == XSS_TITLE
        person.no_dialog_opened()

    inert(alice)
    inert(bob)
    bob.reload()  # the server-rendered page, then the script's own rendering
    bob.wait_online()
    bob.wait_message(XSS[-1])
    inert(bob)
    preview = bob.find(hook("inbox-preview"), bob.inbox_item(group.pk)).text
    assert preview == "alice: <b>bold</b> <i>second line</i> &amp; &lt;"
    assert [m.body for m in Message.objects.filter(kind="text").order_by("id")] == XSS

    # A username with punctuation: found by search, opened, shown as it is.
    search = bob.by_testid("user-search")
    search.send_keys("x.y")
    result = bob.visible(hook("user-search-result"))
    assert bob.find(".search-name", result).text == "x.y+z"
    result.click()
    bob.until(lambda: bob.by_testid("conversation-title").text == "x.y+z", "bob: not opened")
    bob.send("Hello x.y+z <3")
    bob.wait_message("Hello x.y+z <3")
    bob.until(lambda: bob.conversation_id() is not None, "bob: the first message made none")
    conversation = bob.conversation_id()
    assert bob.find(hook("inbox-name"), bob.inbox_item(conversation)).text == "x.y+z"
    bob.open(f"/dm/{quote('x.y+z')}/")
    bob.until(lambda: bob.conversation_id() == conversation, "bob: /dm/ did not find it")
    bob.no_dialog_opened()
    alice.no_dialog_opened()


def test_the_phone_layout_switches_between_inbox_and_conversation(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    with_bob = direct(alice_user, bob_user)
    for n in range(1, 61):
        say(bob_user if n % 3 else alice_user, with_bob, f"Earlier {n}")
    reading.conversation_mark_read(
        user=alice_user, conversation_id=with_bob.pk, up_to=Message.objects.latest("id").pk
    )
    say(bob_user, with_bob, "Are you on your phone?")
    with_carol = direct(alice_user, carol_user)
    User.objects.filter(pk=carol_user.pk).update(is_active=False)
    phone = browsers("alice", size=(375, 740), phone=True)
    phone.log_in("alice", "/")
    assert phone.js("return [window.innerWidth, window.innerHeight]") == [375, 740]

    def fits() -> None:
        width = phone.js("return document.documentElement.scrollWidth")
        assert width <= 375, f"the page is {width}px wide"

    # The inbox alone.
    sidebar, pane = phone.by_testid("sidebar"), phone.by_testid("conversation-pane")
    assert sidebar.is_displayed() and not pane.is_displayed()
    fits()

    # Tap a conversation: it alone, with a way back.
    phone.inbox_item(with_bob.pk).click()
    phone.wait_message("Are you on your phone?")
    assert pane.is_displayed() and not sidebar.is_displayed()
    assert phone.by_testid("back-button").is_displayed()
    assert phone.focused_testid() == "conversation-title"
    fits()

    # Older history loads on scroll-up, and what was on screen stays where it was.
    assert len(phone.messages()) == 50
    anchor = phone.js(
        """const scroller = document.getElementById("scroller");
           scroller.scrollTop = 0;
           const first = scroller.querySelector('[data-testid="message"]');
           return [first.dataset.id, first.getBoundingClientRect().top];"""
    )
    phone.until(lambda: len(phone.messages()) == 61, "no older messages")
    assert phone.messages()[0]["body"] == "Earlier 1"
    assert phone.visible(hook("history-start")).text.startswith("This is the beginning")
    moved = phone.js(
        "return document.querySelector('[data-id=\"' + arguments[0] + '\"]')"
        ".getBoundingClientRect().top - arguments[1]",
        *anchor,
    )
    assert abs(moved) <= 2, f"the history jumped by {moved}px"
    phone.by_testid("composer-input").click()
    phone.send("Yes, on the bus")
    phone.wait_message("Yes, on the bus")
    assert phone.focused_testid() == "composer-input"
    send = phone.by_testid("send-button").rect
    assert send["x"] + send["width"] <= 375 and send["y"] + send["height"] <= 740

    # Back: the inbox, with the conversation just left focused and up to date.
    phone.by_testid("back-button").click()
    phone.until(lambda: sidebar.is_displayed() and not pane.is_displayed(), "no inbox")
    item = phone.inbox_item(with_bob.pk)
    assert phone.find(hook("inbox-preview"), item).text == "You: Yes, on the bus"
    assert phone.driver.switch_to.active_element == item
    assert phone.driver.current_url == phone.base_url + "/"

    # The browser's own forward and back buttons move between the two as well.
    phone.driver.forward()
    phone.until(lambda: pane.is_displayed() and not sidebar.is_displayed(), "forward failed")
    phone.driver.back()
    phone.until(lambda: sidebar.is_displayed() and not pane.is_displayed(), "back failed")

    # An error from the server shows in plain words beside the message it concerns.
    phone.inbox_item(with_carol.pk).click()
    phone.until(lambda: phone.conversation_id() == with_carol.pk, "carol's not opened")
    phone.send("Are you still here?")
    failed = phone.wait_message("Are you still here?", state="failed")
    assert "isn\N{RIGHT SINGLE QUOTATION MARK}t able to receive messages" in failed["error"]
    element = phone.message_element("Are you still here?")
    assert phone.find(hook("message-retry"), element).is_displayed()
    fits()
    assert stored("Are you still here?") == 0


# A stand-in for the browser's Notification (headless Chromium shows none): it records what
# the page asks to show. `window.__hidden` makes the tab report itself hidden.
FAKE_NOTIFICATIONS = """
(() => {
  class FakeNotification {
    constructor(title, options) {
      const shown = JSON.parse(sessionStorage.getItem("notes") || "[]");
      shown.push({ title, body: (options && options.body) || "" });
      sessionStorage.setItem("notes", JSON.stringify(shown));
    }
    close() {}
    static get permission() {
      return sessionStorage.getItem("permission") || "default";
    }
    static requestPermission() {
      sessionStorage.setItem("permission", "granted");
      return Promise.resolve("granted");
    }
  }
  window.Notification = FakeNotification;
  const hidden = () => Boolean(window.__hidden);
  Object.defineProperty(document, "hidden", { get: hidden, configurable: true });
  Object.defineProperty(document, "visibilityState", {
    get: () => (hidden() ? "hidden" : "visible"),
    configurable: true,
  });
})();
"""


def test_notifications_when_hidden_and_permitted_without_text_when_previews_are_off(
    browsers,
):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = direct(alice_user, bob_user)
    alice = browsers("alice")
    alice.add_script("notifications", FAKE_NOTIFICATIONS)
    bob = browsers("bob")
    alice.log_in("alice", "/")
    bob.log_in("bob", f"/c/{conversation.pk}/")

    def hide(hidden: bool) -> None:
        alice.js(
            "window.__hidden = arguments[0];"
            "document.dispatchEvent(new Event('visibilitychange'));",
            hidden,
        )

    def notes() -> list[dict]:
        return alice.js('return JSON.parse(sessionStorage.getItem("notes") || "[]");')

    def bob_says(body: str, unread: int) -> None:
        bob.send(body)
        alice.until(lambda: alice.badge(conversation.pk) == str(unread), f"alice: no {body}")

    # Not permitted yet: nothing, even hidden.
    hide(True)
    bob_says("First secret", 1)
    assert notes() == []

    # Alice turns notifications on in the settings; the browser asks and she allows.
    hide(False)
    alice.by_testid("settings-button").click()
    toggle = alice.visible(hook("notify-toggle"))
    assert not toggle.is_selected()
    toggle.click()
    alice.until(toggle.is_selected, "alice: notifications did not turn on")
    assert alice.by_testid("preview-toggle").is_selected()
    hide(True)
    bob_says("Second secret", 2)
    alice.until(lambda: notes() == [{"title": "bob", "body": "Second secret"}], "no note")

    # Previews off: the notification says who, not what.
    hide(False)
    alice.by_testid("preview-toggle").click()
    hide(True)
    bob_says("Third secret", 3)
    alice.until(lambda: len(notes()) == 2, "alice: no second notification")
    assert notes()[1] == {"title": "bob", "body": "New message"}

    # A visible tab gets no notification.
    hide(False)
    bob_says("Fourth", 4)
    assert len(notes()) == 2

    # The settings are kept for next time.
    alice.reload()
    alice.wait_online()
    alice.by_testid("settings-button").click()
    assert alice.visible(hook("notify-toggle")).is_selected()
    assert not alice.by_testid("preview-toggle").is_selected()
    stored_settings = alice.js(
        "return [localStorage.getItem(arguments[0]), localStorage.getItem(arguments[1])]",
        f"chat:{alice_user.pk}:notify",
        f"chat:{alice_user.pk}:notify-previews",
    )
    assert stored_settings == ["true", "false"]

    # Opening the conversation: the divider sits above the first unread message.
    alice.by_testid("settings-button").click()
    alice.inbox_item(conversation.pk).click()
    alice.wait_message("Fourth")
    assert alice.first_unread() == "New messages | First secret"


def test_a_group_made_in_the_browser_chats_changes_live_and_is_found_by_search(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    # Alice and Carol talked before: the oldest of many notes is far back in their history.
    with_carol = direct(alice_user, carol_user)
    for n in range(1, 131):
        say(carol_user, with_carol, f"Note {n} about the tent" if n <= 25 else f"Filler {n}")
    alice = browsers("alice")
    bob = browsers("bob")
    carol = browsers("carol")
    alice.log_in("alice", "/")
    bob.log_in("bob", "/")
    carol.log_in("carol", "/")

    # Alice makes the group: a name, and two people picked by username.
    alice.by_testid("new-group-button").click()
    dialog = alice.visible(hook("group-create-dialog"))
    assert alice.focused_testid() == "group-title-input"
    alice.by_testid("group-title-input").send_keys("Weekend trip")
    alice.pick(dialog, "bo", "bob")
    alice.by_testid("group-create-submit").click()
    error = alice.visible(hook("group-create-error"))
    assert "at least one more person" in error.text, "a group needs three people"
    alice.pick(dialog, "CA", "carol")
    alice.by_testid("group-create-submit").click()
    alice.gone(hook("group-create-dialog"))
    alice.until(lambda: alice.by_testid("conversation-title").text == "Weekend trip", "no group")
    group = Conversation.objects.get(kind="group")
    assert alice.conversation_id() == group.pk and group.title == "Weekend trip"
    assert sorted(group.members.values_list("username", flat=True)) == ["alice", "bob", "carol"]
    assert alice.by_testid("conversation-status").text == "3 members · you, bob, carol"
    assert alice.focused_testid() == "composer-input"
    # Bob says hello: from then on the others see him typing and reading (Carol has
    # written to Alice before).
    say(bob_user, group, "Hi all")

    # Everyone chats in it, live; the inbox shows its name.
    alice.send("Who brings the tent?")
    for person, unread in ((bob, "1"), (carol, "2")):
        person.until(lambda p=person, u=unread: p.badge(group.pk) == u, f"{person.name}: no group")
        item = person.inbox_item(group.pk)
        assert person.find(hook("inbox-name"), item).text == "Weekend trip"
        assert person.find(hook("inbox-preview"), item).text == "alice: Who brings the tent?"
        item.click()
        person.wait_message("Who brings the tent?")
    alice.until(
        lambda: (alice.message("Who brings the tent?") or {}).get("seen") == "Seen by everyone",
        "alice: not seen by everyone",
    )
    bob.type("Not me, sorry")
    carol.type("Me!")
    alice.until(
        lambda: alice.by_testid("typing-indicator").text
        in ("bob and carol are typing…", "carol and bob are typing…"),
        "alice: nobody typing",
    )
    carol.by_testid("composer-input").send_keys(Keys.ENTER)
    for person in (alice, bob, carol):
        person.wait_message("Me!")
    carol_line = carol.message_element("Me!")
    assert carol.find_all(".msg-sender", carol_line) == [], "no name on one's own bubble"
    assert alice.find(".msg-sender", alice.message_element("Me!")).text == "carol"

    # Alice renames it: a system line and the new name, live, everywhere.
    alice.open_menu_item("group-details-button")
    name = alice.visible(hook("group-rename-input"))
    assert name.get_property("value") == "Weekend trip"
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys("Lake trip")
    alice.by_testid("group-rename-save").click()
    renamed = 'alice renamed the group to "Lake trip"'
    for person in (alice, bob, carol):
        person.until(lambda p=person: renamed in p.system_lines(), f"{person.name}: no line")
        person.until(
            lambda p=person: p.by_testid("conversation-title").text == "Lake trip",
            f"{person.name}: the title stayed",
        )
        assert person.find(hook("inbox-name"), person.inbox_item(group.pk)).text == "Lake trip"
    line = alice.visible(hook("system-message"))
    assert alice.find_all(hook("message-edit"), line) == [], "a system line has no actions"
    assert alice.find_all(".bubble", line) == []
    alice.find(hook("dialog-close"), alice.by_testid("group-dialog")).click()
    alice.gone(hook("group-dialog"))

    # Only the creator may remove someone: Carol is offered no Remove that would fail.
    carol.open_menu_item("group-details-button")
    members = carol.visible(hook("group-members"))
    assert carol.find(f'{hook("group-member")}[data-username="alice"]', members)
    assert carol.find_all(hook("group-member-remove"), members) == []
    carol.find(hook("dialog-close"), carol.by_testid("group-dialog")).click()

    # Bob leaves: he sees he is out, and the others see the line and the members change.
    bob.by_testid("composer-input").send_keys(Keys.CONTROL, "a", Keys.DELETE)
    bob.open_menu_item("leave-group-button")
    bob.visible(hook("group-leave-confirm")).click()
    gone = bob.visible(hook("conversation-gone"))
    assert "You left “Lake trip”" in gone.text
    assert not bob.by_testid("composer").is_displayed()
    assert bob.messages() == [] and bob.inbox_ids() == []
    for person in (alice, carol):
        person.until(lambda p=person: "bob left" in p.system_lines(), f"{person.name}: no line")
        person.until(
            lambda p=person: p.by_testid("conversation-status").text.startswith("2 members"),
            f"{person.name}: the members did not change",
        )
    assert alice.by_testid("conversation-status").text == "2 members · you, carol"
    carol.send("Just us two then")
    alice.wait_message("Just us two then")
    assert bob.messages() == [], "bob gets nothing from the group any more"
    assert not Membership.objects.filter(conversation=group, user__username="bob").exists()

    # Alice searches: newest first, with each conversation's name and the words marked.
    search = alice.by_testid("message-search")
    search.send_keys("tent")
    search.send_keys(Keys.ENTER)

    def hits() -> list[tuple[str, str]]:
        return [
            (
                alice.find(hook("search-hit-conversation"), hit).text,
                alice.find(hook("search-hit-snippet"), hit).text,
            )
            for hit in alice.find_all(hook("search-hit"))
        ]

    alice.until(lambda: len(hits()) == 20, "alice: no first page of hits")
    assert not alice.by_testid("inbox").is_displayed(), "the hits take the inbox's place"
    assert hits()[0] == ("Lake trip", "Who brings the tent?")
    assert hits()[1] == ("carol", "Note 25 about the tent")
    marks = alice.find_all(f"{hook('search-hit')} mark")
    assert {mark.text for mark in marks} == {"tent"} and len(marks) == 20
    alice.by_testid("message-search-more").click()
    alice.until(lambda: len(hits()) == 26, "alice: no older hits")
    assert hits()[-1] == ("carol", "Note 1 about the tent")
    assert not alice.by_testid("message-search-more").is_displayed()

    # A hit far back in the history opens there, with the messages around it.
    target = Message.objects.get(body="Note 5 about the tent")
    alice.find(f'{hook("search-hit")}[data-message-id="{target.pk}"]').click()
    alice.until(lambda: alice.conversation_id() == with_carol.pk, "alice: not opened")
    found = alice.visible('[data-found="true"]')
    assert alice.find(hook("message-body"), found).text == "Note 5 about the tent"
    assert alice.js(
        """const box = arguments[0].getBoundingClientRect();
           const view = document.getElementById("scroller").getBoundingClientRect();
           return box.top >= view.top && box.bottom <= view.bottom;""",
        found,
    ), "the found message is not in view"
    bodies = alice.bodies()
    at = bodies.index("Note 5 about the tent")
    assert bodies[at - 1 : at + 2] == [
        "Note 4 about the tent",
        "Note 5 about the tent",
        "Note 6 about the tent",
    ]
    assert bodies[-1] == "Filler 130", "the history runs on to the newest message"
    assert alice.by_testid("message-search-results").is_displayed(), "the hits stay"

    # A search without words is answered in plain words.
    search.send_keys(Keys.CONTROL, "a")
    search.send_keys("?!", Keys.ENTER)
    refused = alice.visible(hook("message-search-error")).text
    assert refused.startswith("Type at least one word to search for"), refused

    # Alice, who made the group, removes Carol: Carol is told so in its place, live.
    alice.by_testid("message-search-close").click()
    alice.inbox_item(group.pk).click()
    alice.wait_message("Just us two then")
    alice.open_menu_item("group-details-button")
    row = alice.visible(f'{hook("group-member")}[data-username="carol"]')
    alice.find(hook("group-member-remove"), row).click()
    alice.find(hook("group-member-remove-confirm"), row).click()
    alice.until(lambda: "alice removed carol" in alice.system_lines(), "alice: no line")
    alice.until(
        lambda: alice.by_testid("conversation-status").text == "1 member · you",
        "alice: carol is still listed",
    )
    gone = carol.visible(hook("conversation-gone"))
    assert gone.text.startswith("alice removed you from “Lake trip”"), gone.text
    # What Carol saw stays on her screen, read-only; the group leaves her inbox.
    assert "Just us two then" in carol.bodies() and group.pk not in carol.inbox_ids()
    for person in (alice, bob, carol):
        person.no_dialog_opened()


def test_blocking_and_reporting_from_the_browser(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = direct(alice_user, bob_user)
    spam = say(bob_user, conversation, "Cheap watches, click here")
    alice = browsers("alice")
    bob = browsers("bob")
    alice.log_in("alice", f"/c/{conversation.pk}/")
    bob.log_in("bob", f"/c/{conversation.pk}/")

    # Alice reports Bob's message: she is asked why, in the page, and thanked.
    line = alice.message_element("Cheap watches, click here")
    hover(alice, line)
    alice.find(hook("message-report"), line).click()
    reason = alice.visible(hook("report-reason"))
    assert alice.focused_testid() == "report-reason"
    alice.by_testid("report-submit").click()
    assert alice.visible(hook("report-error")).text == (
        "Please say why you\N{RIGHT SINGLE QUOTATION MARK}re reporting this message."
    )
    reason.send_keys("Spam <b>again</b>")
    reason.send_keys(Keys.ENTER)
    done = alice.visible(hook("report-done"))
    assert done.text.startswith("Reported — thanks"), done.text
    report = Report.objects.get()
    assert (report.message_id, report.reporter_id) == (spam.pk, alice_user.pk)
    assert report.reason == "Spam <b>again</b>"
    # Twice is still one report; one's own messages offer no report.
    hover(alice, line)
    alice.find(hook("message-report"), line).click()
    alice.visible(hook("report-reason")).send_keys("Still spam", Keys.ENTER)
    alice.until(lambda: "already reported" in alice.by_testid("report-done").text, "no reply")
    assert Report.objects.count() == 1
    assert bob.find_all(hook("message-report"), bob.message_element(spam.body)) == []

    # Alice blocks Bob from the conversation: the composer gives way to the block.
    alice.open_menu_item("block-toggle")
    bar = alice.visible(hook("blocked-bar"))
    assert bar.text.startswith("You blocked bob.")
    assert not alice.by_testid("composer").is_displayed()
    assert alice.focused_testid() == "unblock-button"
    assert alice.by_testid("conversation-status").text == "Blocked"
    assert alice.find(hook("inbox-blocked"), alice.inbox_item(conversation.pk)).is_displayed()
    assert Block.objects.filter(blocker=alice_user, blocked=bob_user).exists()

    # Bob's message does not go through, and he is told why in plain words.
    bob.send("Hello?")
    failed = bob.wait_message("Hello?", state="failed")
    assert "isn\N{RIGHT SINGLE QUOTATION MARK}t able to receive messages" in failed["error"]
    assert stored("Hello?") == 0

    # Unblocked, Bob's retry arrives.
    alice.by_testid("unblock-button").click()
    alice.visible(hook("composer"))
    alice.gone(hook("blocked-bar"))
    assert not Block.objects.exists()
    bob.find(hook("message-retry"), bob.message_element("Hello?")).click()
    bob.wait_message("Hello?")
    alice.wait_message("Hello?")

    # From a name in the people search: block, then unblock.
    alice.by_testid("user-search").send_keys("bo")
    toggle = alice.visible(hook("user-block-toggle"))
    assert toggle.text == "Block" and toggle.get_attribute("aria-label") == "Block bob"
    toggle.click()
    alice.until(lambda: toggle.text == "Unblock", "alice: the name was not blocked")
    assert Block.objects.filter(blocker=alice_user, blocked=bob_user).exists()
    alice.visible(hook("blocked-bar"))
    toggle.click()
    alice.until(lambda: toggle.text == "Block", "alice: the name was not unblocked")
    assert not Block.objects.exists()
    alice.no_dialog_opened()
    bob.no_dialog_opened()


def chat_storage(browser: Browser) -> dict[str, str]:
    """What the pages of this origin keep in localStorage and sessionStorage."""
    return browser.js(
        """
        const kept = {};
        for (const area of [localStorage, sessionStorage])
          for (let i = 0; i < area.length; i++) {
            const key = area.key(i);
            if (key.startsWith("chat:")) kept[key] = area.getItem(key);
          }
        return kept;
        """
    )


def test_logging_out_leaves_no_drafts_or_unsent_messages_in_the_browser(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = direct(alice_user, bob_user)
    alice = browsers("alice")
    alice.log_in("alice", f"/c/{conversation.pk}/")

    # Offline, Alice writes a message (it waits in the outbox) and starts another.
    alice.add_script("no-socket", NO_SOCKET)
    alice.reload()
    alice.until(lambda: alice.connection() != "online", "alice: still online")
    alice.send("Unsent and private")
    alice.wait_message("Unsent and private", state="pending")
    alice.type("A private draft")
    outbox = f"chat:{alice_user.pk}:outbox"
    draft = f"chat:{alice_user.pk}:draft:{conversation.pk}"
    alice.until(lambda: draft in chat_storage(alice), "alice: the draft was not saved")
    assert "Unsent and private" in chat_storage(alice)[outbox]

    alice.by_testid("logout-button").click()
    alice.visible(hook("login-form"))
    assert chat_storage(alice) == {}, "the drafts and the outbox went with the session"
    alice.remove_script("no-socket")

    # What another person left in this browser is dropped when Alice signs in; hers stays.
    alice.js(
        f"""localStorage.setItem("chat:{bob_user.pk}:draft:{conversation.pk}", '"Bob\\'s"');
            localStorage.setItem("chat:{alice_user.pk}:notify", "false");"""
    )
    alice.log_in("alice", f"/c/{conversation.pk}/")
    assert chat_storage(alice) == {f"chat:{alice_user.pk}:notify": "false"}
    assert alice.composer() == "" and alice.messages() == []
    assert stored("Unsent and private") == 0


def test_revoking_a_token_on_the_settings_page_takes_it_off_the_list(browsers):
    from messaging.domain.tokens import token_issue, user_for_token
    from messaging.models import AuthToken, UserSettings

    alice_user = UserFactory(username="alice")
    laptop = token_issue(user=alice_user, name="laptop <script>")
    script = token_issue(user=alice_user, name="backup script")
    alice = browsers("alice")
    alice.log_in("alice", "/")
    alice.by_testid("settings-link").click()
    alice.visible(hook("settings-page"))

    def listed() -> list[str]:
        return [item.text for item in alice.find_all(hook("token-name"))]

    assert sorted(listed()) == ["backup script", "laptop <script>"]

    # Revoking asks first, in the page; keeping it changes nothing.
    item = next(
        i
        for i in alice.find_all(hook("token-item"))
        if "laptop" in alice.find(hook("token-name"), i).text
    )
    alice.find(hook("token-revoke"), item).click()
    alice.visible(hook("token-revoke-cancel")).click()
    assert alice.focused_testid() == "token-revoke"
    assert len(listed()) == 2

    alice.find(hook("token-revoke"), item).click()
    alice.visible(hook("token-revoke-confirm")).click()
    alice.until(lambda: listed() == ["backup script"], "alice: the token is still listed")
    assert alice.by_testid("tokens-status").get_attribute("textContent") == (
        "Revoked \N{LEFT DOUBLE QUOTATION MARK}laptop <script>\N{RIGHT DOUBLE QUOTATION MARK}."
    )
    assert user_for_token(laptop) is None and user_for_token(script) == alice_user
    alice.driver.refresh()
    alice.visible(hook("settings-page"))
    assert listed() == ["backup script"]

    # A new named token: its secret is shown once, and it works.
    alice.by_testid("token-name-input").send_keys("wscat", Keys.ENTER)
    secret = alice.visible(hook("token-secret"))
    alice.until(lambda: secret.get_property("value"), "alice: no secret shown")
    assert alice.focused_testid() == "token-secret"
    assert user_for_token(secret.get_property("value")) == alice_user
    assert AuthToken.objects.get(prefix=secret.get_property("value")[:8]).name == "wscat"
    assert "wscat" in listed()
    alice.by_testid("token-secret-done").click()
    alice.gone(hook("token-secret-box"))

    # A privacy switch is saved as it changes, and says so.
    alice.by_testid("show-presence-toggle").click()
    alice.until(
        lambda: alice.by_testid("privacy-status").text.startswith("Saved"),
        "alice: the switch was not saved",
    )
    assert UserSettings.objects.get(user=alice_user).show_presence is False
    alice.no_dialog_opened()
