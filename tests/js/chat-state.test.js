import assert from "node:assert/strict";
import { test } from "node:test";

import * as chat from "../../static/messaging/state/chat.js";
import { alice, bob, carol, direct, message } from "./helpers.js";

/** Alice's tab, with the conversation with Bob in her inbox, connected and caught up. */
function aliceOnline({ visible = true, conv = direct() } = {}) {
  let clock = 1000;
  const state = chat.createChatState({ me: alice, isVisible: () => visible, now: () => clock });
  chat.setConversations(state, [conv]);
  chat.onReady(state, { type: "ready", user: alice, last_seq: 0, online: [] });
  chat.onCaughtUp(state);
  state.tick = (ms) => (clock += ms);
  return state;
}

test("a push that follows the last one seen is applied and moves the sync cursor", () => {
  const state = aliceOnline();
  const pushed = chat.onPush(state, { type: "message.new", message: message({ id: 5, seq: 5 }), prev_seq: 0 });
  assert.equal(pushed.needSync, false);
  assert.equal(state.maxSeq, 5);
  assert.equal(state.convs.get(12).last_message.id, 5);
  assert.equal(state.convs.get(12).unread, 1);
});

test("a push after a gap asks for a sync from the last change seen", () => {
  const state = aliceOnline();
  chat.onPush(state, { type: "message.new", message: message({ id: 5, seq: 5 }), prev_seq: 0 });
  // Seq 6 and 7 were dropped on the way: this push says the one before it was 7.
  const pushed = chat.onPush(state, { type: "message.new", message: message({ id: 8, seq: 8 }), prev_seq: 7 });
  assert.equal(pushed.needSync, true);
  assert.equal(pushed.applied.forCur.length, 0, "no conversation is open");
  assert.equal(state.convs.get(12).last_message.id, 8, "the message itself is shown at once");
  assert.deepEqual(chat.requestSync(state), { type: "sync", after: 5 });
});

test("one sync at a time: a gap seen while one runs asks again when it answers", () => {
  const state = aliceOnline();
  assert.deepEqual(chat.requestSync(state), { type: "sync", after: 0 });
  assert.equal(chat.requestSync(state), null);
  const { next } = chat.onSyncResult(state, { type: "sync.result", messages: [], more: false });
  assert.equal(next, "sync");
  assert.deepEqual(chat.requestSync(state), { type: "sync", after: 0 });
  assert.equal(chat.onSyncResult(state, { type: "sync.result", messages: [], more: false }).next, null);
});

test("sync results are paged: with `more`, the next page is asked for after the last seq", () => {
  const state = aliceOnline();
  chat.requestSync(state);
  const page = [message({ id: 1, seq: 1 }), message({ id: 2, seq: 2 })];
  const first = chat.onSyncResult(state, { type: "sync.result", messages: page, more: true });
  assert.equal(first.next, "sync");
  assert.deepEqual(chat.requestSync(state), { type: "sync", after: 2 });
  const last = chat.onSyncResult(state, { type: "sync.result", messages: [message({ id: 3, seq: 3 })], more: false });
  assert.equal(last.next, null);
  assert.equal(state.maxSeq, 3);
  assert.equal(state.convs.get(12).unread, 3);
});

test("after a reconnection the client is caught up once the sync has answered", () => {
  const state = aliceOnline();
  chat.onSocketClosed(state);
  assert.equal(state.link, "offline");
  assert.equal(chat.requestSync(state), null, "no sync without a socket");
  chat.onReady(state, { type: "ready", online: [bob] });
  assert.equal(state.link, "catching-up");
  assert.ok(chat.requestSync(state));
  const { next } = chat.onSyncResult(state, { type: "sync.result", messages: [], more: false });
  assert.equal(next, "caught-up");
});

test("a reconnection with nothing missed asks for no sync; one with a later stamp does", () => {
  const state = aliceOnline();
  chat.onSyncResult(state, { type: "sync.result", messages: [message({ id: 3, seq: 7 })], more: false });
  chat.onSocketClosed(state);
  assert.equal(chat.onReady(state, { type: "ready", last_seq: 7, online: [] }), false);
  chat.onSocketClosed(state);
  assert.equal(chat.onReady(state, { type: "ready", last_seq: 8, online: [] }), true);
  chat.onSocketClosed(state);
  assert.equal(chat.onReady(state, { type: "ready", online: [] }), true, "no stamp told: sync");
});

