import assert from "node:assert/strict";
import { test } from "node:test";

import { createStore } from "../../static/messaging/state/storage.js";
import { createOutbox, isReady, retryDelay, sendFrame } from "../../static/messaging/state/outbox.js";
import { fakeStorage, fakeTimers } from "./helpers.js";

const KEY = "chat:1:outbox";

function outboxOn(area, { timers = fakeTimers(), onRetryDue = () => {} } = {}) {
  return createOutbox({ store: createStore(area), key: KEY, timers, onRetryDue });
}

function write(outbox, clientId, body = "hello", conversation = 12) {
  return outbox.add({ clientId, conversation, body, createdAt: "2026-11-26T10:00:00Z" });
}

test("a message written offline is still waiting after a reload, in the order written", () => {
  const area = fakeStorage();
  const first = outboxOn(area);
  write(first, "a", "first");
  write(first, "b", "second");

  const afterReload = outboxOn(area);
  assert.deepEqual(
    afterReload.unsent().map((i) => [i.client_id, i.body, i.state]),
    [
      ["a", "first", "pending"],
      ["b", "second", "pending"],
    ]
  );
});

test("an acknowledged message leaves the outbox and the storage key goes when it is empty", () => {
  const area = fakeStorage();
  const outbox = outboxOn(area);
  write(outbox, "a");
  write(outbox, "b");
  assert.equal(outbox.ack("a").client_id, "a");
  assert.deepEqual(outbox.all().map((i) => i.client_id), ["b"]);
  assert.equal(outbox.ack("a"), null, "a second ack changes nothing");
  outbox.ack("b");
  assert.equal(area.getItem(KEY), null);
});

test("garbage in the storage is ignored rather than sent", () => {
  const area = fakeStorage();
  area.setItem(KEY, JSON.stringify([{ client_id: 5 }, null, { client_id: "ok", body: "x", conversation: 3 }]));
  assert.deepEqual(outboxOn(area).all().map((i) => i.client_id), ["ok"]);
  area.setItem(KEY, "{not json");
  assert.deepEqual(outboxOn(area).all(), []);
});

test("a refused message is kept as failed with its reason, and is not resent on reconnect", () => {
  const outbox = outboxOn(fakeStorage());
  write(outbox, "a");
  const failed = outbox.fail("a", { code: "cannot_send", detail: "blocked" });
  assert.equal(failed.state, "failed");
  assert.deepEqual(failed.error, { code: "cannot_send", detail: "blocked", retry_after: undefined });
  assert.equal(failed.attempts, 1);
  assert.deepEqual(outbox.unsent(), []);
  assert.equal(outbox.fail("unknown", { code: "empty" }), null);
});

test("a rate-limited send is retried on its own once the wait the server named is over", () => {
  const timers = fakeTimers();
  let due = 0;
  const outbox = outboxOn(fakeStorage(), { timers, onRetryDue: () => due++ });
  write(outbox, "a");
  outbox.fail("a", { code: "rate_limited", retry_after: 3 });
  timers.advance(3249);
  assert.equal(due, 0);
  timers.advance(1);
  assert.equal(due, 1);
  assert.deepEqual(outbox.dueForRetry().map((i) => i.client_id), ["a"]);
});

test("an unavailable server is retried with a doubling wait, then left to the person", () => {
  const item = { state: "failed", error: { code: "unavailable" }, attempts: 1 };
  const waits = [1, 2, 3, 4, 5].map((attempts) => retryDelay({ ...item, attempts }));
  assert.deepEqual(waits, [2000, 4000, 8000, 16000, null]);
  assert.equal(retryDelay({ state: "failed", error: { code: "too_long" }, attempts: 1 }), null);
  assert.equal(retryDelay({ state: "pending", error: null, attempts: 0 }), null);
});

test("acknowledging a message cancels its planned retry", () => {
  const timers = fakeTimers();
  let due = 0;
  const outbox = outboxOn(fakeStorage(), { timers, onRetryDue: () => due++ });
  write(outbox, "a");
  outbox.fail("a", { code: "unavailable" });
  outbox.ack("a");
  timers.advance(60000);
  assert.equal(due, 0);
});

test("retrying a failed message makes it pending again; a manual retry starts the count over", () => {
  const outbox = outboxOn(fakeStorage());
  write(outbox, "a");
  outbox.fail("a", { code: "unavailable" });
  outbox.fail("a", { code: "unavailable" });
  const again = outbox.retry("a", { manual: true, newClientId: () => "unused" });
  assert.equal(again.client_id, "a");
  assert.equal(again.state, "pending");
  assert.equal(again.attempts, 0);
  assert.equal(outbox.get("a").state, "pending");
});

test("retrying after a conflict sends it as a new message, in the same place in the outbox", () => {
  const outbox = outboxOn(fakeStorage());
  write(outbox, "a", "first");
  write(outbox, "b", "second");
  outbox.fail("a", { code: "conflict" });
  const fresh = outbox.retry("a", { newClientId: () => "a2" });
  assert.equal(fresh.client_id, "a2");
  assert.equal(fresh.body, "first");
  assert.deepEqual(outbox.all().map((i) => [i.client_id, i.state]), [
    ["a2", "pending"],
    ["b", "pending"],
  ]);
});

test("leaving a conversation drops what waited to be sent there, and only that", () => {
  const outbox = outboxOn(fakeStorage());
  write(outbox, "a", "to 12", 12);
  write(outbox, "b", "to 13", 13);
  outbox.dropConversation(12);
  assert.deepEqual(outbox.all().map((i) => i.client_id), ["b"]);
});

