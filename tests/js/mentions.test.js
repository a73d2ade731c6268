import assert from "node:assert/strict";
import { test } from "node:test";

import { completeMention, matchMembers, mentionAt, mentionPieces, mentionsMe } from "../../static/messaging/text/mentions.js";
import { alice, bob, carol } from "./helpers.js";

const bobby = { id: 4, username: "bobby" };
const members = [alice, bob, carol, bobby];

test("typing @ and the start of a name is a mention being typed; an address is not", () => {
  assert.deepEqual(mentionAt("hi @bo", 6), { start: 3, query: "bo" });
  assert.deepEqual(mentionAt("@", 1), { start: 0, query: "" });
  assert.deepEqual(mentionAt("(@car", 5), { start: 1, query: "car" });
  assert.equal(mentionAt("mail bob@example.org", 20), null, "the @ of an address");
  assert.equal(mentionAt("hi @bob and", 11), null, "the caret has left the name");
  assert.equal(mentionAt("hi bo", 5), null);
  assert.deepEqual(mentionAt("hi @bob and", 7), { start: 3, query: "bob" }, "the caret back on the name");
});

test("the members a mention may mean: names that start with it first, never oneself", () => {
  assert.deepEqual(matchMembers(members, "bo", alice.id).map((u) => u.username), ["bob", "bobby"]);
  assert.deepEqual(matchMembers(members, "", alice.id).map((u) => u.username), ["bob", "bobby", "carol"]);
  assert.deepEqual(matchMembers(members, "OB", alice.id).map((u) => u.username), ["bob", "bobby"], "in any case");
  assert.deepEqual(matchMembers(members, "a", carol.id).map((u) => u.username), ["alice"]);
  assert.deepEqual(matchMembers(members, "ro", alice.id).map((u) => u.username), ["carol"], "part of a name, after those it starts");
  assert.deepEqual(matchMembers([...members, { id: 9, username: "bo", active: false }], "bo", alice.id).map((u) => u.username), ["bob", "bobby"], "not someone who left the chat");
  assert.equal(matchMembers(members, "", alice.id, 2).length, 2);
});

test("picking a member writes the whole name and a space, and puts the caret after them", () => {
  assert.deepEqual(completeMention("hi @bo", 3, 6, "bobby"), { text: "hi @bobby ", caret: 10 });
  assert.deepEqual(completeMention("hi @bo see you", 3, 6, "bob"), { text: "hi @bob see you", caret: 8 });
});

test("a body is cut into text and the mentions of the people it names, as written", () => {
  assert.deepEqual(mentionPieces("thanks @Bob. and @carol!", [bob, carol]), [
    { text: "thanks " },
    { text: "@Bob", user: bob },
    { text: ". and " },
    { text: "@carol", user: carol },
    { text: "!" },
  ]);
  assert.deepEqual(mentionPieces("write to bob@example.org", [bob]), [{ text: "write to bob@example.org" }]);
  assert.deepEqual(mentionPieces("@dave is not here", [bob]), [{ text: "@dave is not here" }]);
  assert.deepEqual(mentionPieces("@bobby, not @bob", [bobby]), [{ text: "@bobby", user: bobby }, { text: ", not @bob" }]);
  assert.deepEqual(mentionPieces("", [bob]), []);
});

test("a message names me when the server lists me in its mentions", () => {
  assert.equal(mentionsMe({ mentions: [2, 1] }, 1), true);
  assert.equal(mentionsMe({ mentions: [] }, 1), false);
  assert.equal(mentionsMe({}, 1), false, "a message from before mentions existed");
});