test("a refused sync is asked again after the wait the server named", () => {
  const state = aliceOnline();
  chat.requestSync(state);
  assert.equal(chat.syncRefused(state, { type: "error", code: "rate_limited", retry_after: 4 }), 4000);
  assert.deepEqual(chat.requestSync(state), { type: "sync", after: 0 });
  assert.equal(chat.syncRefused(state, { type: "error", code: "unavailable" }), 3000);
  assert.equal(chat.syncRefused(state, { type: "error", code: "not_found" }), null, "not about the sync");
});

test("a pong with a larger last_seq means something was missed", () => {
  const state = aliceOnline();
  chat.onPush(state, { type: "message.new", message: message({ id: 5, seq: 5 }), prev_seq: 0 });
  assert.equal(chat.onPong(state, { type: "pong", last_seq: 5 }), false);
  assert.equal(chat.onPong(state, { type: "pong", last_seq: 6 }), true);
});

test("the same change arriving twice (push, then sync) is counted once", () => {
  const state = aliceOnline();
  const m = message({ id: 5, seq: 5 });
  chat.onPush(state, { type: "message.new", message: m, prev_seq: 0 });
  chat.requestSync(state);
  chat.onSyncResult(state, { type: "sync.result", messages: [{ ...m }], more: false });
  assert.equal(state.convs.get(12).unread, 1);
});

test("an edit shows in the open conversation, and a deletion takes the message off the unread count", () => {
  const state = aliceOnline();
  chat.onPush(state, { type: "message.new", message: message({ id: 5, seq: 5, body: "helo" }), prev_seq: 0 });
  chat.onPush(state, { type: "message.new", message: message({ id: 6, seq: 6, body: "there" }), prev_seq: 5 });
  assert.equal(state.convs.get(12).unread, 2);
  const cur = chat.openCurrent(state, 12);
  cur.msgs.set(5, message({ id: 5, seq: 5, body: "helo" }));
  const edited = message({ id: 5, seq: 7, body: "hello", edited_at: "2026-11-26T10:01:00Z" });
  const updated = chat.onPush(state, { type: "message.updated", message: edited, prev_seq: 6 });
  assert.deepEqual(updated.applied.forCur.map((m) => m.body), ["hello"]);
  assert.equal(updated.applied.notify.length, 0, "an edit is no new message");

  state.cur = null;
  const deleted = message({ id: 6, seq: 8, body: "", deleted: true });
  chat.onPush(state, { type: "message.updated", message: deleted, prev_seq: 7 });
  assert.equal(state.convs.get(12).unread, 1);
  assert.equal(state.convs.get(12).last_message.deleted, true);
});

test("my own message coming back takes it out of the outbox and counts as nothing unread", () => {
  const state = aliceOnline();
  const mine = message({ id: 5, seq: 5, sender: alice, client_id: "abc" });
  const applied = chat.onAck(state, { type: "message.ack", client_id: "abc", message: mine });
  assert.deepEqual(applied.acked, ["abc"]);
  assert.equal(state.convs.get(12).unread, 0);
  assert.equal(state.maxSeq, 0, "acks do not count as seen: the push will");
});

test("a hidden tab notifies of new messages from others and marks where reading stopped", () => {
  const state = aliceOnline({ visible: false, conv: direct({ last_read: 4 }) });
  const cur = chat.openCurrent(state, 12);
  const pushed = chat.onPush(state, { type: "message.new", message: message({ id: 5, seq: 5 }), prev_seq: 0 });
  assert.equal(pushed.applied.notify.length, 1);
  assert.equal(cur.dividerAfter, 4);
  assert.equal(state.convs.get(12).unread, 1, "not seen while hidden");
});