test("after logging out nothing more is written to the browser", () => {
  const area = fakeStorage();
  const store = createStore(area);
  const outbox = createOutbox({ store, key: KEY, timers: fakeTimers() });
  store.seal();
  write(outbox, "a");
  assert.equal(area.getItem(KEY), null);
});

test("a first message to someone waits with their name and goes to it, also after a reload", () => {
  const area = fakeStorage();
  const outbox = outboxOn(area);
  outbox.add({ clientId: "a", to: "carol", body: "Hi Carol", createdAt: "2026-11-26T10:00:00Z" });
  const afterReload = outboxOn(area);
  const [item] = afterReload.unsent();
  assert.equal(item.conversation, null);
  assert.equal(item.to, "carol");
  assert.deepEqual(sendFrame(item), { type: "message.send", body: "Hi Carol", client_id: "a", to: "carol" });
  assert.deepEqual(sendFrame(write(afterReload, "b")), {
    type: "message.send",
    body: "hello",
    client_id: "b",
    conversation: 12,
  });
});

test("once the conversation is open, first messages show there and still go to the name", () => {
  const outbox = outboxOn(fakeStorage());
  outbox.add({ clientId: "a", to: "carol", body: "one", createdAt: "2026-11-26T10:00:00Z" });
  outbox.add({ clientId: "b", to: "dave", body: "two", createdAt: "2026-11-26T10:00:00Z" });
  outbox.assign("carol", 31);
  assert.deepEqual(
    outbox.all().map((i) => [i.client_id, i.conversation]),
    [
      ["a", 31],
      ["b", null],
    ]
  );
  // A retry names the same place as the first try, or the server would call it a conflict.
  assert.equal(sendFrame(outbox.get("a")).to, "carol");
  outbox.dropConversation(31);
  assert.deepEqual(outbox.all().map((i) => i.client_id), ["b"]);
});

// -- replies and files ------------------------------------------------------------------

const photo = { key: "f1", name: "photo.png", size: 2048, type: "image/png" };
const notes = { key: "f2", name: "notes.pdf", size: 9000, type: "application/pdf" };
const up = (id, name = "photo.png") => ({ id, name, size: 2048, content_type: "image/png", width: 4, height: 4 });

test("a reply goes with the id of the message it answers, and shows its quote meanwhile", () => {
  const outbox = outboxOn(fakeStorage());
  const quote = { id: 40, sender: { id: 2, username: "bob" }, body: "lunch?", deleted: false };
  const item = outbox.add({ clientId: "a", conversation: 12, body: "yes", createdAt: "t", replyTo: 40, quote });
  assert.deepEqual(sendFrame(item), { type: "message.send", body: "yes", client_id: "a", conversation: 12, reply_to: 40 });
  assert.deepEqual(outbox.get("a").quote, quote);
});

test("a message with files waits until every file is uploaded, then goes with their ids", () => {
  const area = fakeStorage();
  const outbox = outboxOn(area);
  outbox.add({ clientId: "a", conversation: 12, body: "", createdAt: "t", attachments: [photo, notes] });
  outbox.add({ clientId: "b", conversation: 12, body: "plain", createdAt: "t" });
  assert.deepEqual(outbox.unsent().map((i) => i.client_id), ["b"], "not before its files are up");
  assert.deepEqual(outbox.uploading().map((i) => i.client_id), ["a"]);
  assert.equal(outbox.holding("f2").client_id, "a");

  outbox.uploaded("a", "f1", up("u1"));
  assert.equal(isReady(outboxOn(area).get("a")), false, "one file is still to go, after a reload too");
  outbox.uploaded("a", "f2", up("u2", "notes.pdf"));
  const ready = outboxOn(area).get("a");
  assert.equal(isReady(ready), true);
  assert.deepEqual(sendFrame(ready), { type: "message.send", body: "", client_id: "a", conversation: 12, attachments: ["u1", "u2"] });
  assert.deepEqual(outbox.unsent().map((i) => i.client_id), ["a", "b"]);
});

test("a file taken off a waiting message leaves the rest; the last one of an empty message takes it away", () => {
  const outbox = outboxOn(fakeStorage());
  outbox.add({ clientId: "a", conversation: 12, body: "", createdAt: "t", attachments: [photo, notes] });
  assert.deepEqual(outbox.dropFile("a", "f1").attachments.map((f) => f.key), ["f2"]);
  assert.equal(outbox.dropFile("a", "f2"), null);
  assert.equal(outbox.get("a"), null);

  outbox.add({ clientId: "b", conversation: 12, body: "with words", createdAt: "t", attachments: [photo] });
  const kept = outbox.dropFile("b", "f1");
  assert.equal(kept.body, "with words");
  assert.equal(isReady(kept), true, "a plain message now");
  assert.deepEqual(sendFrame(kept), { type: "message.send", body: "with words", client_id: "b", conversation: 12 });
});

test("a retried message with files keeps its client_id, so that the server stores it once", () => {
  const outbox = outboxOn(fakeStorage());
  outbox.add({ clientId: "a", conversation: 12, body: "", createdAt: "t", attachments: [photo] });
  outbox.uploaded("a", "f1", up("u1"));
  outbox.fail("a", { code: "unavailable" });
  assert.equal(outbox.retry("a").client_id, "a");
  assert.deepEqual(sendFrame(outbox.get("a")).attachments, ["u1"]);
});

test("stored files that make no sense are not sent", () => {
  const area = fakeStorage();
  area.setItem(KEY, JSON.stringify([{ client_id: "x", body: "", conversation: 3, attachments: [{ key: 1 }] }]));
  assert.deepEqual(outboxOn(area).all(), []);
});
