import assert from "node:assert/strict";
import { test } from "node:test";

import { createBurst } from "../../static/messaging/lib/burst.js";
import { fakeTimers } from "./helpers.js";

function listener() {
  const timers = fakeTimers();
  const said = [];
  const burst = createBurst({
    windowMs: 2000,
    say: (text) => said.push(text),
    summary: (count) => `${count} new messages`,
    timers,
  });
  return { timers, said, burst };
}

test("a message after a quiet moment is read out at once, with its sender", () => {
  const { said, burst } = listener();
  burst.add(["bob: Hi"]);
  assert.deepEqual(said, ["bob: Hi"]);
});

test("a burst is read as how many messages came, not one by one", () => {
  const { timers, said, burst } = listener();
  burst.add(["bob: 1"]);
  for (const n of [2, 3, 4, 5]) {
    timers.advance(100);
    burst.add([`bob: ${n}`]);
  }
  assert.deepEqual(said, ["bob: 1"], "nothing more while the burst lasts");
  timers.advance(2000);
  assert.deepEqual(said, ["bob: 1", "4 new messages"]);
});

test("one message soon after another is read out itself, a moment later", () => {
  const { timers, said, burst } = listener();
  burst.add(["bob: Hi"]);
  timers.advance(500);
  burst.add(["carol: Hello"]);
  timers.advance(2000);
  assert.deepEqual(said, ["bob: Hi", "carol: Hello"]);
  timers.advance(5000);
  burst.add(["bob: Later"]);
  assert.deepEqual(said, ["bob: Hi", "carol: Hello", "bob: Later"], "quiet again: at once");
});

test("many messages at once (a catch-up after a reconnection) are counted", () => {
  const { timers, said, burst } = listener();
  burst.add(["bob: a", "bob: b", "carol: c"]);
  timers.advance(0);
  assert.deepEqual(said, ["3 new messages"]);
});

test("what waits is dropped when another conversation is opened", () => {
  const { timers, said, burst } = listener();
  burst.add(["bob: a"]);
  burst.add(["bob: b"]);
  burst.clear();
  timers.advance(5000);
  assert.deepEqual(said, ["bob: a"]);
});
