"""axe-core on every state a person meets, in real Chromium against a live daphne.

Two walks, each through many states so the suite stays quick: the pages before signing in,
an empty inbox, a group conversation with replies, reactions and files and each of its
dialogs and menus, a blocked conversation, the settings; then the same kind of walk at a
phone's width in dark mode. Every rule of axe-core runs (tests/test_browser_help.py's
`SKIPPED_RULES` is empty), colour contrast included. Other states are checked beside the
behaviour they belong to (grep `audit.check`). Like every browser test, these need PostgreSQL
and Redis (`services`).
"""

from __future__ import annotations

from selenium.webdriver.common.keys import Keys

from messaging.domain import blocks, reactions, services
from tests import browser as shared
from tests.browser import Browser, direct, hook, say
from tests.factories import PASSWORD, UserFactory
from tests.test_browser_help import Audit
from tests.test_browser_rich import action, answer, paste_picture

pytestmark = shared.BROWSER_MARKS

live = shared.live
browsers = shared.browsers


def press(browser: Browser, *keys: str) -> None:
    browser.driver.switch_to.active_element.send_keys(*keys)


def group_with_everything():
    """Alice's group: a reply, reactions; and a direct conversation with Bob, whom she blocked."""
    alice, bob, carol = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    group = services.conversation_create_group(creator=bob, others=[alice, carol], title="Hiking")
    plan = say(bob, group, "Who brings the map?")
    reply = answer(carol, group, "Not me, sorry. @alice?", plan)
    say(alice, group, "I will bring it")
    reactions.reaction_add(user=carol, message_id=plan.pk, emoji="👍")
    reactions.reaction_add(user=alice, message_id=reply.pk, emoji="😂")
    with_bob = direct(alice, bob)
    say(bob, with_bob, "Lunch on Friday?")
    blocks.block_create(blocker=alice, username="bob")
    return group, with_bob


def signed_out_pages(browser: Browser, audit: Audit, where: str) -> None:
    """The login page, a failed login, and the sign-up page with its errors."""
    browser.open("/accounts/login/")
    browser.visible(hook("login-form"))
    audit.check(browser, f"the login page{where}")
    browser.by_testid("login-username").send_keys("nobody")
    browser.by_testid("login-password").send_keys("wrong", Keys.ENTER)
    browser.visible(hook("form-error"))
    audit.check(browser, f"a failed login{where}")
    browser.open("/accounts/signup/")
    browser.visible(hook("signup-form"))
    audit.check(browser, f"the sign-up page{where}")
    browser.find(hook("signup-form") + " [type=submit]").click()
    browser.visible(".field-errors, " + hook("form-error"))
    audit.check(browser, f"the sign-up page with its errors{where}")


