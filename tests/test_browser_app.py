"""The installable app in Debian's Chromium: the manifest is accepted, an offline start shows
what was seen with the offline banner, a message written offline goes once the server is back,
and after a logout nothing of the chat is left to show."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from selenium.common.exceptions import WebDriverException

from messaging.models import Message
from tests import browser as shared
from tests.browser import Browser, hook
from tests.factories import UserFactory

pytestmark = shared.BROWSER_MARKS

live = shared.live
browsers = shared.browsers

OFFLINE_START = "You\N{RIGHT SINGLE QUOTATION MARK}re offline. Showing the conversations"
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "offline-start.png"

KEPT = """
const done = arguments[arguments.length - 1];
(async () => {
  const controlled = Boolean(navigator.serviceWorker.controller);
  let shell = false;
  for (const name of await caches.keys()) {
    if (await (await caches.open(name)).match("/shell/")) shell = true;
  }
  // Only read: opening a database that is not there would make one.
  const dbs = (await indexedDB.databases()).map((d) => d.name);
  const records = !dbs.includes("chat-offline") ? [] : await new Promise((resolve) => {
    const open = indexedDB.open("chat-offline");
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains("snapshots")) { db.close(); resolve([]); return; }
      const all = db.transaction("snapshots").objectStore("snapshots").getAll();
      all.onsuccess = () => { db.close(); resolve(all.result); };
      all.onerror = () => { db.close(); resolve([]); };
    };
    open.onerror = () => resolve([]);
  });
  done({controlled, shell, keys: records.map((r) => r.key),
        bodies: records.flatMap((r) => (r.messages || []).map((m) => m.body)), dbs});
})().catch((error) => done({error: String(error)}));
"""


def kept(browser: Browser) -> dict:
    """What this browser keeps for an offline start: the worker, its shell, the copy."""
    return browser.driver.execute_async_script(KEPT)


def wake_worker(browser: Browser) -> None:
    """Have the page's service worker keep the shell again, which starts it if it stopped."""
    browser.js("navigator.serviceWorker.controller.postMessage({type: 'shell'})")
    time.sleep(1)  # its fetch of /shell/ (a few ms) done before the server goes


def open_offline(browser: Browser, path: str) -> None:
    """Open a page that nothing kept answers: the browser shows its own offline page."""
    try:
        browser.open(path)
    except WebDriverException as error:
        # chromedriver reports the failed navigation as an error when the worker was stopped
        # and the navigation went straight to the network; answered by the worker, it does not.
        # Either way Chromium shows its offline page, which the caller checks.
        if "ERR_INTERNET_DISCONNECTED" not in str(error) and "ERR_FAILED" not in str(error):
            raise


def network(browser: Browser, *, offline: bool) -> None:
    browser.cdp("Network.enable")
    browser.cdp(
        "Network.emulateNetworkConditions",
        {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )


def banner(browser: Browser) -> str:
    shown = browser.by_testid("connection-banner")
    return shown.text if shown.is_displayed() else ""


def announced(browser: Browser, text: str) -> bool:
    """Whether screen readers are told: a status banner, or the page's status region."""
    return browser.js(
        """
        const banner = document.querySelector('[data-testid="connection-banner"]');
        const region = document.querySelector('[data-testid="status-region"]');
        const said = (node) => Boolean(node && node.textContent.includes(arguments[0]));
        return (banner.getAttribute("role") === "status" && said(banner)) || said(region);
        """,
        text,
    )


def test_the_manifest_is_accepted_and_the_chat_starts_offline_from_what_was_seen(live, browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    with_carol = shared.direct(alice_user, carol_user)
    shared.say(carol_user, with_carol, "Lunch on Thursday?")
    with_bob = shared.direct(alice_user, bob_user)
    shared.say(bob_user, with_bob, "Are we still on for Friday?")
    shared.say(alice_user, with_bob, "Yes, at eight at the usual place")

    alice = browsers("alice")
    alice.log_in("alice", f"/c/{with_carol.pk}/")
    alice.wait_message("Lunch on Thursday?", state="sent")
    alice.inbox_item(with_bob.pk).click()
    alice.wait_message("Yes, at eight at the usual place")
    alice.until(
        lambda: (k := kept(alice))["controlled"]
        and k["shell"]
        and {"Are we still on for Friday?", "Lunch on Thursday?"} <= set(k["bodies"]),
        "alice: the shell and the messages seen were not kept",
        timeout=20,
    )

    # Installable: Chromium reads the manifest without an error and finds nothing missing.
    manifest = alice.cdp("Page.getAppManifest")
    assert manifest["errors"] == [], manifest["errors"]
    assert manifest["url"].endswith("/manifest.webmanifest")
    assert alice.cdp("Page.getInstallabilityErrors")["installabilityErrors"] == []

    # The server is gone and the browser offline: a reload starts from what was kept.
    # The worker is woken first: Chromium stops a worker idle for 30 s, and a navigation that
    # comes while it stops goes past it to the network (on a loaded machine the checks above
    # can take that long). A person's own page load wakes it the same way.
    wake_worker(alice)
    live.kill()
    network(alice, offline=True)
    alice.reload()
    alice.until(
        lambda: alice.by_testid("app").get_attribute("data-offline-start") == "true",
        "alice: not an offline start",
    )
    assert alice.connection() == "offline"
    alice.until(lambda: OFFLINE_START in banner(alice), "alice: no offline banner")
    assert announced(alice, OFFLINE_START)
    assert alice.conversation_id() == with_bob.pk
    assert alice.inbox_ids() == [with_bob.pk, with_carol.pk]
    assert alice.bodies() == ["Are we still on for Friday?", "Yes, at eight at the usual place"]
    assert "Lunch on Thursday?" in alice.inbox_item(with_carol.pk).text
    # Another conversation seen before opens from the kept copy too.
    alice.inbox_item(with_carol.pk).click()
    alice.until(lambda: alice.bodies() == ["Lunch on Thursday?"], "alice: carol's not shown")
    alice.inbox_item(with_bob.pk).click()
    alice.until(lambda: len(alice.bodies()) == 2, "alice: bob's conversation not shown again")
    if os.environ.get("CHAT_DOCS_SCREENSHOTS") == "1":
        alice.driver.save_screenshot(str(SCREENSHOT.with_suffix(".tmp.png")))
        shutil.move(SCREENSHOT.with_suffix(".tmp.png"), SCREENSHOT)

    # Written offline: it waits in the outbox, and goes once the server is back.
    alice.send("Sent from the train, offline")
    alice.wait_message("Sent from the train, offline", state="pending")
    assert not Message.objects.filter(body="Sent from the train, offline").exists()
    live.start()
    network(alice, offline=False)
    alice.wait_message("Sent from the train, offline", state="sent", timeout=30)
    assert (
        Message.objects.filter(
            body="Sent from the train, offline", sender=alice_user, conversation=with_bob
        ).count()
        == 1
    )
    alice.until(lambda: alice.connection() == "online", "alice: not online again")
    assert alice.by_testid("app").get_attribute("data-offline-start") is None
    assert banner(alice) == ""

    # Logged out: nothing of the chat is kept, and an offline visit shows none of it.
    alice.by_testid("logout-button").click()
    alice.visible(hook("login-username"))
    left = kept(alice)
    assert not left["shell"] and left["keys"] == [] and "chat-offline" not in left["dbs"], left
    live.kill()
    network(alice, offline=True)
    open_offline(alice, f"/c/{with_bob.pk}/")
    assert alice.find_all(hook("app")) == []
    assert "Are we still on for Friday?" not in alice.driver.page_source
    network(alice, offline=False)
    live.start()
