"""Everyone can use it: the chat in another language, in real Chromium against a live daphne.

Like every browser test, these need PostgreSQL and Redis (`services`).
"""

from __future__ import annotations

from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests import browser as shared
from tests.browser import direct, hook, say
from tests.factories import UserFactory

pytestmark = shared.BROWSER_MARKS

live = shared.live
browsers = shared.browsers


def box(browser, testid: str) -> dict:
    """The place of an element on the page, in CSS pixels."""
    return browser.js(
        "const r = arguments[0].getBoundingClientRect(); return {left: r.left, right: r.right};",
        browser.by_testid(testid),
    )


def test_a_conversation_in_arabic_runs_right_to_left(browsers) -> None:
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = direct(alice_user, bob_user)
    say(bob_user, conversation, "مرحبا أليس! هل وصلت الخريطة؟")
    say(bob_user, conversation, "The map is in the shared folder.")
    alice = browsers("alice", size=(1100, 760))
    alice.log_in("alice")
    alice.open("/settings/")

    # The language is chosen on the settings page; the page comes back in Arabic.
    Select(alice.by_testid("language-select")).select_by_value("ar")
    alice.by_testid("language-save").click()
    alice.until(lambda: alice.js("return document.documentElement.dir") == "rtl", "not rtl")
    assert alice.js("return document.documentElement.lang") == "ar"
    assert alice.find("h1").text == "الإعدادات"

    alice.open(f"/c/{conversation.pk}/")
    alice.visible(hook("app"))
    alice.wait_online()
    alice.wait_message("The map is in the shared folder.")
    assert alice.by_testid("composer-input").get_attribute("placeholder") == "اكتب رسالة…"
    assert alice.by_testid("logout-button").text == "تسجيل الخروج"
    # Mirrored: the conversations are on the right, the conversation on the left.
    sidebar, pane = box(alice, "sidebar"), box(alice, "conversation-pane")
    assert sidebar["left"] >= pane["right"] - 1, (sidebar, pane)
    # Each message keeps its own direction, whatever the page's.
    bodies = alice.find_all(hook("message-body"))
    directions = [alice.js("return getComputedStyle(arguments[0]).direction", b) for b in bodies]
    assert directions == ["rtl", "ltr"]
    # The client's own texts come from the Arabic catalogue: the day's heading says today.
    assert "اليوم" in alice.by_testid("message-list").text

    alice.type("شكرا، وجدتها")
    alice.by_testid("composer-input").send_keys(Keys.ENTER)
    alice.wait_message("شكرا، وجدتها")
    # docs/screenshots/conversation-arabic.png is a copy of this one: a test run leaves the
    # checkout as it was.
    shot = shared.screenshot_path("conversation-arabic", "alice")
    shot.parent.mkdir(parents=True, exist_ok=True)
    alice.driver.save_screenshot(str(shot))


def test_the_settings_page_and_mute_speak_german(browsers) -> None:
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    conversation = direct(alice_user, bob_user)
    alice = browsers("alice")
    alice.log_in("alice")
    alice.open("/settings/")
    Select(alice.by_testid("language-select")).select_by_value("de")
    alice.by_testid("language-save").click()
    alice.until(lambda: alice.js("return document.documentElement.lang") == "de", "not German")

    # What the page's script says as things change comes from the German catalogue too.
    alice.by_testid("show-presence-toggle").click()
    status = alice.by_testid("privacy-status")
    alice.until(
        lambda: status.text == "Gespeichert. Deine Anwesenheit ist verborgen.",
        f"privacy status: {status.text!r}",
    )
    alice.until(lambda: alice.find_all(hook("muted-item")), "no conversations listed")
    alice.find(hook("mute-toggle"), alice.by_testid("muted-item")).click()
    muted = alice.by_testid("muted-status")
    alice.until(lambda: muted.text == "bob stummgeschaltet.", f"muted status: {muted.text!r}")

    # The chat shows it muted, with its bell named in German, and offers to unmute it.
    alice.open(f"/c/{conversation.pk}/")
    # The inbox is listed after the page shows: wait for the conversation's entry.
    item = alice.visible(f'{hook("inbox-item")}[data-conversation-id="{conversation.pk}"]')
    assert alice.find(hook("inbox-muted"), item).get_attribute("aria-label") == "Stummgeschaltet"
    alice.by_testid("conversation-menu-button").click()
    assert alice.visible(hook("mute-toggle")).text == "Stummschaltung aufheben"
