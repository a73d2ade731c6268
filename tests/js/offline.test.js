import assert from "node:assert/strict";
import { test } from "node:test";

import {
  KEEP_CONVERSATIONS,
  KEEP_MESSAGES,
  inboxRecord,
  loadRecords,
  messagesRecord,
  offlineBoot,
  staleKeys,
} from "../../static/messaging/state/offline.js";
import { createChatState, openCurrent } from "../../static/messaging/state/chat.js";
import { fakeTimers } from "./helpers.js";

const me = { id: 7, username: "alice" };

function chatWith(conversations) {
  const state = createChatState({ me });
  for (let id = 1; id <= conversations; id++) {
    state.convs.set(id, { id, kind: "direct", title: "", members: [me], unread: 0, last_message: null });
    state.order.push(id);
  }
  return state;
}

function message(id) {
  return { id, seq: id, conversation: 1, body: "message " + id, sender: me };
}

test("the inbox kept for an offline start is its newest conversations, bounded", () => {
  const record = inboxRecord(chatWith(KEEP_CONVERSATIONS + 5), 1000);
  assert.equal(record.key, "7:inbox");
  assert.equal(record.conversations.length, KEEP_CONVERSATIONS);
  assert.deepEqual(record.conversations.slice(0, 3).map((c) => c.id), [1, 2, 3]);
});

test("the open conversation's newest messages are kept, and whether older ones exist", () => {
  const state = chatWith(1);
  assert.equal(messagesRecord(state, 0), null, "nothing open: nothing kept");
  const cur = openCurrent(state, 1);
  assert.equal(messagesRecord(state, 0), null, "not loaded yet");
  cur.loaded = true;
  for (let id = 1; id <= KEEP_MESSAGES + 10; id++) cur.msgs.set(id, message(id));
  const record = messagesRecord(state, 0);
  assert.equal(record.messages.length, KEEP_MESSAGES);
  assert.equal(record.messages[0].id, 11);
  assert.equal(record.messages.at(-1).id, KEEP_MESSAGES + 10);
  assert.equal(record.hasMore, true, "the shown history offers older messages");
  cur.detached = true;
  assert.equal(messagesRecord(state, 0), null, "a stretch around a search hit is not the newest");
});

test("what is no longer shown is dropped: other people's copies and conversations out of the inbox", () => {
  const inbox = { key: "7:inbox", user: 7, conversations: [{ id: 1 }, { id: 2 }] };
  assert.deepEqual(staleKeys(["7:inbox", "7:c:1", "7:c:2", "7:c:3", "8:inbox", "8:c:1"], inbox), [
    "7:c:3",
    "8:inbox",
    "8:c:1",
  ]);
});

test("an offline start shows the person's own copy and the conversation its address names", () => {
  const records = [
    { key: "7:inbox", user: 7, conversations: [{ id: 1 }, { id: 2 }], savedAt: 5 },
    { key: "7:c:2", user: 7, conversation: 2, messages: [message(3)], hasMore: true },
    { key: "8:inbox", user: 8, conversations: [{ id: 9 }] },
    { key: "8:c:9", user: 8, conversation: 9, messages: [message(4)] },
  ];
  const boot = offlineBoot(records, 7, "/c/2/");
  assert.deepEqual(boot.conversations.map((c) => c.id), [1, 2]);
  assert.equal(boot.conversation, 2);
  assert.deepEqual(boot.histories.get(2), { history: [message(3)], hasMore: true });
  assert.equal(boot.histories.has(9), false, "never someone else's messages");
  assert.equal(offlineBoot(records, 7, "/").conversation, null);
  assert.deepEqual(offlineBoot([], 7, "/").conversations, []);
});

test("an offline start that cannot read the copy in time draws an empty inbox rather than nothing", async () => {
  const stuck = { open: () => ({}) }; // a database that never answers
  const timers = fakeTimers();
  const loading = loadRecords(stuck, { waitMs: 3000, timers });
  timers.advance(3000);
  assert.deepEqual(await loading, []);
  assert.deepEqual(await loadRecords(null), [], "no IndexedDB at all");
});
