"""The service worker in Debian's Chromium: a push delivered through the DevTools protocol
(ServiceWorker.deliverPushMessage) shows the notification with the right title, text and
tag; a newer message replaces it, and a read push closes it.

Headless Chromium reaches no real push service, so the subscription itself cannot be made
here (the settings page says so); the server's side of a push is tested against a push
service on 127.0.0.1 (tests/test_away_push.py, tests/test_away_live.py).
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.keys import Keys
from websockets.sync.client import connect as ws_connect

from messaging.domain import services
from messaging.jobs import vapid
from messaging.models import UserSettings
from tests.browser import BROWSER_MARKS, WAIT, Browser, hook, screenshot_path
from tests.factories import UserFactory
from tests.live import Daphne
from tests.test_browser_help import Audit

pytestmark = BROWSER_MARKS


@pytest.fixture
def served(transactional_db, tmp_path, request):
    daphne = Daphne(
        env={"CHAT_VAPID_PRIVATE_KEY": vapid.new_private_key()},
        log_path=tmp_path / "daphne.log",
    ).start()
    try:
        browser = Browser(name="bob", base_url=daphne.http_url)
        try:
            yield daphne, browser
            errors = browser.script_errors()
        finally:
            browser.quit(screenshot=screenshot_path(request.node.name, "bob"))
    finally:
        daphne.stop()
    assert not errors, errors
    assert "Traceback" not in (tmp_path / "daphne.log").read_text()


class DevTools:
    """One DevTools protocol session of the test's own with the page, open until closed.

    The session stays open from the first question to the last push: a session that closes
    right after ServiceWorker.deliverPushMessage has answered may stop the worker before
    the push event has run, and then no notification shows.
    """

    def __init__(self, browser: Browser) -> None:
        address = browser.driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        with urllib.request.urlopen(f"http://{address}/json/list", timeout=5) as answer:
            pages = [t for t in json.loads(answer.read()) if t["type"] == "page"]
        self.socket = ws_connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
        self.asked = itertools.count(1)
        self.events: list[dict] = []
        self.call("ServiceWorker.enable")

    def call(self, method: str, params: dict | None = None) -> dict:
        """Ask one question and return its answer, keeping the events that come before it."""
        question = next(self.asked)
        self.socket.send(json.dumps({"id": question, "method": method, "params": params or {}}))
        while True:
            answer = json.loads(self.socket.recv(timeout=WAIT))
            if answer.get("id") == question:
                assert "error" not in answer, answer
                return answer
            self.events.append(answer)

    def registration_id(self, scope: str) -> str:
        """Return the id of the service worker registration of a scope, once it is active."""
        deadline = time.monotonic() + WAIT
        registrations: dict[str, str] = {}
        while True:
            for event in self.events:
                if event.get("method") == "ServiceWorker.workerRegistrationUpdated":
                    for registration in event["params"]["registrations"]:
                        registrations[registration["scopeURL"]] = registration["registrationId"]
                if event.get("method") == "ServiceWorker.workerVersionUpdated":
                    for version in event["params"]["versions"]:
                        if (
                            version["status"] == "activated"
                            and registrations.get(scope) == version["registrationId"]
                        ):
                            return registrations[scope]
            self.events.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no active service worker for {scope}: {registrations}")
            try:
                self.events.append(json.loads(self.socket.recv(timeout=left)))
            except TimeoutError:
                pass

    def deliver(self, origin: str, registration_id: str, data: dict) -> None:
        """Push data to the registration's worker as the browser's push service would."""
        self.call(
            "ServiceWorker.deliverPushMessage",
            {"origin": origin, "registrationId": registration_id, "data": json.dumps(data)},
        )

    def close(self) -> None:
        self.socket.close()


NOTIFICATIONS = """
const done = arguments[arguments.length - 1];
navigator.serviceWorker.ready
  .then((registration) => registration.getNotifications())
  .then((list) => done(list.map((n) => ({title: n.title, body: n.body,
    tag: n.tag, data: n.data}))))
  .catch((error) => done(String(error)));
"""


def notifications(browser: Browser) -> list[dict]:
    return browser.driver.execute_async_script(NOTIFICATIONS)


def test_a_push_delivered_to_the_service_worker_shows_replaces_and_closes_the_notification(
    served,
):
    daphne, browser = served
    bob = UserFactory(username="bob")
    services.conversation_create_group(
        creator=bob, others=[UserFactory(username="alice"), UserFactory(username="carol")]
    )
    browser.cdp(
        "Browser.grantPermissions",
        {"origin": daphne.http_url, "permissions": ["notifications"]},
    )
    browser.log_in("bob")
    browser.open("/settings/")
    browser.visible(hook("push-enable"))
    browser.until(lambda: browser.find_all(hook("muted-item")), "no conversations listed")
    audit = Audit()
    audit.check(browser, "the settings page")
    audit.assert_clean()
    delay = browser.by_testid("email-delay-input")
    delay.clear()
    delay.send_keys("25", Keys.TAB)
    browser.until(
        lambda: UserSettings.objects.filter(user=bob, email_delay_minutes=25).exists(),
        "the email delay was not saved",
    )
    browser.by_testid("push-enable").click()
    # The browser registers /sw.js for the whole site; subscribing needs a real push
    # service, which this headless browser has not: the page says it could not.
    browser.until(lambda: browser.by_testid("push-error").text, "no error shown", timeout=30)
    assert browser.by_testid("push-error").text == (
        "This browser could not turn notifications on: "
        "the browser\u2019s push service did not answer"
    )
    assert browser.by_testid("push-device-state").get_attribute("data-state") == "off"

    devtools = DevTools(browser)
    registration = devtools.registration_id(daphne.http_url + "/")
    message = {
        "type": "message",
        "conversation": 12,
        "message": 345,
        "title": "alice",
        "body": "are you there?",
        "tag": "conversation-12",
        "url": "/c/12/",
        "mention": False,
        "sent_at": "2026-12-05T10:00:00Z",
    }

    def push_until(data: dict, condition, failure: str) -> None:
        # A push handed to DevTools is now and then not dispatched to the worker on a busy
        # machine (no event, no error): it is handed again, as a push service would retry.
        for _ in range(3):
            devtools.deliver(daphne.http_url, registration, data)
            try:
                browser.until(condition, failure, timeout=5)
                return
            except TimeoutException:
                continue
        raise AssertionError(failure)

    push_until(message, lambda: notifications(browser), "no notification shown")
    (shown,) = notifications(browser)
    assert shown["title"] == "alice" and shown["body"] == "are you there?"
    assert shown["tag"] == "conversation-12"
    assert shown["data"]["url"] == "/c/12/"

    # A newer message of the conversation replaces it; an older one arriving late does not.
    newer = {**message, "message": 346, "body": "hello?"}
    push_until(newer, lambda: [n["body"] for n in notifications(browser)] == ["hello?"], "kept")
    devtools.deliver(daphne.http_url, registration, {**message, "message": 344, "body": "old"})
    other = {**message, "conversation": 13, "message": 400, "tag": "conversation-13"}
    push_until(other, lambda: len(notifications(browser)) == 2, "no second conversation")
    assert sorted(n["body"] for n in notifications(browser)) == ["are you there?", "hello?"]

    # Read on another device up to the newest: it closes, and only that conversation's.
    closing = {"type": "read", "conversation": 12, "up_to": 346, "tag": "conversation-12"}
    push_until(
        closing,
        lambda: [n["tag"] for n in notifications(browser)] == ["conversation-13"],
        "the notification stayed",
    )
    devtools.close()