def test_axe_finds_nothing_on_every_state_of_a_conversation_its_dialogs_and_menus(browsers):
    audit = Audit()
    group, with_bob = group_with_everything()
    UserFactory(username="dave")

    # Before signing in; then someone with no conversations yet.
    dave = browsers("dave")
    signed_out_pages(dave, audit, "")
    dave.open("/accounts/login/?next=/")
    dave.by_testid("login-username").send_keys("dave")
    dave.by_testid("login-password").send_keys(PASSWORD, Keys.ENTER)
    dave.visible(hook("inbox-empty"))
    dave.wait_online()
    audit.check(dave, "an empty inbox")
    dave.by_testid("settings-button").click()
    dave.visible(hook("notify-toggle"))
    audit.check(dave, "the notifications menu open")

    alice = browsers("alice", size=(1200, 800))
    alice.log_in("alice", f"/c/{group.pk}/")
    alice.wait_message("I will bring it")
    audit.check(alice, "a group conversation with a reply and reactions")

    # A photo and a file, and the photo viewer.
    paste_picture(alice, "ridge.png", (320, 200))
    alice.until(
        lambda: alice.by_testid("composer-file").get_attribute("data-state") == "ready",
        "the upload did not finish",
    )
    audit.check(alice, "a photo waiting in the composer")
    alice.type("The view from the ridge")
    press(alice, Keys.ENTER)
    alice.wait_message("The view from the ridge")
    alice.find(hook("attachment-image")).click()
    alice.visible(hook("viewer-image"))
    audit.check(alice, "the photo viewer")
    press(alice, Keys.ESCAPE)
    alice.gone(hook("viewer"))
    # Escape gives the focus back to what opened it.
    assert alice.focused_testid() == "attachment-image"

    # A message's actions, its editor, the delete question, the report form.
    alice.js("arguments[0].focus()", action(alice, "I will bring it", "message-edit"))
    audit.check(alice, "a message's actions shown")
    alice.by_testid("conversation-title").click()
    action(alice, "I will bring it", "message-edit").click()
    alice.visible(hook("edit-input"))
    audit.check(alice, "a message being edited")
    press(alice, Keys.ESCAPE)
    action(alice, "I will bring it", "message-delete").click()
    alice.visible(hook("message-delete-confirm"))
    audit.check(alice, "the delete question")
    press(alice, Keys.ESCAPE)
    action(alice, "Who brings the map?", "message-report").click()
    alice.visible(hook("report-reason"))
    audit.check(alice, "the report form")
    press(alice, Keys.ESCAPE)
    action(alice, "Who brings the map?", "message-reply").click()
    alice.visible(hook("reply-bar"))
    audit.check(alice, "a reply being written")
    press(alice, Keys.ESCAPE)

    # The conversation's options, the group's details (rename, members, add) and leaving.
    alice.by_testid("conversation-menu-button").click()
    alice.visible(hook("group-details-button"))
    audit.check(alice, "the conversation options menu")
    alice.by_testid("group-details-button").click()
    alice.visible(hook("group-members") + " li")
    audit.check(alice, "the group details dialog")
    alice.find(hook("group-dialog") + " " + hook("people-picker-input")).send_keys("da")
    alice.visible(hook("group-dialog") + " " + hook("people-picker-result"))
    audit.check(alice, "adding someone to the group")
    alice.by_testid("group-leave").click()
    alice.visible(hook("group-leave-confirm"))
    audit.check(alice, "the leave question")
    press(alice, Keys.ESCAPE)
    alice.gone(hook("group-dialog"))
    assert alice.focused_testid() == "conversation-menu-button"

    # A conversation with someone she blocked, and the settings page.
    alice.inbox_item(with_bob.pk).click()
    alice.visible(hook("blocked-bar"))
    audit.check(alice, "a blocked conversation")
    alice.by_testid("settings-link").click()
    alice.visible(hook("settings-page"))
    audit.check(alice, "the settings page")
    audit.assert_clean()


def test_axe_finds_nothing_at_a_phones_width_in_dark_mode(browsers):
    audit = Audit()
    group, _ = group_with_everything()
    phone = browsers("alice", size=(375, 740), phone=True, dark=True)
    assert phone.js("return matchMedia('(prefers-color-scheme: dark)').matches")
    signed_out_pages(phone, audit, " (phone, dark)")
    phone.log_in("alice", "/")
    phone.visible(hook("inbox-item"))
    audit.check(phone, "the inbox (phone, dark)")
    phone.inbox_item(group.pk).click()
    phone.wait_message("I will bring it")
    audit.check(phone, "a group conversation (phone, dark)")
    phone.find(hook("message-body"), phone.message_element("Who brings the map?")).click()
    phone.visible(hook("message-react"))
    audit.check(phone, "a message's actions (phone, dark)")
    phone.find(hook("message-react"), phone.message_element("Who brings the map?")).click()
    phone.visible(hook("emoji-picker"))
    audit.check(phone, "the emoji picker (phone, dark)")
    press(phone, Keys.ESCAPE)
    phone.open_menu_item("group-details-button")
    phone.visible(hook("group-members") + " li")
    audit.check(phone, "the group details dialog (phone, dark)")
    press(phone, Keys.ESCAPE)
    phone.open("/settings/")
    phone.visible(hook("settings-page"))
    audit.check(phone, "the settings page (phone, dark)")
    audit.assert_clean()

    # Asked for less motion, nothing slides or fades: every transition and animation is
    # over at once.
    phone.cdp(
        "Emulation.setEmulatedMedia",
        {
            "features": [
                {"name": "prefers-color-scheme", "value": "dark"},
                {"name": "prefers-reduced-motion", "value": "reduce"},
            ]
        },
    )
    phone.open(f"/c/{group.pk}/")
    phone.wait_message("I will bring it")
    longest = phone.js(
        "return Math.max(...Array.from(document.querySelectorAll('*')).flatMap((el) => {"
        "  const s = getComputedStyle(el);"
        "  return [s.transitionDuration, s.animationDuration]"
        "    .flatMap((d) => d.split(',').map((t) => parseFloat(t) || 0));"
        "}));"
    )
    assert longest < 0.001, f"something still moves for {longest}s"