test("a read pointer never moves back", () => {
  const state = aliceOnline();
  const cur = chat.openCurrent(state, 12);
  cur.msgs.set(5, message({ id: 5, seq: 5, sender: alice }));
  assert.deepEqual(chat.onRead(state, { type: "read", conversation: 12, user: bob, up_to: 5 }), { seen: true });
  chat.onRead(state, { type: "read", conversation: 12, user: bob, up_to: 3 });
  assert.equal(cur.readPointers["2"], 5);
  assert.deepEqual(chat.seenMarker(state), { id: 5, text: "Seen" });

  chat.onRead(state, { type: "read", conversation: 12, user: alice, up_to: 9 });
  chat.onRead(state, { type: "read", conversation: 12, user: alice, up_to: 2 });
  assert.equal(state.convs.get(12).last_read, 9);
});

test("a group's seen marker names its readers as a list in the page's language", () => {
  const dave = { id: 4, username: "dave" };
  const state = aliceOnline({ conv: direct({ kind: "group", members: [alice, bob, carol, dave] }) });
  const cur = chat.openCurrent(state, 12);
  cur.msgs.set(5, message({ id: 5, seq: 5, sender: alice }));
  chat.onRead(state, { type: "read", conversation: 12, user: bob, up_to: 5 });
  chat.onRead(state, { type: "read", conversation: 12, user: carol, up_to: 5 });
  assert.deepEqual(chat.seenMarker(state), { id: 5, text: "Seen by bob and carol" });
  chat.onRead(state, { type: "read", conversation: 12, user: dave, up_to: 5 });
  assert.deepEqual(chat.seenMarker(state), { id: 5, text: "Seen by everyone" });
});

test("reading in another tab clears the unread count here", () => {
  const state = aliceOnline();
  chat.onPush(state, { type: "message.new", message: message({ id: 5, seq: 5 }), prev_seq: 0 });
  assert.equal(chat.totalUnread(state), 1);
  const changed = chat.onRead(state, { type: "read", conversation: 12, user: alice, up_to: 5 });
  assert.deepEqual(changed, { inbox: true, refresh: false });
  assert.equal(chat.totalUnread(state), 0);
});

test("the open conversation tells the server what was read, once", () => {
  const state = aliceOnline();
  const cur = chat.openCurrent(state, 12);
  cur.msgs.set(5, message({ id: 5, seq: 5 }));
  const { frame } = chat.readToSend(state);
  assert.deepEqual(frame, { type: "read", conversation: 12, up_to: 5 });
  chat.readSent(state, frame);
  assert.equal(chat.readToSend(state).frame, null);
});

test("presence comes with ready and changes with presence frames, and is forgotten offline", () => {
  const state = aliceOnline();
  chat.onReady(state, { type: "ready", online: [bob] });
  assert.ok(state.online.has(bob.id));
  chat.onPresence(state, { type: "presence", user: bob, online: false });
  assert.ok(!state.online.has(bob.id));
  chat.onPresence(state, { type: "presence", user: carol, online: true });
  assert.equal(chat.onSocketClosed(state), true);
  assert.equal(state.online.size, 0);
});

test("typing shows for five seconds, and stops when the person's message arrives", () => {
  const state = aliceOnline();
  assert.equal(chat.onTyping(state, { type: "typing", conversation: 12, user: bob }), 12);
  assert.equal(chat.typingText(state, 12), "bob is typing…");
  state.tick(4999);
  assert.deepEqual(chat.sweepTypers(state), []);
  state.tick(1);
  assert.deepEqual(chat.sweepTypers(state), [12]);
  assert.equal(chat.typingText(state, 12), "");

  chat.onTyping(state, { type: "typing", conversation: 12, user: bob });
  chat.onPush(state, { type: "message.new", message: message({ id: 5, seq: 5 }), prev_seq: 0 });
  assert.equal(chat.typingText(state, 12), "");
  assert.equal(chat.onTyping(state, { type: "typing", conversation: 12, user: alice }), null, "not my own");
});

test("a slower conversation list never rolls back a message already shown", () => {
  const state = aliceOnline();
  chat.onPush(state, { type: "message.new", message: message({ id: 5, seq: 5 }), prev_seq: 0 });
  chat.setConversations(state, [direct({ last_message: null, unread: 0 })]);
  assert.equal(state.convs.get(12).last_message.id, 5);
  assert.equal(state.convs.get(12).unread, 1);
});

