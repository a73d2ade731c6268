"""What a new user trips over, in real Chromium: failures worded so people can act on them,
finding people by any part of a name, and the pages checked by axe-core.

axe-core comes from npm, pinned by tests/a11y/package-lock.json (`scripts/test` runs
`npm ci` there); its `axe.min.js` is injected with Selenium, never fetched from a CDN.
Like every browser test, these need PostgreSQL and Redis (`services`).
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from selenium.webdriver.common.keys import Keys

from tests import browser as shared
from tests.browser import Browser, direct, hook, say
from tests.factories import UserFactory

pytestmark = shared.BROWSER_MARKS

User = get_user_model()

# One daphne per test and one browser per person (tests/browser.py), as this module's fixtures.
live = shared.live
browsers = shared.browsers

AXE = Path(__file__).resolve().parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"

# Every rule of axe-core runs, best practices included. A rule may be skipped here only with
# the reason written beside it; none is.
SKIPPED_RULES: dict[str, str] = {}

RUN_AXE = """
const done = arguments[arguments.length - 1];
const rules = arguments[0];
const options = { resultTypes: ["violations"], rules: {} };
for (const id of rules) options.rules[id] = { enabled: false };
axe.run(document, options).then(
  (result) => done(result.violations.map((v) => ({
    id: v.id,
    impact: v.impact,
    help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary),
  }))),
  (error) => done([{ id: "axe-error", help: String(error) }])
);
"""


def violations(browser: Browser) -> list[dict]:
    """Run axe-core in the page as it is now; return what it finds wrong."""
    assert AXE.exists(), "axe-core is missing: run scripts/test, or `npm ci` in tests/a11y"
    if not browser.js("return typeof window.axe === 'object'"):
        browser.js(AXE.read_text())
    browser.driver.set_script_timeout(30)
    return browser.driver.execute_async_script(RUN_AXE, sorted(SKIPPED_RULES))


def describe(found: list[dict]) -> str:
    return "\n".join(
        f"{v['id']} ({v.get('impact')}): {v['help']}\n    " + "\n    ".join(v.get("nodes", []))
        for v in found
    )


class Audit:
    """axe-core's findings on each view of a test, reported together at the end."""

    def __init__(self) -> None:
        self.found: dict[str, list[dict]] = {}

    def check(self, browser: Browser, where: str) -> None:
        settle(browser)
        found = violations(browser)
        if found:
            self.found[where] = found

    def assert_clean(self) -> None:
        assert self.found == {}, "\n\n".join(
            f"{where}:\n{describe(found)}" for where, found in self.found.items()
        )


def settle(browser: Browser) -> None:
    """Wait until transitions have ended, so colours are measured as they rest."""
    browser.js(
        "return Promise.all(document.getAnimations().map((a) => a.finished.catch(() => null)))"
    )


def people(*names: str) -> list:
    return [UserFactory(username=name) for name in names]


def chatted(alice, bob, carol):
    """Alice's inbox: an active conversation with Bob, one with Carol, times on both sides."""
    with_bob = direct(alice, bob)
    say(bob, with_bob, "Hello group! Are we meeting tomorrow?")
    say(alice, with_bob, "Yes, at the usual place")
    say(bob, with_bob, "Great, see you there")
    with_carol = direct(alice, carol)
    say(carol, with_carol, "Did you get the tickets?")
    return with_bob, with_carol


def test_axe_finds_nothing_on_the_inbox_a_conversation_search_and_a_dialog(browsers):
    audit = Audit()
    alice_user, bob_user, carol_user = people("alice", "bob", "carol")
    with_bob, _ = chatted(alice_user, bob_user, carol_user)
    alice = browsers("alice")
    alice.log_in("alice", "/")
    alice.visible(hook("inbox-item"))
    audit.check(alice, "the inbox")

    alice.inbox_item(with_bob.pk).click()
    alice.wait_message("Great, see you there")
    audit.check(alice, "a conversation")

    alice.by_testid("message-search").send_keys("hell", Keys.ENTER)
    alice.visible(hook("search-hits") + " li")
    audit.check(alice, "message search open")
    alice.by_testid("message-search-close").click()

    alice.by_testid("user-search").send_keys("ob")
    alice.visible(hook("user-search-result"))
    audit.check(alice, "people search open")
    alice.by_testid("user-search").send_keys(Keys.ESCAPE)

    alice.by_testid("new-group-button").click()
    alice.visible(hook("group-create-dialog"))
    audit.check(alice, "the new group dialog")
    audit.assert_clean()


def test_axe_finds_nothing_on_a_phone_inbox_and_conversation(browsers):
    audit = Audit()
    alice_user, bob_user, carol_user = people("alice", "bob", "carol")
    with_bob, _ = chatted(alice_user, bob_user, carol_user)
    phone = browsers("alice", size=(375, 740), phone=True)
    phone.log_in("alice", "/")
    phone.visible(hook("inbox-item"))
    audit.check(phone, "the phone inbox")
    phone.inbox_item(with_bob.pk).click()
    phone.wait_message("Great, see you there")
    audit.check(phone, "a conversation on the phone")
    audit.assert_clean()


def test_axe_finds_nothing_in_dark_mode(browsers):
    audit = Audit()
    alice_user, bob_user, carol_user = people("alice", "bob", "carol")
    with_bob, _ = chatted(alice_user, bob_user, carol_user)
    alice = browsers("alice", dark=True)
    alice.log_in("alice", f"/c/{with_bob.pk}/")
    alice.wait_message("Great, see you there")
    assert alice.js("return matchMedia('(prefers-color-scheme: dark)').matches")
    audit.check(alice, "a conversation and the inbox in dark mode")
    audit.assert_clean()


def test_people_are_found_by_part_of_a_name_and_oneself_is_named(browsers):
    people("alice", "bob", "jacob", "obi")
    alice = browsers("alice")
    alice.log_in("alice", "/")
    search = alice.by_testid("user-search")
    search.send_keys("ob")
    alice.until(
        lambda: [
            link.get_attribute("data-username")
            for link in alice.find_all(hook("user-search-result"))
        ]
        == ["obi", "bob", "jacob"],
        "people whose names hold 'ob' were not offered, those it starts first",
    )
    search.clear()
    search.send_keys("alice")
    said = alice.visible(hook("user-search-self"))
    assert (
        said.text
        == "That\N{RIGHT SINGLE QUOTATION MARK}s you, alice. Search for someone else to write to."
    )
    assert "No one found" not in alice.by_testid("user-search-results").text


def test_a_message_to_someone_deactivated_says_they_are_no_longer_on_the_chat(browsers):
    alice_user, bob_user = people("alice", "bob")
    with_bob = direct(alice_user, bob_user)
    say(bob_user, with_bob, "I am leaving soon")
    User.objects.filter(pk=bob_user.pk).update(is_active=False)
    alice = browsers("alice")
    alice.log_in("alice", f"/c/{with_bob.pk}/")
    alice.wait_message("I am leaving soon")
    assert alice.by_testid("conversation-status").text == "No longer on the chat"
    alice.send("Are you still there?")
    failed = alice.wait_message("Are you still there?", state="failed")
    assert "bob is no longer on the chat" in failed["error"]
