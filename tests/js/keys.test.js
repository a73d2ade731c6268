import assert from "node:assert/strict";
import { test } from "node:test";

import { arrowTarget } from "../../static/messaging/ui/keys.js";

const rows = ["a", "b", "c"];

test("down and up go to the next and the previous row, and stop at the ends", () => {
  assert.equal(arrowTarget(rows, 0, "ArrowDown"), "b");
  assert.equal(arrowTarget(rows, 2, "ArrowDown"), "c");
  assert.equal(arrowTarget(rows, 1, "ArrowUp"), "a");
  assert.equal(arrowTarget(rows, 0, "ArrowUp"), "a");
});

test("Home and End go to the first and the last row", () => {
  assert.equal(arrowTarget(rows, 1, "Home"), "a");
  assert.equal(arrowTarget(rows, 1, "End"), "c");
});

test("from outside the list, down enters at the top and up at the bottom", () => {
  assert.equal(arrowTarget(rows, -1, "ArrowDown"), "a");
  assert.equal(arrowTarget(rows, -1, "ArrowUp"), "c");
});

test("other keys and empty lists lead nowhere", () => {
  assert.equal(arrowTarget(rows, 0, "ArrowLeft"), null);
  assert.equal(arrowTarget([], -1, "ArrowDown"), null);
});
