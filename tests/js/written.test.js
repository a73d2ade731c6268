import assert from "node:assert/strict";
import { test } from "node:test";

import { draftPreview, previewText } from "../../static/messaging/state/conversations.js";
import { createStore } from "../../static/messaging/state/storage.js";
import { createWrittenTimes, messageTimes, writtenAtFor } from "../../static/messaging/state/written.js";
import { isLongMessage } from "../../static/messaging/text/words.js";
import { alice, bob, direct, fakeStorage, message } from "./helpers.js";

const at = (iso) => Date.parse(iso);

test("a message sent at once shows the server's time, as everyone sees it", () => {
  const written = writtenAtFor({
    writtenLocal: "2026-11-26T10:11:20.000Z",
    ackedLocal: at("2026-11-26T10:11:20.300Z"),
    storedAt: "2026-11-26T10:11:20.200Z",
  });
  assert.equal(written, null);
  assert.deepEqual(messageTimes("2026-11-26T10:11:20.200Z", written), {
    shown: "2026-11-26T10:11:20.200Z",
    sent: null,
  });
});

test("a message answered within seconds shows one time even when its minute turned", () => {
  const written = writtenAtFor({
    writtenLocal: "2026-11-26T10:11:59.600Z",
    ackedLocal: at("2026-11-26T10:12:00.400Z"),
    storedAt: "2026-11-26T10:12:00.300Z",
  });
  assert.equal(written, null);
});

test("a message that waited keeps the time it was written, and says when it was sent", () => {
  const written = writtenAtFor({
    writtenLocal: "2026-11-26T10:11:50.000Z",
    ackedLocal: at("2026-11-26T10:12:30.000Z"),
    storedAt: "2026-11-26T10:12:29.900Z",
  });
  assert.equal(written, "2026-11-26T10:11:49.900Z");
  assert.deepEqual(messageTimes("2026-11-26T10:12:29.900Z", written), {
    shown: "2026-11-26T10:11:49.900Z",
    sent: "2026-11-26T10:12:29.900Z",
  });
});

test("a device clock that is off does not make a prompt message look late", () => {
  // This device runs five minutes behind the server; the message went out at once.
  const written = writtenAtFor({
    writtenLocal: "2026-11-26T10:06:20.000Z",
    ackedLocal: at("2026-11-26T10:06:20.100Z"),
    storedAt: "2026-11-26T10:11:20.050Z",
  });
  assert.equal(written, null);
});

test("a wait within the same minute changes nothing", () => {
  const written = writtenAtFor({
    writtenLocal: "2026-11-26T10:11:05.000Z",
    ackedLocal: at("2026-11-26T10:11:40.000Z"),
    storedAt: "2026-11-26T10:11:40.000Z",
  });
  assert.equal(written, null);
});

test("written times are kept across reloads, the oldest forgotten past 200", () => {
  const area = fakeStorage();
  const times = createWrittenTimes({ store: createStore(area), key: "chat:1:written" });
  for (let n = 0; n < 205; n++) times.remember("c" + n, "2026-11-26T10:11:00.000Z");
  const again = createWrittenTimes({ store: createStore(area), key: "chat:1:written" });
  assert.equal(again.get("c204"), "2026-11-26T10:11:00.000Z");
  assert.equal(again.get("c4"), null);
  assert.equal(again.get("c5"), "2026-11-26T10:11:00.000Z");
  times.remember("c1", null);
  assert.equal(again.get("unknown"), null);
});

test("long messages fold: past 600 characters or 12 lines", () => {
  assert.equal(isLongMessage("x".repeat(600)), false);
  assert.equal(isLongMessage("x".repeat(601)), true);
  assert.equal(isLongMessage("😀".repeat(600)), false, "counted in code points");
  assert.equal(isLongMessage(Array(12).fill("line").join("\n")), false);
  assert.equal(isLongMessage(Array(13).fill("line").join("\n")), true);
});

test("the inbox shows a draft on one line, and a moderator's removal as such", () => {
  assert.equal(draftPreview("see you\n  at  eight"), "Draft: see you at eight");
  assert.equal(draftPreview("   "), "");
  assert.equal(draftPreview(null), "");
  const hidden = message({ sender: alice, deleted: true, body: "", removed_by: "moderator" });
  assert.equal(previewText(alice, direct({ last_message: hidden })), "Message removed by a moderator");
  const deleted = message({ sender: bob, deleted: true, body: "", removed_by: null });
  assert.equal(previewText(alice, direct({ last_message: deleted })), "Message deleted");
});
