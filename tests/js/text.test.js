import assert from "node:assert/strict";
import { test } from "node:test";

import { ACTIONS, errorText, httpErrorText, offlineText, waitText } from "../../static/messaging/text/errors.js";
import { clockTime, dayLabel, ms, shortStamp } from "../../static/messaging/text/time.js";
import { codePoints, oneLine, truncate } from "../../static/messaging/text/words.js";
import { convName, previewText, typingSentence } from "../../static/messaging/state/conversations.js";
import { alice, bob, carol, direct } from "./helpers.js";

const now = new Date(2026, 10, 26, 15, 30); // Thursday 26 November 2026, local time

test("days are named the way people say them", () => {
  assert.equal(dayLabel(new Date(2026, 10, 26, 0, 5), now), "Today");
  assert.equal(dayLabel(new Date(2026, 10, 25, 23, 59), now), "Yesterday");
  assert.equal(dayLabel(new Date(2026, 10, 20, 12), now), "Friday, November 20");
  assert.equal(dayLabel(new Date(2025, 10, 20, 12), now), "Thursday, November 20, 2025");
});

test("the inbox shows the time today, then Yesterday, a weekday, a date", () => {
  const at = new Date(2026, 10, 26, 9, 7);
  assert.equal(shortStamp(at, now), clockTime(at));
  assert.equal(shortStamp(new Date(2026, 10, 25, 9), now), "Yesterday");
  assert.equal(shortStamp(new Date(2026, 10, 23, 9), now), "Mon");
  assert.equal(shortStamp(new Date(2026, 10, 10, 9), now), "Nov 10");
  assert.equal(shortStamp(new Date(2024, 0, 3, 9), now), "Jan 3, 2024");
  assert.equal(ms("not a time"), 0);
});

test("socket errors are said in plain words", () => {
  assert.equal(
    errorText({ code: "rate_limited", retry_after: 1 }),
    "You’re sending too fast. Trying again in 1 second."
  );
  assert.equal(
    errorText({ code: "rate_limited", retry_after: 2.2 }),
    "You’re sending too fast. Trying again in 3 seconds."
  );
  assert.equal(errorText({ code: "too_long" }, 4000), "This message is too long. The limit is 4,000 characters.");
  assert.equal(errorText({ code: "bad_frame", detail: "body missing" }), "The server didn’t understand the request (body missing).");
  assert.equal(errorText({ code: "something_new", detail: "Try later" }), "Try later");
  assert.equal(errorText(null), "Something went wrong.");
});

test("HTTP failures say what could not be done and what to do", () => {
  assert.equal(
    httpErrorText({ status: 0, data: null }, ACTIONS.block("bob")),
    "Couldn’t reach the server, so nothing changed. Check your connection and try again."
  );
  assert.equal(
    httpErrorText({ status: 429, data: { retry_after: 120 } }, ACTIONS.search()),
    "That’s too many requests for now. Try again in 2 minutes."
  );
  assert.equal(
    httpErrorText({ status: 400, data: { detail: "bad", errors: { q: ["search for at least one word"] } } }, ACTIONS.search()),
    "Type at least one word to search for: letters or numbers, not only symbols."
  );
  assert.equal(
    httpErrorText({ status: 403, data: { detail: "CSRF token missing" } }, ACTIONS.renameGroup()),
    "Your session has changed. Reload the page and try again."
  );
  assert.equal(httpErrorText({ status: 404, data: {} }, ACTIONS.search(), "Gone."), "Gone.");
  assert.equal(
    httpErrorText({ status: 503, data: {} }, ACTIONS.renameGroup()),
    "The server couldn’t rename the group just now. Try again in a moment."
  );
  assert.equal(httpErrorText({ status: 409, data: { detail: "it's taken" } }, ACTIONS.search()), "It’s taken.");
  assert.equal(httpErrorText({ status: 409, data: {} }, ACTIONS.addMembers(["bob", "carol", "dan"])), "Couldn’t add bob, carol, and dan.");
  assert.equal(waitText(1), "1 second");
  assert.equal(offlineText(false), "You’re offline. Messages will be sent when you’re back online.");
  assert.equal(offlineText(true), "Connection lost. Reconnecting…");
});

test("lengths count code points, previews fit on one short line", () => {
  assert.equal(codePoints("a😀b"), 3);
  assert.equal(truncate("abcdef", 4), "abc…");
  assert.equal(oneLine(" two\n lines "), "two lines");
  const group = direct({ kind: "group", title: "", members: [alice, bob, carol] });
  assert.equal(convName(alice, group), "bob, carol");
  const last = { id: 1, sender: bob, body: "line one\nline two", deleted: false };
  assert.equal(previewText(alice, { ...group, last_message: last }), "bob: line one line two");
  assert.equal(previewText(alice, direct({ last_message: { ...last, sender: alice } })), "You: line one line two");
  assert.equal(previewText(alice, direct({ last_message: { ...last, deleted: true } })), "Message deleted");
  assert.equal(typingSentence(["bob", "carol", "dan"], group), "3 people are typing…");
});
