"""Rich messages in real Chromium, between two people: replies, reactions, mentions, and a
photo sent by pasting it; the conversation that shows all four checked by axe-core and
photographed for the README.

Like every browser test, these need PostgreSQL and Redis (`services`): see
`tests.browser.BROWSER_MARKS`.
"""

from __future__ import annotations

import base64
import io
import os
import time

from django.contrib.auth import get_user_model
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.keys import Keys

from messaging.domain import reactions, services
from messaging.models import Conversation, Message, Reaction, Upload
from tests import browser as shared
from tests.browser import Browser, direct, hook, hover, say
from tests.factories import UserFactory
from tests.test_browser_help import Audit

pytestmark = shared.BROWSER_MARKS

# One daphne per test and one browser per person (tests/browser.py), as this module's fixtures.
live = shared.live
browsers = shared.browsers

User = get_user_model()

_replies = iter(range(1, 1_000_000))


def answer(sender, conversation, body: str, original: Message) -> Message:
    """Send a reply the way the socket does."""
    return services.message_send(
        sender=sender,
        body=body,
        client_id=f"reply-{next(_replies)}",
        conversation_id=conversation.pk,
        reply_to=original.pk,
    ).message


def quote_of(browser: Browser, body: str) -> dict | None:
    """The quote shown at the top of the message with this body: who and what, or None."""
    li = browser.message_element(body)
    found = browser.find_all(hook("message-quote"), li)
    if not found:
        return None
    return {
        "who": browser.find(hook("quote-who"), found[0]).text,
        "text": browser.find(hook("quote-text"), found[0]).text,
        "deleted": "is-deleted" in found[0].get_attribute("class"),
    }


def reactions_of(browser: Browser, body: str) -> list[tuple[str, int, bool]]:
    """The reactions under a message: (emoji, count, whether one of them is mine)."""
    shown = browser.js(
        """
        const li = Array.from(document.querySelectorAll('#messages [data-testid="message"]'))
          .find((node) => node.querySelector('[data-testid="message-body"]').textContent
            === arguments[0]);
        if (!li) return [];
        return Array.from(li.querySelectorAll('[data-testid="reaction"]')).map((b) =>
          [b.dataset.emoji, Number(b.dataset.count), b.getAttribute("aria-pressed") === "true"]);
        """,
        body,
    )
    return [tuple(reaction) for reaction in shown]


def action(browser: Browser, body: str, testid: str):
    """Show a message's actions (as a mouse over it does) and return one of its buttons."""

    def shown():
        # A message is drawn again whenever it changes (a reaction arriving): find it anew.
        try:
            li = browser.message_element(body)
            hover(browser, li)
            button = browser.find(hook(testid), li)
            return button if button.is_displayed() else None
        except StaleElementReferenceException:
            return None

    return browser.until(shown, f"{browser.name}: no {testid} on {body!r}")


# -- replies -------------------------------------------------------------------------------


def alice_and_bob(browsers, *opening: str) -> tuple[Browser, Browser, Conversation]:
    """Alice and Bob in their direct conversation, Bob having written `opening`, each of
    them looking at it; return their browsers and the conversation."""
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    with_bob = direct(alice_user, bob_user)
    for body in opening:
        say(bob_user, with_bob, body)
    alice = browsers("alice")
    bob = browsers("bob")
    alice.log_in("alice", f"/c/{with_bob.pk}/")
    bob.log_in("bob", f"/c/{with_bob.pk}/")
    alice.wait_message(opening[-1])
    return alice, bob, with_bob


