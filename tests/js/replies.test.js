import assert from "node:assert/strict";
import { test } from "node:test";

import { quoteOf, quoteWords, refreshQuotes } from "../../static/messaging/state/replies.js";
import { alice, bob, message } from "./helpers.js";

test("a quote holds who wrote the message and the start of its text, as the server keeps it", () => {
  const long = "x".repeat(150) + "😀".repeat(100);
  const quote = quoteOf(message({ id: 5, body: long }));
  assert.equal(Array.from(quote.body).length, 200, "200 code points, an emoji counting once");
  assert.deepEqual({ ...quote, body: "" }, { id: 5, sender: bob, body: "", deleted: false });
  assert.deepEqual(quoteOf(message({ id: 6, body: "", deleted: true })), { id: 6, sender: bob, body: "", deleted: true });
});

test("a quote in words: the sender (or you), the text on one line, a deleted one said so", () => {
  assert.deepEqual(quoteWords({ id: 1, sender: bob, body: "see\nyou", deleted: false }, alice.id), { who: "bob", text: "see you" });
  assert.deepEqual(quoteWords({ id: 1, sender: alice, body: "hi", deleted: false }, alice.id), { who: "You", text: "hi" });
  assert.deepEqual(quoteWords({ id: 1, sender: bob, body: "", deleted: true }, alice.id), { who: "bob", text: "deleted message" });
  assert.deepEqual(quoteWords({ id: 1, sender: null, body: "", deleted: true }, alice.id), { who: "Someone", text: "deleted message" }, "erased since");
  assert.deepEqual(quoteWords({ id: 1, sender: bob, body: "", deleted: false }, alice.id, { attachments: [{ name: "a.pdf" }] }), { who: "bob", text: "a.pdf" });
});

test("replies on screen follow an edit or a deletion of the message they quote", () => {
  const original = message({ id: 5, body: "first words" });
  const reply = message({ id: 6, body: "answer", reply_to: quoteOf(original) });
  const other = message({ id: 7, body: "unrelated", reply_to: null });
  const shown = new Map([[5, original], [6, reply], [7, other]]);

  assert.deepEqual(refreshQuotes(shown, { ...original, seq: 50, body: "better words" }), [6]);
  assert.equal(shown.get(6).reply_to.body, "better words");
  assert.deepEqual(refreshQuotes(shown, { ...original, seq: 51, body: "better words" }), [], "nothing changed in the quote");

  assert.deepEqual(refreshQuotes(shown, { ...original, seq: 52, body: "", deleted: true }), [6]);
  assert.deepEqual(shown.get(6).reply_to, { id: 5, sender: bob, body: "", deleted: true });
});
