import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { emojiName, FREQUENT, searchEmoji } from "../../static/messaging/text/emoji.js";

const shipped = JSON.parse(readFileSync(new URL("../../static/messaging/emoji.json", import.meta.url), "utf8"));
const all = shipped.emoji;
const found = (q, limit) => searchEmoji(all, q, limit).map((e) => e[0]);

test("the shipped set is complete enough to search and holds the frequent ones", () => {
  assert.ok(all.length > 1500, "the whole set, not a sample");
  for (const entry of all) {
    assert.equal(entry.length, 3);
    assert.equal(typeof entry[1], "string");
  }
  const emoji = new Set(all.map((e) => e[0]));
  for (const [e] of FREQUENT) assert.ok(emoji.has(e), e + " is in the set as the picker sends it");
  assert.ok(!emoji.has("👍\uFE0F"), "thumbs up without the selector the server does not take");
});

test("searching by name finds the emoji, the name's own words first", () => {
  assert.equal(found("thumbs up")[0], "👍");
  assert.ok(found("heart", 8).includes("❤️"), "in the first row of answers");
  assert.ok(found("pizza").includes("🍕"));
  assert.equal(found("party")[0], "🎉");
});

test("every word must match, by the start of a word of the name or of its search words", () => {
  assert.ok(found("cat face").includes("🐱"));
  assert.ok(!found("cat face").includes("🐈"), "a cat that is not a face");
  assert.ok(found("lol").includes("😂"), "a search word, not the name");
  assert.deepEqual(found("zzzzqx"), []);
  assert.deepEqual(found("   "), []);
});

test("the number of answers is bounded, and the emoji itself finds itself", () => {
  assert.equal(found("face", 10).length, 10);
  assert.deepEqual(found("🍕"), ["🍕"]);
});

test("an emoji is named from the set", () => {
  assert.equal(emojiName(all, "🍕"), "pizza");
  assert.equal(emojiName([], "👍"), "thumbs up", "the frequent ones before the set is loaded");
  assert.equal(emojiName(all, "x"), "");
});
