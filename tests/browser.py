"""Debian's Chromium, driven by Selenium, for the browser tests, and what they share.

Both the browser and the driver are named explicitly, so Selenium Manager never looks for
(or downloads) anything. Every browser gets a profile of its own, so two browsers are two
people with their own cookies and localStorage.

A browser test module says `pytestmark = BROWSER_MARKS` and imports the `live` and
`browsers` fixtures from here: one daphne per test, one browser per person.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from messaging.domain import services
from messaging.models import Message
from tests.factories import PASSWORD
from tests.live import Daphne

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")
# Where each browser test leaves a screenshot of its final state (CI keeps the folder).
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / "var" / "test-artifacts" / "browser"))

WAIT = 10  # seconds an explicit wait may take before the test fails

# The marks of every browser test module. They need PostgreSQL and Redis (`services`):
# daphne runs in a process of its own and must see the rows the test commits, which
# pytest-django's in-memory SQLite database cannot offer to another process.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.django_db(transaction=True),
    # Only when Chromium itself stalls on a loaded machine; any other failure fails.
    pytest.mark.flaky(reruns=1, only_rerun=["Timed out receiving message from renderer"]),
]

# Records every dialog a page tries to open, before any of the page's own scripts run.
# A real dialog would also be caught by `no_dialog_opened`, through the driver.
DIALOG_TRAP = """
(() => {
  const record = (kind) => function (message) {
    const calls = JSON.parse(sessionStorage.getItem("dialogs") || "[]");
    calls.push(kind + ":" + String(message));
    sessionStorage.setItem("dialogs", JSON.stringify(calls));
  };
  window.alert = record("alert");
  window.confirm = record("confirm");
  window.prompt = record("prompt");
  window.print = record("print");
})();
"""


def hook(name: str) -> str:
    """The CSS selector of a `data-testid` hook."""
    return f'[data-testid="{name}"]'


class Browser:
    """One person's Chromium window, with the waits the tests use."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        size: tuple[int, int] = (1280, 800),
        phone: bool = False,
        dark: bool = False,
        timezone: str | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.profile = tempfile.TemporaryDirectory(prefix=f"chromium-{name}-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-features=Translate,MediaRouter,OptimizationHints",
            "--password-store=basic",
            "--lang=en-US",
            # A window at least as large as the page, which is sized exactly below.
            f"--window-size={max(size[0], 800)},{max(size[1], 600) + 200}",
            f"--user-data-dir={self.profile.name}",
        ):
            options.add_argument(argument)
        if dark:
            options.add_argument("--force-dark-mode")
            options.add_argument("--blink-settings=preferredColorScheme=0")
        # Let a dialog stay open so that the test sees it, rather than the driver hiding it.
        options.set_capability("unhandledPromptBehavior", "ignore")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.driver.set_page_load_timeout(30)
        self._scripts: dict[str, str] = {}
        self.add_script("dialogs", DIALOG_TRAP)
        # The viewport exactly (a headless window has a minimum width of about 500 px);
        # a phone also gets a touch screen, so `pointer: coarse` styles apply.
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": phone},
        )
        if phone:
            self.cdp("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
        if dark:
            self.cdp(
                "Emulation.setEmulatedMedia",
                {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
            )
        if timezone:
            self.cdp("Emulation.setTimezoneOverride", {"timezoneId": timezone})

    # -- plumbing ------------------------------------------------------------------------

    def cdp(self, command: str, params: dict | None = None) -> dict:
        return self.driver.execute_cdp_cmd(command, params or {})

    def add_script(self, key: str, source: str) -> None:
        """Run a script in every page this browser loads from now on, before the page's own."""
        answer = self.cdp("Page.addScriptToEvaluateOnNewDocument", {"source": source})
        self._scripts[key] = answer["identifier"]

    def remove_script(self, key: str) -> None:
        self.cdp(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": self._scripts.pop(key)}
        )

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def quit(self, screenshot: Path | None = None) -> None:
        try:
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                self.driver.save_screenshot(str(screenshot))
        finally:
            self.driver.quit()
            self.profile.cleanup()

    # -- finding and waiting -------------------------------------------------------------

    def wait(self, timeout: float = WAIT) -> WebDriverWait:
        return WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.05,
            ignored_exceptions=(StaleElementReferenceException,),
        )

    def until(self, condition, message: str = "", timeout: float = WAIT):
        """Wait until `condition()` answers something truthy; return that."""
        return self.wait(timeout).until(lambda _driver: condition(), message)

    def find(self, css: str, within: WebElement | None = None) -> WebElement:
        return (within or self.driver).find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str, within: WebElement | None = None) -> list[WebElement]:
        return (within or self.driver).find_elements(By.CSS_SELECTOR, css)

    def by_testid(self, name: str) -> WebElement:
        return self.find(hook(name))

    def visible(self, css: str, timeout: float = WAIT) -> WebElement:
        """Wait until an element is displayed; return it."""

        def shown():
            for element in self.find_all(css):
                if element.is_displayed():
                    return element
            return None

        return self.until(shown, f"{self.name}: nothing visible matches {css}", timeout)

    def gone(self, css: str, timeout: float = WAIT) -> None:
        """Wait until no element that matches is displayed."""
        self.until(
            lambda: not any(e.is_displayed() for e in self.find_all(css)),
            f"{self.name}: {css} is still shown",
            timeout,
        )

    # -- what a person sees --------------------------------------------------------------

    def messages(self) -> list[dict]:
        """The open conversation's messages as shown: text, state, ids and markers."""
        return self.js(
            """
            return Array.from(document.querySelectorAll('#messages [data-testid="message"]'))
              .map((li) => ({
                id: li.dataset.id ? Number(li.dataset.id) : null,
                client_id: li.dataset.clientId || null,
                state: li.dataset.state,
                deleted: li.dataset.deleted === "true",
                body: li.querySelector('[data-testid="message-body"]').textContent,
                edited: Boolean(li.querySelector('[data-testid="message-edited"]')),
                seen: (li.querySelector('[data-testid="seen-marker"]') || {}).textContent || null,
                error: (li.querySelector('[data-testid="message-error"]') || {}).textContent
                  || null,
                mine: li.classList.contains("mine"),
                grouped: li.classList.contains("grouped"),
              }));
            """
        )

    def bodies(self) -> list[str]:
        return [m["body"] for m in self.messages()]

    def message(self, body: str) -> dict | None:
        for shown in self.messages():
            if shown["body"] == body:
                return shown
        return None

    def message_element(self, body: str) -> WebElement:
        for li in self.find_all('#messages [data-testid="message"]'):
            if self.find(hook("message-body"), li).text == body:
                return li
        raise AssertionError(f"{self.name}: no message {body!r} on screen")

    def wait_message(self, body: str, state: str = "sent", timeout: float = WAIT) -> dict:
        """Wait until a message with this body is shown in this state; return it."""

        def shown():
            found = self.message(body)
            return found if found and found["state"] == state else None

        return self.until(shown, f"{self.name}: no {state} message {body!r}", timeout)

    def first_unread(self) -> str | None:
        """The body of the message just below the "New messages" divider, if one is shown."""
        return self.js(
            """
            const divider = document.querySelector(
              '#messages [data-testid="new-messages-divider"]'
            );
            if (!divider || !divider.offsetParent) return null;
            const next = divider.nextElementSibling;
            const body = next && next.querySelector('[data-testid="message-body"]');
            return body ? divider.textContent + " | " + body.textContent : divider.textContent;
            """
        )

    def system_lines(self) -> list[str]:
        """The open conversation's system lines ("alice added carol"), oldest first."""
        return self.js(
            """
            return Array.from(document.querySelectorAll('#messages [data-testid="system-text"]'))
              .map((node) => node.textContent);
            """
        )

    def inbox_ids(self) -> list[int]:
        """The conversations in the inbox, top to bottom."""
        return [
            int(item.get_attribute("data-conversation-id"))
            for item in self.find_all(hook("inbox-item"))
        ]

    def inbox_item(self, conversation_id: int) -> WebElement:
        return self.find(f'{hook("inbox-item")}[data-conversation-id="{conversation_id}"]')

    def badge(self, conversation_id: int) -> str | None:
        """The unread badge's text of a conversation, or None while it is hidden."""
        badge = self.find(hook("unread-badge"), self.inbox_item(conversation_id))
        return badge.text if badge.is_displayed() else None

    def title(self) -> str:
        return self.driver.title

    def connection(self) -> str:
        return self.by_testid("app").get_attribute("data-connection")

    def wait_online(self, timeout: float = WAIT) -> None:
        self.until(lambda: self.connection() == "online", f"{self.name}: not online", timeout)

    def dialogs(self) -> list[str]:
        return self.js('return JSON.parse(sessionStorage.getItem("dialogs") || "[]");')

    def script_errors(self) -> list[str]:
        """Uncaught exceptions and Content-Security-Policy refusals logged since last asked."""
        return [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if "Uncaught" in entry["message"] or "Content Security Policy" in entry["message"]
        ]

    def no_dialog_opened(self) -> None:
        """Fail if a dialog is open now or any page of this browser tried to open one."""
        try:
            alert = self.driver.switch_to.alert
        except NoAlertPresentException:
            pass
        else:
            text = alert.text
            alert.dismiss()
            raise AssertionError(f"{self.name}: a dialog opened: {text!r}")
        assert self.dialogs() == [], f"{self.name}: dialogs were called: {self.dialogs()}"

    # -- what a person does --------------------------------------------------------------

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def log_in(self, username: str, next_path: str = "/") -> None:
        """Sign in through the login form and wait for the chat to connect."""
        self.open(f"/accounts/login/?next={next_path}")
        self.by_testid("login-username").send_keys(username)
        self.by_testid("login-password").send_keys(PASSWORD)
        self.by_testid("login-submit").click()
        self.visible(hook("app"))
        self.wait_online()

    def type(self, text: str) -> None:
        """Type into the composer, lines joined with Shift+Enter, without sending."""
        box = self.by_testid("composer-input")
        for n, line in enumerate(text.split("\n")):
            if n:
                box.send_keys(Keys.SHIFT, Keys.ENTER, Keys.SHIFT)
            if line:
                box.send_keys(line)

    def send(self, text: str) -> None:
        """Type a message and press Enter."""
        self.type(text)
        self.by_testid("composer-input").send_keys(Keys.ENTER)

    def composer(self) -> str:
        return self.by_testid("composer-input").get_property("value")

    def focused_testid(self) -> str | None:
        # Read in the page in one step: a list drawn again between finding the focused
        # element and asking it for its attribute would leave a stale reference.
        return self.js(
            "const el = document.activeElement; return el && el.getAttribute('data-testid')"
        )

    def reload(self) -> None:
        self.driver.refresh()
        self.visible(hook("app"))

    def conversation_id(self) -> int | None:
        match = re.search(r"/c/(\d+)/(?:\?[^#]*)?$", self.driver.current_url)
        return int(match.group(1)) if match else None

    def pick(self, within: WebElement, prefix: str, username: str) -> None:
        """In a people picker, type the start of a name and choose that person."""
        self.find(hook("people-picker-input"), within).send_keys(prefix)
        self.until(
            lambda: self.find(
                f'{hook("people-picker-result")}[data-username="{username}"]', within
            ).is_displayed(),
            f"{self.name}: {username} was not offered",
        )
        self.find(f'{hook("people-picker-result")}[data-username="{username}"]', within).click()
        self.until(
            lambda: username
            in [
                chip.get_attribute("data-username")
                for chip in self.find_all(hook("people-picked-item"), within)
            ],
            f"{self.name}: {username} was not picked",
        )

    def open_menu_item(self, testid: str) -> None:
        """Open the conversation's options and choose one."""
        self.by_testid("conversation-menu-button").click()
        self.visible(hook(testid)).click()


