/*
 * Web Push in this browser: can it, is it subscribed, subscribe and unsubscribe.
 *
 * Subscribing asks the person for permission, which browsers allow only from something
 * they did (a click): call subscribeDevice from a click handler. The subscription goes to
 * the server (POST /api/push/subscriptions/), which then pushes to it while no tab of the
 * chat is open; the service worker (/sw.js) shows those pushes.
 */

import { request } from "./net/api.js";
import { gettext } from "./text/i18n.js";

/** Turn a base64url text (the server's VAPID key) into the bytes pushManager wants. */
export function keyBytes(base64url) {
  const padded = base64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((base64url.length + 3) % 4);
  const raw = atob(padded);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** Say whether this browser can take pushes here: "ok", "insecure" or "unsupported". */
export function pushSupport(win = globalThis) {
  if (!("serviceWorker" in (win.navigator || {})) || !("PushManager" in win) || !("Notification" in win)) {
    return "unsupported";
  }
  if (!win.isSecureContext) return "insecure";
  return "ok";
}

async function registration(urls) {
  const found = await navigator.serviceWorker.getRegistration("/");
  if (found) return found;
  return navigator.serviceWorker.register(urls.serviceWorker, { scope: "/" });
}

/**
 * Find this browser's state: {state, subscription?} where state is "unsupported",
 * "insecure", "denied" (the person blocked notifications), "on" or "off". A subscription
 * the browser holds is sent to the server again, in case the server dropped it.
 */
export async function deviceState(urls) {
  const support = pushSupport();
  if (support !== "ok") return { state: support };
  if (Notification.permission === "denied") return { state: "denied" };
  const found = await navigator.serviceWorker.getRegistration("/");
  const subscription = found ? await found.pushManager.getSubscription() : null;
  if (!subscription || Notification.permission !== "granted") return { state: "off" };
  const res = await request("POST", urls.pushSubscriptions, subscription.toJSON());
  return { state: res.ok ? "on" : "off", subscription, status: res.status };
}

/**
 * Subscribe this browser (from a click): permission, the service worker, pushManager, then
 * the server. Answers {ok, state, reason?}.
 */
export async function subscribeDevice(urls) {
  const support = pushSupport();
  if (support !== "ok") return { ok: false, state: support };
  const permission = await Notification.requestPermission();
  if (permission !== "granted") return { ok: false, state: permission === "denied" ? "denied" : "off" };
  const key = await request("GET", urls.pushKey);
  if (!key.ok || !key.data || typeof key.data.public_key !== "string") {
    return { ok: false, state: "off", reason: "server", status: key.status };
  }
  let subscription;
  try {
    const reg = await registration(urls);
    await navigator.serviceWorker.ready;
    subscription = await reg.pushManager.getSubscription();
    const wanted = keyBytes(key.data.public_key);
    // One made with another key (the server's changed) cannot be used: make a new one.
    if (subscription && !sameKey(subscription.options.applicationServerKey, wanted)) {
      await subscription.unsubscribe();
      subscription = null;
    }
    if (!subscription) {
      subscription = await withinTime(
        reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: wanted }),
        SUBSCRIBE_WAIT_MS,
        gettext("the browser’s push service did not answer"),
      );
    }
  } catch (e) {
    return { ok: false, state: "off", reason: "browser", detail: String(e && e.message ? e.message : e) };
  }
  const saved = await request("POST", urls.pushSubscriptions, subscription.toJSON());
  if (!saved.ok) return { ok: false, state: "off", reason: "server", status: saved.status, data: saved.data };
  return { ok: true, state: "on" };
}

// A browser whose push service cannot be reached (offline, or a browser without one)
// may never settle pushManager.subscribe: the person is told instead of left waiting.
const SUBSCRIBE_WAIT_MS = 15000;

function withinTime(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(what)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function sameKey(buffer, bytes) {
  if (!buffer) return false;
  const held = new Uint8Array(buffer);
  return held.length === bytes.length && held.every((value, i) => value === bytes[i]);
}

/** Unsubscribe this browser, here and on the server. Answers {ok}. */
export async function unsubscribeDevice(urls) {
  const found = await navigator.serviceWorker.getRegistration("/");
  const subscription = found ? await found.pushManager.getSubscription() : null;
  if (!subscription) return { ok: true };
  const endpoint = subscription.endpoint;
  try {
    await subscription.unsubscribe();
  } catch (e) {
    // The server forgets it anyway below.
  }
  const res = await request("DELETE", urls.pushSubscriptions, { endpoint });
  return { ok: res.ok || res.status === 404, status: res.status };
}