test("removed from a group, the person is told by whom; a rename changes the title", () => {
  const group = direct({ id: 20, kind: "group", title: "Trip", members: [alice, bob, carol] });
  const state = aliceOnline({ conv: group });
  const renamed = chat.onConversationUpdated(state, {
    type: "conversation.updated",
    conversation: { id: 20, kind: "group", title: "Lake trip", members: [alice, bob, carol] },
  });
  assert.deepEqual(renamed, { changed: 20 });
  assert.equal(state.convs.get(20).title, "Lake trip");
  const gone = chat.onConversationUpdated(state, {
    type: "conversation.updated",
    conversation: { id: 20, kind: "group", title: "Lake trip", members: [bob, carol] },
    change: { kind: "removed", by: bob },
  });
  assert.deepEqual(gone, {
    gone: 20,
    text: "bob removed you from “Lake trip”. You’re no longer in this group.",
    removed: true,
  });
});

test("muted on another device, the conversation turns muted; a group's change leaves it as it was", () => {
  const group = direct({ id: 20, kind: "group", title: "Trip", members: [alice, bob, carol], muted: false });
  const state = aliceOnline({ conv: group });
  const muted = chat.onConversationUpdated(state, {
    type: "conversation.updated",
    conversation: { id: 20, kind: "group", title: "Trip", members: [alice, bob, carol], muted: true },
    change: { kind: "muted", by: alice },
  });
  assert.deepEqual(muted, { changed: 20 });
  assert.equal(state.convs.get(20).muted, true);
  // Others' frames (a rename) do not carry the person's own choice: it stays muted.
  chat.onConversationUpdated(state, {
    type: "conversation.updated",
    conversation: { id: 20, kind: "group", title: "Lake trip", members: [alice, bob, carol] },
    change: { kind: "renamed", by: bob },
  });
  assert.equal(state.convs.get(20).muted, true);
});

test("leaving is not being removed: only a removal keeps what was shown", () => {
  const group = direct({ id: 20, kind: "group", title: "Trip", members: [alice, bob, carol] });
  const state = aliceOnline({ conv: group });
  const left = chat.onConversationUpdated(state, {
    type: "conversation.updated",
    conversation: { id: 20, kind: "group", title: "Trip", members: [bob, carol] },
    change: { kind: "left", by: alice },
  });
  assert.equal(left.removed, false);
});

test("added back while the group is open on its removed notice, the group opens afresh", () => {
  const group = direct({ id: 20, kind: "group", title: "Trip", members: [alice, bob, carol] });
  const state = aliceOnline({ conv: group });
  const cur = chat.openCurrent(state, 20);
  chat.onConversationUpdated(state, {
    type: "conversation.updated",
    conversation: { id: 20, kind: "group", title: "Trip", members: [bob, carol] },
    change: { kind: "removed", by: bob },
  });
  // What the page does with a removal: the conversation leaves the inbox, the pane says so.
  chat.dropConversation(state, 20);
  cur.gone = true;
  const back = chat.onConversationUpdated(state, {
    type: "conversation.updated",
    conversation: { id: 20, kind: "group", title: "Trip", members: [alice, bob, carol] },
    change: { kind: "added", by: bob, users: [alice] },
  });
  assert.deepEqual(back, { rejoined: 20, text: "bob added you back to “Trip”." });
  // Added to a group that is not open: the inbox fetches it, as before.
  state.cur = null;
  const elsewhere = chat.onConversationUpdated(state, {
    type: "conversation.updated",
    conversation: { id: 20, kind: "group", title: "Trip", members: [alice, bob, carol] },
    change: { kind: "added", by: bob, users: [alice] },
  });
  assert.deepEqual(elsewhere, { refresh: true });
});

// -----------------------------------------------------------------------------------------
// Writing to someone for the first time
// -----------------------------------------------------------------------------------------

/** Alice's tab with nothing in her inbox, writing to Carol for the first time. */
function aliceWritingToCarol() {
  const state = chat.createChatState({ me: alice });
  chat.setConversations(state, []);
  chat.openNewDirect(state, carol);
  return state;
}

