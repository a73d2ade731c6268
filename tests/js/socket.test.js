import assert from "node:assert/strict";
import { test } from "node:test";

import {
  CONNECT_TIMEOUT,
  PING_EVERY,
  PONG_TIMEOUT,
  PROBE_SPACING,
  backoffDelay,
  createSocket,
  minimumWaitAfterClose,
} from "../../static/messaging/net/socket.js";
import { fakeTimers, fakeWebSocketClass } from "./helpers.js";

test("reconnect waits double with each failed try, with jitter, and stop growing at 5 s", () => {
  const tries = [1, 2, 3, 4, 5, 6, 7, 20];
  const least = tries.map((n) => backoffDelay(n, () => 0));
  const most = tries.map((n) => backoffDelay(n, () => 1));
  assert.deepEqual(least, [250, 500, 1000, 2000, 2500, 2500, 2500, 2500]);
  assert.deepEqual(most, [500, 1000, 2000, 4000, 5000, 5000, 5000, 5000]);
});

test("after a 15 s outage the server is found again within 5 s of being back", () => {
  // The worst case: every wait as long as the jitter allows.
  let elapsed = 0;
  let n = 0;
  while (elapsed < 15000) elapsed += backoffDelay(++n, () => 1);
  assert.ok(elapsed - 15000 <= 5000, "next try " + (elapsed - 15000) + " ms after the server is back");
});

test("past a minute of failed tries, the waits grow to 10-20 s so tabs do not hammer a refusing server", () => {
  assert.equal(backoffDelay(20, () => 1), 5000);
  assert.equal(backoffDelay(21, () => 0), 10000);
  assert.equal(backoffDelay(40, () => 1), 20000);
  let elapsed = 0;
  for (let n = 1; n <= 20; n++) elapsed += backoffDelay(n, () => 0);
  assert.ok(elapsed >= 40000, "patient only after most of a minute: " + elapsed);
});

test("a socket closed for abuse waits at least 30 seconds; an ended session never reconnects", () => {
  assert.equal(minimumWaitAfterClose(1006, () => 0.5), 0);
  assert.equal(minimumWaitAfterClose(1008, () => 0), 30000);
  assert.equal(minimumWaitAfterClose(1008, () => 1), 45000);
  assert.equal(minimumWaitAfterClose(4401, () => 0), null);
});

function socketWith({ random = () => 0 } = {}) {
  const timers = fakeTimers();
  const WebSocketImpl = fakeWebSocketClass();
  const frames = [];
  const closes = [];
  const socket = createSocket({
    url: "ws://chat.test/ws/chat/",
    onFrame: (frame) => frames.push(frame),
    onClose: (info) => closes.push(info),
    WebSocketImpl,
    timers,
    random,
  });
  return { socket, timers, opened: WebSocketImpl.opened, frames, closes };
}

test("nothing is sent before the server's ready frame", () => {
  const { socket, opened, frames } = socketWith();
  socket.connect();
  assert.equal(socket.send({ type: "sync", after: 0 }), false);
  opened[0].receive({ type: "ready", last_seq: 0, online: [] });
  assert.equal(socket.send({ type: "sync", after: 0 }), true);
  assert.deepEqual(opened[0].sent, [{ type: "sync", after: 0 }, { type: "ping" }]);
  assert.equal(frames[0].type, "ready");
});

test("a lost connection is retried with growing waits, and the count starts over once ready", () => {
  const { socket, timers, opened, closes } = socketWith();
  socket.connect();
  opened[0].lose(1006);
  assert.deepEqual(closes[0], { code: 1006, hadReady: false, attempt: 0, silent: false, busy: null });
  assert.deepEqual(timers.waits(), [250]);
  timers.advance(250);
  assert.equal(opened.length, 2);
  opened[1].lose(1006);
  assert.deepEqual(timers.waits(), [500]);
  timers.advance(500);
  opened[2].receive({ type: "ready", online: [] });
  opened[2].lose(1006);
  assert.equal(closes[2].hadReady, true);
  assert.deepEqual(timers.waits(), [250], "back to the shortest wait after a good connection");
});

test("an ended session (4401) is not reconnected", () => {
  const { socket, timers, opened } = socketWith();
  socket.connect();
  opened[0].receive({ type: "ready", online: [] });
  opened[0].lose(4401);
  timers.advance(120000);
  assert.equal(opened.length, 1);
});

test("a server that stops answering pings is dropped and reconnected", () => {
  const { socket, timers, opened, closes } = socketWith();
  socket.connect();
  opened[0].receive({ type: "ready", online: [] });
  timers.advance(PING_EVERY);
  assert.deepEqual(opened[0].sent, [{ type: "ping" }]);
  opened[0].receive({ type: "pong", last_seq: 0 });
  timers.advance(PING_EVERY + PONG_TIMEOUT - 1);
  assert.equal(closes.length, 0, "answered in time");
  timers.advance(1);
  assert.deepEqual(closes, [{ code: 1006, hadReady: true, attempt: 0, silent: true, busy: null }]);
  timers.advance(1000);
  assert.equal(opened.length, 2);
});

test("a send that gets no answer from a hung server is noticed within seconds", () => {
  const { socket, timers, opened, closes } = socketWith();
  socket.connect();
  opened[0].receive({ type: "ready", online: [] });
  timers.advance(1000);
  socket.send({ type: "message.send", conversation: 12, body: "hi", client_id: "a" });
  assert.deepEqual(opened[0].sent.map((f) => f.type), ["message.send", "ping"], "probed at once");
  timers.advance(PONG_TIMEOUT);
  assert.deepEqual(closes, [{ code: 1006, hadReady: true, attempt: 0, silent: true, busy: null }]);
});