def test_a_reply_from_the_menu_or_the_r_key_quotes_the_message_and_follows_its_changes(browsers):
    alice, bob, _ = alice_and_bob(browsers, "Lunch at noon?", "Or one o'clock")

    # From the message's menu: the quote shows above the composer, Escape takes it away.
    action(alice, "Lunch at noon?", "message-reply").click()
    alice.visible(hook("reply-bar"))
    assert alice.by_testid("reply-bar-who").text == "bob"
    assert alice.by_testid("reply-bar-quote").text == "Lunch at noon?"
    assert alice.focused_testid() == "composer-input"
    alice.by_testid("composer-input").send_keys(Keys.ESCAPE)
    alice.gone(hook("reply-bar"))

    # By keyboard: R on a message (on one of its buttons) answers it.
    action(alice, "Lunch at noon?", "message-react")  # shows the buttons of that message
    alice.js(
        "arguments[0].focus()",
        alice.find(hook("message-reply"), alice.message_element("Lunch at noon?")),
    )
    alice.driver.switch_to.active_element.send_keys("r")
    alice.visible(hook("reply-bar"))
    assert alice.by_testid("reply-bar-quote").text == "Lunch at noon?"
    alice.send("Noon is perfect")
    alice.gone(hook("reply-bar"))
    assert alice.wait_message("Noon is perfect")
    assert quote_of(alice, "Noon is perfect") == {
        "who": "bob",
        "text": "Lunch at noon?",
        "deleted": False,
    }
    reply = Message.objects.get(body="Noon is perfect")
    assert reply.reply_to_id == Message.objects.get(body="Lunch at noon?").pk

    # Bob sees his own words quoted, live.
    bob.wait_message("Noon is perfect")
    assert quote_of(bob, "Noon is perfect") == {
        "who": "You",
        "text": "Lunch at noon?",
        "deleted": False,
    }

    # Bob edits the message quoted, then deletes it: Alice's quote follows, without a reload.
    action(bob, "Lunch at noon?", "message-edit").click()
    edit = bob.visible(hook("edit-input"))
    edit.clear()
    edit.send_keys("Lunch at half past twelve?", Keys.ENTER)
    alice.until(
        lambda: (quote_of(alice, "Noon is perfect") or {}).get("text")
        == "Lunch at half past twelve?",
        "alice: the quote did not follow the edit",
    )
    action(bob, "Lunch at half past twelve?", "message-delete").click()
    bob.visible(hook("message-delete-confirm")).click()
    alice.until(
        lambda: quote_of(alice, "Noon is perfect")
        == {"who": "bob", "text": "deleted message", "deleted": True},
        "alice: the quote did not show the message deleted",
    )
    alice.reload()
    alice.wait_message("Noon is perfect")
    assert quote_of(alice, "Noon is perfect")["text"] == "deleted message", "after a reload too"
    alice.no_dialog_opened()


