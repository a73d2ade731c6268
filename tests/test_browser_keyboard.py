"""Everyone can use it by keyboard and screen reader, in real Chromium against a live daphne.

A whole conversation without the mouse (keys only, no click), and what a screen reader is
told: incoming messages with their sender, a burst as how many came, one's own sends in the
status region and never in the messages' live region. Like every browser test, these need
PostgreSQL and Redis (`services`).
"""

from __future__ import annotations

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from messaging.domain import services
from tests import browser as shared
from tests.browser import Browser, direct, hook, say
from tests.factories import PASSWORD, UserFactory
from tests.test_browser_help import settle

pytestmark = shared.BROWSER_MARKS

live = shared.live
browsers = shared.browsers


def press(browser: Browser, *keys: str) -> None:
    """Type on whatever has the keyboard focus, as a person would."""
    ActionChains(browser.driver).send_keys(*keys).perform()


def press_back(browser: Browser) -> None:
    """Shift+Tab."""
    ActionChains(browser.driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(
        Keys.SHIFT
    ).perform()


def focused(browser: Browser, script: str):
    """Ask something of the element that has the focus."""
    return browser.js(f"const el = document.activeElement; return {script};")


def focused_message(browser: Browser) -> str | None:
    """The body of the message the focus is on or in, if any."""
    return focused(
        browser,
        "(el.closest('[data-testid=\"message\"]') || {querySelector: () => null})"
        ".querySelector('[data-testid=\"message-body\"]')?.textContent ?? null",
    )


def tab_back_to(browser: Browser, condition, what: str, limit: int = 40) -> None:
    """Press Shift+Tab until `condition()` holds, as a person looking for something would."""
    for _ in range(limit):
        if condition():
            return
        press_back(browser)
    raise AssertionError(f"{browser.name}: Shift+Tab never reached {what}")


def arrow_to_message(browser: Browser, body: str) -> None:
    """In the message list, End to the newest, then up with the arrow keys to `body`."""
    press(browser, Keys.END)
    for _ in range(20):
        if focused_message(browser) == body:
            return
        press(browser, Keys.ARROW_UP)
    raise AssertionError(f"{browser.name}: the arrows never reached {body!r}")


def arrow_to_action(browser: Browser, testid: str) -> None:
    """Along a message's actions with the right arrow, to the one named `testid`."""
    for _ in range(6):
        if browser.focused_testid() == testid:
            return
        press(browser, Keys.ARROW_RIGHT)
    raise AssertionError(f"{browser.name}: the arrows never reached {testid}")


def accessible_name(browser: Browser, css: str) -> str:
    """The name Chromium gives an element in its accessibility tree (what a screen reader says)."""
    found = browser.cdp("Runtime.evaluate", {"expression": f"document.querySelector({css!r})"})[
        "result"
    ]
    nodes = browser.cdp(
        "Accessibility.getPartialAXTree",
        {"objectId": found["objectId"], "fetchRelatives": False},
    )["nodes"]
    return nodes[0]["name"]["value"]


def spoken(browser: Browser) -> str:
    return browser.by_testid("live-region").get_attribute("textContent")


def test_a_whole_conversation_by_keyboard_alone(browsers) -> None:
    alice_user, bob_user, carol_user = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    with_bob = direct(alice_user, bob_user)
    say(bob_user, with_bob, "Lunch on Friday?")
    group = services.conversation_create_group(
        creator=bob_user, others=[alice_user, carol_user], title="Hiking"
    )
    say(bob_user, group, "Who brings the map?")
    say(carol_user, group, "Not me, sorry")
    alice = browsers("alice")

    # Log in: the username field has the focus.
    alice.open("/accounts/login/?next=/")
    assert alice.focused_testid() == "login-username"
    press(alice, "alice", Keys.TAB, PASSWORD, Keys.ENTER)
    alice.visible(hook("app"))
    alice.wait_online()

    # The unread count is said in words, once.
    row = accessible_name(alice, f'[data-conversation-id="{with_bob.pk}"]')
    assert row.startswith("bob") and row.endswith("Lunch on Friday? , 1 unread message"), row

    # The skip link comes first and leads to the conversations; the arrows walk them.
    press(alice, Keys.TAB)
    assert alice.focused_testid() == "skip-link"
    press(alice, Keys.ENTER)
    assert focused(alice, "el.dataset.conversationId") == str(group.pk)
    press(alice, Keys.ARROW_DOWN)
    assert focused(alice, "el.dataset.conversationId") == str(with_bob.pk)
    press(alice, Keys.ARROW_UP)
    assert focused(alice, "el.dataset.conversationId") == str(group.pk)
    press(alice, Keys.ENTER)
    alice.wait_message("Not me, sorry")
    alice.until(lambda: alice.focused_testid() == "composer-input", "the box has no focus")

    # Write.
    press(alice, "I will bring it", Keys.ENTER)
    alice.wait_message("I will bring it")
    alice.until(
        lambda: alice.by_testid("status-region").get_attribute("textContent") == "Message sent.",
        "no word of the send",
    )
    assert "I will bring it" not in spoken(alice), "one's own message is not read out"

    # Reply: back from the box into the messages, up to Bob's, R.
    tab_back_to(alice, lambda: focused_message(alice) is not None, "a message")
    arrow_to_message(alice, "Who brings the map?")
    press(alice, "r")
    assert alice.visible(hook("reply-bar")).is_displayed()
    assert alice.focused_testid() == "composer-input"
    press(alice, "Is it the big one?", Keys.ENTER)
    alice.wait_message("Is it the big one?")
    quote = alice.find(hook("message-quote"), alice.message_element("Is it the big one?"))
    assert "Who brings the map?" in quote.text

    # React: along Bob's message's actions to React; the picker opens on its first emoji.
    tab_back_to(alice, lambda: focused_message(alice) is not None, "a message")
    arrow_to_message(alice, "Who brings the map?")
    arrow_to_action(alice, "message-react")
    press(alice, Keys.ENTER)
    alice.visible(hook("emoji-picker"))
    # Escape closes it and gives the focus back to the button that opened it.
    press(alice, Keys.ESCAPE)
    alice.gone(hook("emoji-picker"))
    assert alice.focused_testid() == "message-react"
    press(alice, Keys.ENTER)
    alice.visible(hook("emoji-picker"))
    press(alice, Keys.ARROW_RIGHT, Keys.ENTER)
    alice.until(
        lambda: alice.js(
            "return Array.from(document.querySelectorAll('#messages [data-testid=\"message\"]'))"
            ".filter((li) => li.textContent.includes('Who brings the map?'))"
            ".some((li) => li.querySelector('[data-testid=\"reaction\"]'))"
        ),
        "no reaction on Bob's message",
    )
    # Drawn again with the reaction, the message keeps the focus where it was.
    alice.until(
        lambda: alice.focused_testid() == "message-react"
        and focused_message(alice) == "Who brings the map?",
        "the focus left the react button",
    )
    # Right goes on from the actions to the message's reactions.
    arrow_to_action(alice, "reaction")
    assert focused(alice, "el.getAttribute('aria-pressed')") == "true"

    # Edit her own message, then delete it.
    tab_back_to(alice, lambda: focused_message(alice) is not None, "a message")
    arrow_to_message(alice, "I will bring it")
    arrow_to_action(alice, "message-edit")
    press(alice, Keys.ENTER)
    assert alice.focused_testid() == "edit-input"
    press(alice, " tomorrow", Keys.ENTER)
    alice.until(
        lambda: (alice.message("I will bring it tomorrow") or {}).get("edited"), "not edited"
    )
    assert alice.focused_testid() == "message-edit"
    arrow_to_action(alice, "message-delete")
    press(alice, Keys.ENTER)
    assert alice.focused_testid() == "message-delete-confirm"
    press(alice, Keys.ENTER)
    alice.until(lambda: alice.message("I will bring it tomorrow") is None, "not deleted")

    # Screen readers hear Bob with his name, and a burst as how many came.
    say(bob_user, group, "Great, thanks")
    alice.until(lambda: "bob: Great, thanks" in spoken(alice), "bob's message was not read out")
    for n in range(4):
        say(carol_user, group, f"Point {n}")
    alice.wait_message("Point 3")
    alice.until(lambda: "new messages" in spoken(alice), "the burst was not summarised")
    assert "Point 2" not in spoken(alice), spoken(alice)

    # The conversation's options: Enter opens them, Escape closes them back on their button.
    tab_back_to(alice, lambda: alice.focused_testid() == "conversation-menu-button", "the menu")
    press(alice, Keys.ENTER)
    press(alice, Keys.ARROW_DOWN)
    assert alice.focused_testid() == "group-details-button"
    press(alice, Keys.ESCAPE)
    assert alice.focused_testid() == "conversation-menu-button"
    assert not alice.by_testid("conversation-menu").get_attribute("open")

    # Leave the group: the menu, down to "Leave group…", the dialog asks, Tab to Leave.
    press(alice, Keys.ENTER)
    for _ in range(5):
        if alice.focused_testid() == "leave-group-button":
            break
        press(alice, Keys.ARROW_DOWN)
    assert alice.focused_testid() == "leave-group-button"
    press(alice, Keys.ENTER)
    alice.visible(hook("group-leave-confirm"))
    assert alice.focused_testid() == "group-leave-cancel"
    press(alice, Keys.TAB)
    assert alice.focused_testid() == "group-leave-confirm"
    press(alice, Keys.ENTER)
    alice.visible(hook("conversation-gone"))
    alice.until(lambda: group.pk not in alice.inbox_ids(), "the group stayed in the inbox")
    alice.no_dialog_opened()


# What shows where the keyboard is: an outline of 2px or more, or (for the message box, whose
# frame is its ring) the frame in the ring's colour. Answers "" when shown, else the element.
FOCUS_SHOWN = """
const el = document.activeElement;
if (!el || el === document.body) return "";
const own = getComputedStyle(el);
if (own.outlineStyle !== "none" && parseFloat(own.outlineWidth) >= 2) return "";
const frame = el.closest(".composer");
if (frame) {
  const probe = document.createElement("span");
  probe.style.color = "var(--focus-ring)";
  document.body.appendChild(probe);
  const ring = getComputedStyle(probe).color;
  probe.remove();
  if (getComputedStyle(frame).borderTopColor === ring) return "";
}
return el.outerHTML.slice(0, 160);
"""


def tab_around(browser: Browser, limit: int = 200) -> tuple[list[str], set[str]]:
    """Tab from the top of the page until the focus comes round again; return what showed no
    focus and the controls passed. Fails if the focus never comes back (a trap)."""
    unseen = []
    passed = set()
    press(browser, Keys.TAB)
    assert browser.focused_testid() == "skip-link"
    for _ in range(limit):
        press(browser, Keys.TAB)
        if browser.focused_testid() == "skip-link":
            return unseen, passed
        passed.add(browser.focused_testid() or "")
        settle(browser)  # a ring that fades in is measured once it is there
        missing = browser.js(FOCUS_SHOWN)
        if missing:
            unseen.append(missing)
    raise AssertionError(f"{browser.name}: {limit} Tabs never came round to the skip link")


def test_the_focus_is_always_visible_and_tab_comes_round_light_and_dark(browsers) -> None:
    alice_user, bob_user, carol_user = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    group = services.conversation_create_group(
        creator=bob_user, others=[alice_user, carol_user], title="Hiking"
    )
    say(bob_user, group, "Who brings the map?")
    say(alice_user, group, "I will")
    say(bob_user, direct(alice_user, bob_user), "Lunch?")
    alice = browsers("alice")
    alice.log_in("alice", f"/c/{group.pk}/")
    alice.wait_message("I will")
    for scheme in ("light", "dark"):
        alice.cdp(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )
        alice.js("document.activeElement.blur(); window.scrollTo(0, 0);")
        alice.js("document.body.tabIndex = -1; document.body.focus();")
        unseen, passed = tab_around(alice)
        assert unseen == [], f"no visible focus ({scheme})"
        # The walk went through the whole page: sidebar, conversation, messages, message box.
        assert {
            "user-search",
            "inbox-item",
            "conversation-menu-button",
            "message-reply",
            "composer-input",
            "send-button",
        } <= passed, passed
