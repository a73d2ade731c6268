import assert from "node:assert/strict";
import { test } from "node:test";

import { isMine, pendingWishes, reactorsText, shownReactions, toggleFrame, withOwn } from "../../static/messaging/state/reactions.js";
import { alice, bob, carol } from "./helpers.js";

const members = [alice, bob, carol];
const server = [
  { emoji: "👍", count: 2, users: [2, 3] },
  { emoji: "🎉", count: 1, users: [1] },
];

test("tapping a reaction that is not mine adds it; tapping one of mine takes it off", () => {
  assert.deepEqual(toggleFrame(7, server, "👍", alice.id), { frame: { type: "reaction.add", id: 7, emoji: "👍" }, on: true });
  assert.deepEqual(toggleFrame(7, server, "🎉", alice.id), { frame: { type: "reaction.remove", id: 7, emoji: "🎉" }, on: false });
  assert.deepEqual(toggleFrame(7, server, "🍕", alice.id).frame.type, "reaction.add");
});

test("my change shows at once: counts move, a new emoji goes last, an emptied one goes", () => {
  const added = withOwn(server, "👍", alice.id, true);
  assert.deepEqual(added[0], { emoji: "👍", count: 3, users: [2, 3, 1] });
  assert.deepEqual(withOwn(server, "🍕", alice.id, true).map((r) => r.emoji), ["👍", "🎉", "🍕"]);
  assert.deepEqual(withOwn(server, "🎉", alice.id, false), [server[0]]);
  assert.equal(withOwn(server, "🎉", alice.id, true), server, "already mine: nothing changes");
  assert.deepEqual(server[0].users, [2, 3], "the server's list is left as it was");
});

test("a wish shows until the server's list agrees, then it is dropped", () => {
  const wishes = new Map([["👍", true]]);
  assert.equal(isMine(shownReactions(server, wishes, alice.id)[0], alice.id), true);
  assert.equal(pendingWishes(server, wishes, alice.id).size, 1, "not confirmed yet");
  const confirmed = [{ emoji: "👍", count: 3, users: [2, 3, 1] }, server[1]];
  assert.equal(pendingWishes(confirmed, wishes, alice.id).size, 0);
  assert.deepEqual(shownReactions(confirmed, new Map(), alice.id), confirmed);
});

test("who reacted is said with names, me as you, and the rest counted", () => {
  assert.equal(reactorsText({ users: [2, 3] }, members, alice.id), "bob and carol");
  assert.equal(reactorsText({ users: [2, 1] }, members, alice.id), "bob and you");
  assert.equal(reactorsText({ users: [1] }, members, alice.id), "You");
  assert.equal(reactorsText({ users: [9] }, members, alice.id), "Someone", "someone who left the group");
  assert.equal(reactorsText({ users: [1, 9, 8] }, members, alice.id), "You and 2 others");
  const many = [{ id: 4, username: "d" }, { id: 5, username: "e" }, { id: 6, username: "f" }, { id: 7, username: "g" }];
  assert.equal(reactorsText({ users: [4, 5, 6, 7, 1] }, many, alice.id), "d, e, f, you and 1 other");
});