def test_a_quote_leads_to_the_message_it_answers_loading_older_history(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    with_bob = direct(alice_user, bob_user)
    first = say(bob_user, with_bob, "Where did we park?")
    for n in range(120):  # more than two pages of history (50 each) between the two
        say(alice_user, with_bob, f"filler {n}")
    answer(alice_user, with_bob, "Level 3, row F", first)
    alice = browsers("alice")
    alice.log_in("alice", f"/c/{with_bob.pk}/")
    alice.wait_message("Level 3, row F")
    assert alice.message("Where did we park?") is None, "not on the first page"

    quote = alice.find(hook("message-quote"), alice.message_element("Level 3, row F"))
    assert quote.text.endswith("Where did we park?")
    quote.click()
    alice.until(lambda: alice.message("Where did we park?"), "the older page was not loaded")
    target = alice.message_element("Where did we park?")
    alice.until(
        lambda: target.get_attribute("data-flashed") == "true", "the original was not highlighted"
    )
    alice.until(
        lambda: alice.js(
            """
            const box = arguments[0].getBoundingClientRect();
            const view = document.getElementById("scroller").getBoundingClientRect();
            return box.top >= view.top && box.bottom <= view.bottom;
            """,
            target,
        ),
        "the original was not scrolled into view",
    )
    assert alice.driver.switch_to.active_element == target, "the focus follows, for the keyboard"
    alice.until(
        lambda: target.get_attribute("data-flashed") is None, "the highlight stayed", timeout=5
    )


# -- reactions ----------------------------------------------------------------------------


def test_reactions_from_the_picker_by_keyboard_and_search_counted_for_both(browsers):
    alice, bob, _ = alice_and_bob(browsers, "I got the tickets!")

    # The keyboard: the picker opens on the frequent ones, arrows walk it, Enter picks.
    react = action(alice, "I got the tickets!", "message-react")
    alice.js("arguments[0].focus()", react)
    alice.driver.switch_to.active_element.send_keys(Keys.ENTER)
    alice.visible(hook("emoji-picker"))
    assert alice.driver.switch_to.active_element.get_attribute("data-emoji") == "👍"
    alice.driver.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    assert alice.driver.switch_to.active_element.get_attribute("data-emoji") == "❤️"
    alice.driver.switch_to.active_element.send_keys(Keys.ENTER)
    alice.gone(hook("emoji-picker"))
    assert reactions_of(alice, "I got the tickets!") == [("❤️", 1, True)]
    bob.until(
        lambda: reactions_of(bob, "I got the tickets!") == [("❤️", 1, False)],
        "bob: alice's reaction did not arrive",
    )

    # Bob adds his to the same one from its count; both see two, each their own highlighted.
    bob.find(hook("reaction"), bob.message_element("I got the tickets!")).click()
    bob.until(lambda: reactions_of(bob, "I got the tickets!") == [("❤️", 2, True)], "bob: no 2")
    alice.until(
        lambda: reactions_of(alice, "I got the tickets!") == [("❤️", 2, True)], "alice: no 2"
    )
    # Who reacted, on focus (and on hover).
    count = alice.find(hook("reaction"), alice.message_element("I got the tickets!"))
    alice.js("arguments[0].focus()", count)
    who = alice.visible(hook("reaction-who"))
    assert who.text == "bob and you reacted with red heart. Press to take yours off."
    assert count.get_attribute("aria-describedby") == who.get_attribute("id")

    # The search over every emoji; Escape closes the picker and gives the focus back.
    react = action(alice, "I got the tickets!", "message-react")
    react.click()
    search = alice.visible(hook("emoji-search"))
    search.send_keys("pizza")
    alice.until(
        lambda: "🍕"
        in [b.get_attribute("data-emoji") for b in alice.find_all(hook("emoji-choice"))],
        "pizza was not found",
    )
    search.send_keys(Keys.ARROW_DOWN)
    assert alice.driver.switch_to.active_element.get_attribute("data-emoji") == "🍕"
    alice.driver.switch_to.active_element.send_keys(Keys.ENTER)
    bob.until(
        lambda: reactions_of(bob, "I got the tickets!") == [("❤️", 2, True), ("🍕", 1, False)],
        "bob: the pizza did not arrive",
    )
    react = action(alice, "I got the tickets!", "message-react")
    react.click()
    alice.visible(hook("emoji-picker"))
    alice.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    alice.gone(hook("emoji-picker"))
    assert alice.focused_testid() == "message-react"

    # Alice takes her heart off: one left, Bob's.
    alice.find(hook("reaction"), alice.message_element("I got the tickets!")).click()
    bob.until(
        lambda: reactions_of(bob, "I got the tickets!") == [("❤️", 1, True), ("🍕", 1, False)],
        "bob: alice's heart did not go",
    )
    assert sorted(Reaction.objects.values_list("user__username", "emoji")) == [
        ("alice", "🍕"),
        ("bob", "❤️"),
    ]


# -- mentions -----------------------------------------------------------------------------


def test_a_mention_picked_from_the_autocomplete_is_highlighted_for_the_person_named(browsers):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    UserFactory(username="bobby")  # not in the group: never offered
    group = services.conversation_create_group(
        creator=alice_user, others=[bob_user, carol_user], title="Weekend"
    )
    say(carol_user, group, "Who brings the map?")
    alice = browsers("alice")
    bob = browsers("bob")
    alice.log_in("alice", f"/c/{group.pk}/")
    bob.log_in("bob", "/")
    alice.wait_message("Who brings the map?")

    box = alice.by_testid("composer-input")
    box.send_keys("I think @")
    alice.visible(hook("mention-list"))
    assert [o.get_attribute("data-username") for o in alice.find_all(hook("mention-option"))] == [
        "bob",
        "carol",
    ], "the members but oneself"
    box.send_keys("b")
    alice.until(
        lambda: [o.get_attribute("data-username") for o in alice.find_all(hook("mention-option"))]
        == ["bob"],
        "the list did not narrow to bob",
    )
    listbox = alice.by_testid("mention-list")
    assert listbox.get_attribute("role") == "listbox"
    active = box.get_attribute("aria-activedescendant")
    assert active and alice.find(f"#{active}").get_attribute("aria-selected") == "true"
    box.send_keys(Keys.ENTER)  # picks, and does not send
    alice.gone(hook("mention-list"))
    assert alice.composer() == "I think @bob "
    box.send_keys("does")
    box.send_keys(Keys.ENTER)
    alice.wait_message("I think @bob does")
    mention = alice.find(hook("mention"), alice.message_element("I think @bob does"))
    assert mention.text == "@bob" and "is-me" not in mention.get_attribute("class")

    # Bob, on his inbox: the group shows an unread mention beside its unread count.
    bob.until(
        lambda: bob.find(hook("mention-badge"), bob.inbox_item(group.pk)).is_displayed(),
        "bob: no mention badge",
    )
    assert bob.badge(group.pk) == "2"
    assert "1 mention of you" in bob.inbox_item(group.pk).get_attribute("textContent")
    bob.inbox_item(group.pk).click()
    bob.wait_message("I think @bob does")
    mine = bob.find(hook("mention"), bob.message_element("I think @bob does"))
    assert "is-me" in mine.get_attribute("class"), "highlighted for the person named"
    bob.until(
        lambda: not bob.find(hook("mention-badge"), bob.inbox_item(group.pk)).is_displayed(),
        "bob: the mention badge stayed after reading",
    )
    # Escape closes the list without clearing anything.
    box.send_keys("and @c")
    alice.visible(hook("mention-list"))
    box.send_keys(Keys.ESCAPE)
    alice.gone(hook("mention-list"))
    assert alice.composer() == "and @c"


# -- photos -------------------------------------------------------------------------------


def png(width: int = 64, height: int = 48) -> bytes:
    """A PNG picture made here: an evening sky with a low sun, so that it is not blank."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            (255 - 120 * y // height, 120 + 60 * y // height, 80 + 140 * y // height)
            for y in range(height)
            for x in range(width)
        ]
    )
    sun = min(width, height) // 4
    ImageDraw.Draw(image).ellipse(
        (width // 2 - sun, height - sun, width // 2 + sun, height + sun), fill=(255, 214, 102)
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


PASTE = """
const [box, b64, name] = arguments;
const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const data = new DataTransfer();
data.items.add(new File([bytes], name, { type: "image/png" }));
box.focus();
const paste = { clipboardData: data, bubbles: true, cancelable: true };
box.dispatchEvent(new ClipboardEvent("paste", paste));
"""


def paste_picture(
    browser: Browser, name: str = "image.png", size: tuple[int, int] = (64, 48)
) -> None:
    """Paste a picture into the composer, as Ctrl+V of a copied image does."""
    picture = base64.b64encode(png(*size)).decode()
    browser.js(PASTE, browser.by_testid("composer-input"), picture, name)


def test_a_photo_pasted_in_the_composer_is_uploaded_sent_and_opened_by_the_other(browsers):
    alice, bob, _ = alice_and_bob(browsers, "Send me the picture")

    paste_picture(alice)
    chip = alice.visible(hook("composer-file"))
    assert alice.find(hook("file-name"), chip).text == "image.png"
    alice.until(
        lambda: alice.by_testid("composer-file").get_attribute("data-state") == "ready",
        "alice: the upload did not finish",
    )
    alice.type("Here it is")
    alice.by_testid("composer-input").send_keys(Keys.ENTER)
    alice.wait_message("Here it is")
    alice.gone(hook("composer-file"))
    sent = Message.objects.get(body="Here it is")

    # Bob sees the thumbnail at once, and opens the picture whole; Escape closes it.
    bob.wait_message("Here it is")
    thumb = bob.find(hook("attachment-image"), bob.message_element("Here it is"))
    image = bob.find("img", thumb)
    bob.until(lambda: bob.js("return arguments[0].naturalWidth > 0", image), "no thumbnail")
    assert image.get_attribute("alt") == "image.png"
    thumb.click()
    viewer = bob.visible(hook("viewer"))
    assert bob.by_testid("viewer-title").text == "image.png"
    full = bob.by_testid("viewer-image")
    bob.until(lambda: bob.js("return arguments[0].naturalWidth", full) == 64, "no full picture")
    bob.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    bob.until(lambda: not viewer.get_attribute("open"), "bob: the viewer did not close")
    assert bob.focused_testid() == "attachment-image", "the focus goes back to the thumbnail"
    assert sent.pk


def test_a_photo_whose_upload_a_reload_cut_is_uploaded_again_and_sent_once(browsers):
    alice, bob, with_bob = alice_and_bob(browsers, "Did you take a picture?")
    alice_user = User.objects.get(username="alice")

    # The upload cannot get through (as on a train in a tunnel): the message waits for it.
    alice.cdp("Network.enable")
    alice.cdp("Network.setBlockedURLs", {"urls": ["*/api/uploads/*"]})
    paste_picture(alice, "tunnel.png")
    alice.visible(hook("composer-file"))
    alice.type("From the train")
    alice.by_testid("composer-input").send_keys(Keys.ENTER)
    waiting = alice.wait_message("From the train", state="pending")
    assert alice.find_all(hook("pending-file"), alice.message_element("From the train"))
    assert not Message.objects.filter(body="From the train").exists()

    # A reload cuts it: the message and its file are still waiting after it, and once the
    # upload gets through it is stored once, with its file, under the same client_id.
    alice.reload()
    again = alice.wait_message("From the train", state="pending")
    assert again["client_id"] == waiting["client_id"]
    # A second tab finds the same message waiting, and leaves its upload to the first.
    first_tab = alice.driver.current_window_handle
    alice.driver.switch_to.new_window("tab")
    alice.open(f"/c/{with_bob.pk}/")
    alice.wait_message("From the train", state="pending")
    second_tab = alice.driver.current_window_handle
    alice.driver.switch_to.window(first_tab)
    alice.cdp("Network.setBlockedURLs", {"urls": []})
    for tab in (second_tab, first_tab):  # the network is back: waiting uploads go now
        alice.driver.switch_to.window(tab)
        alice.js("window.dispatchEvent(new Event('online'))")
    alice.wait_message("From the train", timeout=30)
    time.sleep(1)  # time enough for a second upload to arrive, were there one
    sent = Message.objects.get(body="From the train")
    assert sent.client_id == waiting["client_id"]
    assert [(u.name, u.content_type) for u in sent.attachments.all()] == [
        ("tunnel.png", "image/png")
    ]
    assert Upload.objects.filter(name="tunnel.png").count() == 1, "uploaded by one tab only"
    bob.wait_message("From the train")
    assert bob.find(hook("attachment-image"), bob.message_element("From the train"))
    assert (
        alice.js("return localStorage.getItem('chat:' + arguments[0] + ':outbox')", alice_user.pk)
        is None
    )


DROP = """
const [target, text, name] = arguments;
const data = new DataTransfer();
data.items.add(new File([text], name, { type: "text/plain" }));
for (const type of ["dragenter", "dragover", "drop"]) {
  const init = { dataTransfer: data, bubbles: true, cancelable: true };
  target.dispatchEvent(new DragEvent(type, init));
}
"""


def test_files_from_the_attach_button_or_dropped_go_without_text_as_named_chips(
    browsers, tmp_path
):
    alice, bob, with_bob = alice_and_bob(browsers, "What do we pack?")

    # The attach button opens the system's file chooser, which the driver answers instead.
    notes = tmp_path / "notes.txt"
    notes.write_text("Bring: map, snacks, tickets\n")
    chooser = alice.by_testid("file-input")
    alice.js("arguments[0].hidden = false", chooser)
    chooser.send_keys(str(notes))
    alice.js("arguments[0].hidden = true", chooser)
    # A file dropped on the conversation joins it.
    alice.js(DROP, alice.by_testid("conversation"), "socks\nboots\n", "list.txt")
    alice.until(
        lambda: [
            (chip.get_attribute("data-state"), alice.find(hook("file-name"), chip).text)
            for chip in alice.find_all(hook("composer-file"))
        ]
        == [("ready", "notes.txt"), ("ready", "list.txt")],
        "alice: the two files were not uploaded",
    )
    assert alice.by_testid("drop-zone").get_attribute("hidden") is not None

    # Enter with no text sends the files alone.
    alice.by_testid("composer-input").send_keys(Keys.ENTER)
    alice.gone(hook("composer-file"))
    shown = bob.until(lambda: bob.find_all(hook("attachment-file")), "bob: no file chips")
    sent = Message.objects.get(attachments__name="notes.txt")
    assert sent.body == ""
    assert [(c.get_attribute("data-name"), c.text.split("\n")) for c in shown] == [
        ("notes.txt", ["notes.txt", "28 bytes"]),
        ("list.txt", ["list.txt", "12 bytes"]),
    ]
    assert shown[0].get_attribute("download") == "notes.txt"
    assert shown[0].get_attribute("href").endswith(sent.attachments.get(name="notes.txt").pk + "/")
    preview = bob.find(hook("inbox-preview"), bob.inbox_item(with_bob.pk)).text
    assert preview == "2 files"


def noise_png(side: int) -> bytes:
    """A PNG of random pixels: it barely compresses, so it takes about 3 bytes a pixel."""
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


def test_an_upload_shows_a_preview_and_its_progress_and_cancelling_it_sends_nothing(
    browsers, tmp_path
):
    alice, bob, _ = alice_and_bob(browsers, "Any photos from the hike?")

    # A slow uplink, as on a train: a megabyte takes about twenty seconds to go up.
    alice.cdp("Network.enable")
    alice.cdp(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 50_000},
    )
    summit = tmp_path / "summit.png"
    summit.write_bytes(noise_png(580))
    chooser = alice.by_testid("file-input")
    alice.js("arguments[0].hidden = false", chooser)
    chooser.send_keys(str(summit))
    alice.js("arguments[0].hidden = true", chooser)

    chip = alice.visible(hook("composer-file"))
    assert chip.get_attribute("data-state") == "uploading"
    assert alice.find(hook("file-name"), chip).text == "summit.png"
    # The picture shows in the composer before it is up.
    preview = alice.find("img.file-thumb", chip)
    alice.until(
        lambda: alice.js("return arguments[0].naturalWidth", preview) > 0,
        "alice: no preview of the picture in the composer",
    )
    bar = alice.find(hook("upload-progress"), chip)
    assert bar.get_attribute("aria-label") == "Uploading summit.png"
    alice.until(
        lambda: 0 < int(alice.find(hook("upload-progress")).get_attribute("value")) < 100,
        "alice: the progress bar did not move",
    )
    cancel = alice.find(hook("file-remove"), alice.by_testid("composer-file"))
    assert cancel.get_attribute("aria-label") == "Cancel the upload of summit.png"
    cancel.click()
    alice.gone(hook("composer-file"))
    assert alice.focused_testid() == "composer-input"

    # Back on a normal link, the message goes without the cancelled picture.
    alice.cdp(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    alice.send("Only words, the photo can wait")
    bob.wait_message("Only words, the photo can wait")
    assert (
        bob.find_all(
            hook("attachment-image"), bob.message_element("Only words, the photo can wait")
        )
        == []
    )
    time.sleep(1)  # a cancelled upload that still reached the server would be stored by now
    assert not Upload.objects.filter(name="summit.png").exists()
    assert alice.script_errors() == []


# -- all four, checked and photographed -----------------------------------------------------


def test_axe_finds_nothing_on_a_conversation_with_a_reply_reactions_a_mention_and_a_photo(
    browsers,
):
    alice_user = UserFactory(username="alice")
    bob_user = UserFactory(username="bob")
    carol_user = UserFactory(username="carol")
    group = services.conversation_create_group(
        creator=alice_user, others=[bob_user, carol_user], title="Weekend trip"
    )
    plan = say(carol_user, group, "Train at 9:40 on Saturday, platform 4. Who has the map?")
    reply = answer(bob_user, group, "I do! @alice can you bring snacks?", plan)
    reactions.reaction_add(user=carol_user, message_id=reply.pk, emoji="👍")
    reactions.reaction_add(user=bob_user, message_id=plan.pk, emoji="🎉")
    reactions.reaction_add(user=carol_user, message_id=plan.pk, emoji="🎉")
    alice = browsers("alice", size=(1100, 760))
    alice.log_in("alice", f"/c/{group.pk}/")
    alice.wait_message("I do! @alice can you bring snacks?")

    alice.find(
        hook("reaction"), alice.message_element("I do! @alice can you bring snacks?")
    ).click()
    alice.until(
        lambda: reactions_of(alice, "I do! @alice can you bring snacks?") == [("👍", 2, True)],
        "alice: her reaction did not show",
    )
    action(alice, "I do! @alice can you bring snacks?", "message-reply").click()
    paste_picture(alice, "sunset.png", (360, 240))
    alice.until(
        lambda: alice.by_testid("composer-file").get_attribute("data-state") == "ready",
        "alice: the upload did not finish",
    )
    alice.type("Sure! And the view from here")
    alice.by_testid("composer-input").send_keys(Keys.ENTER)
    alice.wait_message("Sure! And the view from here")
    thumb = alice.find("img", alice.find(hook("attachment-image")))
    alice.until(lambda: alice.js("return arguments[0].naturalWidth > 0", thumb), "no thumbnail")
    alice.type("@c")
    alice.visible(hook("mention-list"))

    audit = Audit()
    audit.check(alice, "a conversation with a reply, reactions, a mention and a photo")
    alice.by_testid("composer-input").send_keys(Keys.ESCAPE)
    action(alice, "Sure! And the view from here", "message-react").click()
    alice.visible(hook("emoji-picker"))
    audit.check(alice, "the emoji picker open")
    alice.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    # Bob, in dark mode: the same conversation, named in it by no one, with his reply quoted.
    bob = browsers("bob", dark=True)
    bob.log_in("bob", f"/c/{group.pk}/")
    bob.wait_message("Sure! And the view from here")
    reacted = bob.find(hook("reaction"), bob.message_element("I do! @alice can you bring snacks?"))
    bob.js("arguments[0].focus()", reacted)
    bob.visible(hook("reaction-who"))
    audit.check(bob, "the same conversation in dark mode, a reaction's names shown")
    audit.assert_clean()

    # The README's picture (docs/screenshots/rich-messages.png is a copy of this one): the
    # conversation as it rests, nothing open.
    alice.by_testid("composer-input").send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    hover(alice, alice.by_testid("conversation-title"))
    alice.js("document.activeElement.blur()")
    alice.js(
        "return Promise.all(document.getAnimations().map((a) => a.finished.catch(() => null)))"
    )
    shot = shared.screenshot_path("rich-messages", "alice")
    shot.parent.mkdir(parents=True, exist_ok=True)
    alice.driver.save_screenshot(str(shot))
