import assert from "node:assert/strict";
import { test } from "node:test";

import {
  PING_EVERY,
  PONG_TIMEOUT,
  backoffDelay,
  createSocket,
  minimumWaitAfterClose,
} from "../../static/messaging/net/socket.js";
import { fakeTimers, fakeWebSocketClass } from "./helpers.js";

test("reconnect waits double with each failed try, with jitter, up to half a minute", () => {
  const least = [1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffDelay(n, () => 0));
  const most = [1, 2, 3, 4, 5, 6, 7, 20].map((n) => backoffDelay(n, () => 1));
  assert.deepEqual(least, [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  assert.deepEqual(most, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
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
  assert.deepEqual(opened[0].sent, [{ type: "sync", after: 0 }]);
  assert.equal(frames[0].type, "ready");
});

test("a lost connection is retried with growing waits, and the count starts over once ready", () => {
  const { socket, timers, opened, closes } = socketWith();
  socket.connect();
  opened[0].lose(1006);
  assert.deepEqual(closes[0], { code: 1006, hadReady: false, attempt: 0 });
  assert.deepEqual(timers.waits(), [500]);
  timers.advance(500);
  assert.equal(opened.length, 2);
  opened[1].lose(1006);
  assert.deepEqual(timers.waits(), [1000]);
  timers.advance(1000);
  opened[2].receive({ type: "ready", online: [] });
  opened[2].lose(1006);
  assert.equal(closes[2].hadReady, true);
  assert.deepEqual(timers.waits(), [500], "back to the shortest wait after a good connection");
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
  assert.deepEqual(closes, [{ code: 1006, hadReady: true, attempt: 0 }]);
  timers.advance(1000);
  assert.equal(opened.length, 2);
});

test("Reconnect now tries at once, and does not open a second socket beside a live one", () => {
  const { socket, timers, opened } = socketWith();
  socket.connect();
  opened[0].lose(1006);
  opened.length; // a retry is planned
  socket.reconnectNow();
  assert.equal(opened.length, 2);
  socket.reconnectSoon();
  assert.equal(opened.length, 2);
  timers.advance(60000);
  assert.equal(opened.length, 2, "the planned retry was cancelled");
});