def screenshot_path(test_name: str, who: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    return ARTIFACTS / f"{safe}-{who}.png"


class LiveServer:
    """The chat served by daphne on one port, which a test may kill and start again."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[Daphne] = []
        self.port: int | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        daphne = Daphne(log_path=self.log_dir / f"daphne-{len(self.processes)}.log")
        if self.port is not None:
            daphne.port = self.port  # the same address, as after a real restart
        self.processes.append(daphne)
        daphne.start()
        self.port = daphne.port
        return self

    def kill(self) -> None:
        self.processes[-1].stop(signal.SIGKILL)

    def stop(self) -> None:
        for daphne in self.processes:
            daphne.stop()

    def logs(self) -> str:
        return "".join(p.read_text() for p in sorted(self.log_dir.glob("daphne-*.log")))


@pytest.fixture
def live(transactional_db, tmp_path):
    server = LiveServer(tmp_path).start()
    yield server
    server.stop()
    assert "Traceback" not in server.logs()


@pytest.fixture
def browsers(live, request):
    """Open a browser for a person; on teardown, keep a screenshot of each and close it."""
    opened: list[Browser] = []

    def open_browser(name: str, **options) -> Browser:
        browser = Browser(name=name, base_url=live.http_url, **options)
        opened.append(browser)
        return browser

    yield open_browser
    errors = {}
    for browser in opened:
        try:
            errors[browser.name] = browser.script_errors()
        finally:
            browser.quit(screenshot=screenshot_path(request.node.name, browser.name))
    assert not any(errors.values()), f"errors in the pages' scripts: {errors}"


def direct(a, b):
    conversation, _ = services.conversation_open_direct(user=a, other=b)
    return conversation


_sent = iter(range(1, 1_000_000))


def say(sender, conversation, body: str) -> Message:
    """Send a message the way the socket does (the one write path)."""
    return services.message_send(
        sender=sender, body=body, client_id=f"seed-{next(_sent)}", conversation_id=conversation.pk
    ).message


def stored(body: str) -> int:
    return Message.objects.filter(body=body).count()


def hover(browser: Browser, element) -> None:
    ActionChains(browser.driver).move_to_element(element).perform()