test("a new conversation with someone is only a pane addressed to them: nothing in the inbox", () => {
  const state = aliceWritingToCarol();
  assert.equal(state.cur.id, null);
  assert.deepEqual(state.cur.to, carol);
  assert.equal(state.cur.loaded, true, "there is nothing to load: it is empty");
  assert.deepEqual(state.order, []);
  const shown = chat.currentConv(state);
  assert.equal(shown.kind, "direct");
  assert.deepEqual(shown.members, [alice, carol]);
  assert.equal(chat.readToSend(state).frame, null, "nothing to read, nothing sent");
});

test("the answer to the first message names the conversation it opened, which the pane becomes", () => {
  const state = aliceWritingToCarol();
  const first = message({ id: 40, conversation: 31, sender: alice, client_id: "first" });
  assert.equal(chat.conversationOpenedBy(state, first, { client_id: "first", to: "carol", conversation: null }), 31);
  assert.equal(chat.conversationOpenedBy(state, first, null), null, "not one of the outbox's");
  assert.equal(
    chat.conversationOpenedBy(state, first, { client_id: "first", to: "bob", conversation: null }),
    null,
    "a first message to someone else"
  );
  const theirs = message({ id: 41, conversation: 31, sender: carol, client_id: "first" });
  assert.equal(chat.conversationOpenedBy(state, theirs, { to: "carol" }), null);

  chat.adoptConversation(state, 31, first.created_at);
  assert.equal(state.cur.id, 31);
  assert.equal(state.cur.to, null);
  assert.deepEqual(state.order, [31]);
  const applied = chat.onAck(state, { type: "message.ack", client_id: "first", message: first });
  assert.deepEqual(applied.forCur.map((m) => m.id), [40], "shown in the pane");
  assert.deepEqual(applied.acked, ["first"]);
  assert.equal(state.convs.get(31).last_message.id, 40, "and in the inbox's row");
  assert.equal(state.convs.get(31).unread, 0);
});

test("a pane already on a conversation adopts nothing", () => {
  const state = aliceOnline();
  chat.openCurrent(state, 12);
  const mine = message({ id: 50, conversation: 12, sender: alice, client_id: "x" });
  assert.equal(chat.conversationOpenedBy(state, mine, { client_id: "x", to: "bob", conversation: null }), null);
  assert.equal(chat.currentConv(state).id, 12);
});

// -- mentions ---------------------------------------------------------------------------

function group(fields = {}) {
  return direct({ id: 30, kind: "group", title: "Trip", members: [alice, bob, carol], mentions: 0, ...fields });
}

test("a message naming me in a group I am not looking at counts as an unread mention", () => {
  const state = aliceOnline({ conv: group() });
  chat.onPush(state, { type: "message.new", message: message({ id: 5, conversation: 30, mentions: [alice.id] }), prev_seq: 0 });
  chat.onPush(state, { type: "message.new", message: message({ id: 6, conversation: 30, mentions: [carol.id] }), prev_seq: 5 });
  const conv = state.convs.get(30);
  assert.equal(conv.unread, 2);
  assert.equal(conv.mentions, 1, "naming carol is not naming me");
});

test("reading a group clears its unread mentions with its unread count", () => {
  const state = aliceOnline({ conv: group({ unread: 3, mentions: 2, last_message: message({ id: 9, conversation: 30 }) }) });
  chat.openCurrent(state, 30);
  chat.applyMessages(state, [message({ id: 9, conversation: 30, mentions: [alice.id] })], { live: false });
  const { unreadCleared } = chat.readToSend(state);
  assert.equal(unreadCleared, true);
  assert.equal(state.convs.get(30).mentions, 0);
});

test("reading elsewhere up to the last message clears the mentions here too", () => {
  const state = aliceOnline({ conv: group({ unread: 2, mentions: 1, last_message: message({ id: 9, conversation: 30 }) }) });
  chat.onRead(state, { type: "read", conversation: 30, user: alice, up_to: 9 });
  assert.deepEqual([state.convs.get(30).unread, state.convs.get(30).mentions], [0, 0]);
});

test("a slower list keeps a mention counted live", () => {
  const state = aliceOnline({ conv: group() });
  chat.onPush(state, { type: "message.new", message: message({ id: 5, conversation: 30, mentions: [alice.id] }), prev_seq: 0 });
  chat.setConversations(state, [group({ mentions: 0 })]);
  assert.equal(state.convs.get(30).mentions, 1);
});