test("probes after sends stay within the ping budget: at most one per few seconds", () => {
  const { socket, timers, opened, closes } = socketWith();
  socket.connect();
  opened[0].receive({ type: "ready", online: [] });
  const pings = () => opened[0].sent.filter((f) => f.type === "ping").length;
  let answered = 0;
  const answer = () => {
    for (; answered < pings(); answered++) opened[0].receive({ type: "pong", last_seq: 0 });
  };
  for (let n = 0; n < 100; n++) {
    socket.send({ type: "message.send", conversation: 12, body: "m" + n, client_id: "c" + n });
    answer();
    for (let ms = 0; ms < 300; ms += 50) {
      timers.advance(50);
      answer();
    }
    // A frame that needs no answer probes nothing.
    socket.send({ type: "typing", conversation: 12 });
  }
  // 30 s of a send every 300 ms: a probe every PROBE_SPACING, the idle pings do not add up.
  assert.ok(pings() <= 30000 / PROBE_SPACING + 1, pings() + " pings in 30 s");
  assert.ok(pings() >= 5, "still probing");
  assert.equal(closes.length, 0);
});

test("a probe held back by the spacing still goes out, so a hang right after a ping is caught", () => {
  const { socket, timers, opened, closes } = socketWith();
  socket.connect();
  opened[0].receive({ type: "ready", online: [] });
  socket.send({ type: "message.send", conversation: 12, body: "one", client_id: "a" });
  opened[0].receive({ type: "pong", last_seq: 0 });
  timers.advance(100);
  socket.send({ type: "message.send", conversation: 12, body: "two", client_id: "b" });
  timers.advance(PROBE_SPACING);
  assert.equal(opened[0].sent.filter((f) => f.type === "ping").length, 2);
  timers.advance(PONG_TIMEOUT);
  assert.equal(closes.length, 1);
  assert.equal(closes[0].silent, true);
});

test("a handshake that hangs is given up and tried again", () => {
  const { socket, timers, opened, closes } = socketWith();
  socket.connect();
  timers.advance(CONNECT_TIMEOUT);
  assert.equal(closes.length, 1);
  assert.equal(closes[0].silent, true);
  timers.advance(500);
  assert.equal(opened.length, 2);
});

test("coming back into view probes an open socket and connects a closed one at once", () => {
  const { socket, timers, opened } = socketWith();
  socket.connect();
  opened[0].receive({ type: "ready", online: [] });
  timers.advance(PROBE_SPACING);
  socket.reconnectSoon();
  assert.deepEqual(opened[0].sent, [{ type: "ping" }]);
  opened[0].receive({ type: "pong", last_seq: 0 });
  opened[0].lose(1006);
  timers.advance(200); // waiting for a retry planned in 250-500 ms
  socket.reconnectSoon();
  assert.equal(opened.length, 2, "tried at once");
});

test("Reconnect now tries at once, and does not open a second socket beside a live one", () => {
  const { socket, timers, opened } = socketWith();
  socket.connect();
  opened[0].lose(1006);
  opened.length; // a retry is planned
  socket.reconnectNow();
  assert.equal(opened.length, 2);
  opened[1].receive({ type: "ready", online: [] });
  socket.reconnectSoon();
  assert.equal(opened.length, 2);
  opened[1].receive({ type: "pong", last_seq: 0 });
  timers.advance(PING_EVERY - 1);
  assert.equal(opened.length, 2, "the planned retry was cancelled");
});

test("a handshake turned away as busy waits the turn the server gave, then tries again", () => {
  const { socket, timers, opened, frames, closes } = socketWith({ random: () => 0.5 });
  socket.connect();
  opened[0].receive({ type: "error", code: "busy", detail: "busy", retry_after: 37 });
  opened[0].lose(1013);
  assert.deepEqual(frames, [], "the busy answer is the socket's business, not the page's");
  assert.deepEqual(closes, [{ code: 1013, hadReady: false, attempt: 0, silent: false, busy: 37 }]);
  assert.deepEqual(timers.waits(), [37500], "the turn given, and half a second of jitter");
  timers.advance(37499);
  assert.equal(opened.length, 1, "not before its turn");
  timers.advance(1);
  assert.equal(opened.length, 2);
  opened[1].receive({ type: "ready", online: [] });
  assert.equal(frames[0].type, "ready");
});

test("a 1013 close without a busy answer (a rebalance, a lost channel layer) keeps the backoff", () => {
  assert.equal(minimumWaitAfterClose(1013, () => 0.5), 0);
  assert.equal(minimumWaitAfterClose(1013, () => 0, 12), 12000);
  assert.equal(minimumWaitAfterClose(1013, () => 1, 12), 13000);
  assert.equal(minimumWaitAfterClose(1013, () => 0, 100000), 300000, "an absurd wait is capped");
  const { socket, timers, opened } = socketWith();
  socket.connect();
  opened[0].receive({ type: "ready", online: [] });
  opened[0].receive({ type: "error", code: "busy", retry_after: 50 });
  opened[0].lose(1013);
  assert.deepEqual(timers.waits(), [250], "a busy error after ready does not delay the next try");
});
