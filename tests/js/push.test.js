import assert from "node:assert/strict";
import { test } from "node:test";

import { keyBytes, pushSupport } from "../../static/messaging/push.js";

test("the server's base64url VAPID key becomes the 65 bytes pushManager takes", () => {
  const raw = new Uint8Array(65).map((_, i) => (i * 37 + 4) % 256);
  raw[0] = 4;
  const text = Buffer.from(raw).toString("base64url");
  assert.ok(!text.includes("=") && !text.includes("+") && !text.includes("/"));
  assert.deepEqual(keyBytes(text), raw);
});

test("push is offered only where the browser has it, and only over a secure page", () => {
  const browser = (extra) => ({
    navigator: { serviceWorker: {} },
    PushManager: function () {},
    Notification: function () {},
    isSecureContext: true,
    ...extra,
  });
  assert.equal(pushSupport(browser()), "ok");
  assert.equal(pushSupport(browser({ isSecureContext: false })), "insecure");
  assert.equal(pushSupport({ navigator: {}, isSecureContext: true }), "unsupported");
  const withoutPush = browser();
  delete withoutPush.PushManager;
  assert.equal(pushSupport(withoutPush), "unsupported");
});
