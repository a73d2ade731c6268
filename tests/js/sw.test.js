/*
 * The service worker (static/sw.js), run in a context of its own with stand-ins for what a
 * browser gives it: its clients (tabs), caches, the network and the events it answers.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import vm from "node:vm";

const SOURCE = readFileSync(new URL("../../static/sw.js", import.meta.url), "utf8");
const ORIGIN = "https://chat.example";

/** A tab of the browser: records being focused and taken elsewhere. */
function tab(path, { focused = false, origin = ORIGIN, refuses = false } = {}) {
  const client = {
    url: origin + path,
    focused,
    calls: [],
    async focus() {
      client.calls.push("focus");
      return client;
    },
    async navigate(url) {
      client.calls.push("navigate " + url);
      if (refuses) throw new TypeError("not controlled");
      client.url = url;
      return client;
    },
  };
  return client;
}

function answer(status = 200, extra = {}) {
  const response = { ok: status >= 200 && status < 300, status, type: "basic", redirected: false, ...extra };
  response.clone = () => response;
  return response;
}

/** The Cache API, kept in Maps keyed by URL. */
function fakeCaches() {
  const named = new Map();
  const key = (request) => new URL(typeof request === "string" ? request : request.url, ORIGIN).pathname;
  const open = async (name) => {
    if (!named.has(name)) {
      const entries = new Map();
      named.set(name, {
        entries,
        async match(request) {
          return entries.get(key(request));
        },
        async put(request, response) {
          entries.set(key(request), response);
        },
        async add(url) {
          const response = await worker.fetch(url);
          if (!response.ok) throw new TypeError("not ok");
          entries.set(key(url), response);
        },
        async delete(request) {
          return entries.delete(key(request));
        },
      });
    }
    return named.get(name);
  };
  let worker = null;
  return {
    named,
    bind(context) {
      worker = context;
    },
    open,
    async keys() {
      return Array.from(named.keys());
    },
    async delete(name) {
      return named.delete(name);
    },
  };
}

/**
 * Load the worker with `tabs` open and `network(url, init)` answering its fetches (a
 * function that throws is a browser offline). Answers the context and its listeners.
 */
function loadWorker({ tabs = [], network = () => answer(), assets = [] } = {}) {
  const listeners = {};
  const opened = [];
  const deleted = [];
  const caches = fakeCaches();
  const context = {
    URL,
    console,
    location: new URL(ORIGIN + "/sw.js"),
    addEventListener: (type, fn) => (listeners[type] = fn),
    skipWaiting: () => {},
    clients: {
      async matchAll() {
        return tabs;
      },
      async openWindow(url) {
        opened.push(url);
        return null;
      },
      async claim() {},
    },
    registration: {},
    caches,
    indexedDB: {
      deleteDatabase(name) {
        deleted.push(name);
        const request = {};
        setTimeout(() => request.onsuccess && request.onsuccess());
        return request;
      },
    },
    fetch: async (request, init) => network(typeof request === "string" ? request : request.url, init || request),
  };
  context.self = context;
  caches.bind(context);
  vm.createContext(context);
  const served = SOURCE.replace('const SHELL_ASSETS = [];', "const SHELL_ASSETS = " + JSON.stringify(assets) + ";");
  vm.runInContext(served, context);
  return { context, listeners, opened, deleted, caches };
}

/** Dispatch an extendable event; resolve once everything it waits for is done. */
async function dispatch(listener, fields) {
  const waits = [];
  const event = { ...fields, waitUntil: (p) => waits.push(p), respondWith: (p) => (event.responded = p) };
  listener(event);
  await Promise.all(waits);
  return event;
}

function click(conversation) {
  const closed = [];
  const notification = { data: { url: "/c/" + conversation + "/", conversation }, close: () => closed.push(true) };
  return { notification, closed };
}

test("a notification's click focuses the tab already showing its conversation", async () => {
  const inbox = tab("/", { focused: true });
  const there = tab("/c/7/");
  const worker = loadWorker({ tabs: [inbox, there] });
  const { notification, closed } = click(7);
  await dispatch(worker.listeners.notificationclick, { notification });
  assert.deepEqual(there.calls, ["focus"]);
  assert.deepEqual(inbox.calls, []);
  assert.deepEqual(worker.opened, []);
  assert.equal(closed.length, 1, "the notification is closed");
});

test("without one on it, a chat tab is taken to the conversation: the focused one, before other pages", async () => {
  const settings = tab("/settings/", { focused: true });
  const chat = tab("/c/3/");
  const focusedChat = tab("/", { focused: true });
  const worker = loadWorker({ tabs: [settings, chat, focusedChat] });
  await dispatch(worker.listeners.notificationclick, click(9));
  assert.deepEqual(focusedChat.calls, ["navigate " + ORIGIN + "/c/9/", "focus"]);
  assert.deepEqual(settings.calls, []);
  assert.deepEqual(chat.calls, []);
  assert.deepEqual(worker.opened, []);
});

test("a tab that cannot be taken there is passed over for the next", async () => {
  const old = tab("/", { focused: true, refuses: true });
  const other = tab("/settings/");
  const worker = loadWorker({ tabs: [old, other] });
  await dispatch(worker.listeners.notificationclick, click(4));
  assert.deepEqual(old.calls, ["navigate " + ORIGIN + "/c/4/"]);
  assert.deepEqual(other.calls, ["navigate " + ORIGIN + "/c/4/", "focus"]);
  assert.deepEqual(worker.opened, []);
});

test("with no tab of the chat open (another site's aside), a window opens on the conversation", async () => {
  const elsewhere = tab("/c/5/", { origin: "https://other.example" });
  const worker = loadWorker({ tabs: [elsewhere] });
  await dispatch(worker.listeners.notificationclick, click(5));
  assert.deepEqual(elsewhere.calls, []);
  assert.deepEqual(worker.opened, [ORIGIN + "/c/5/"]);
});

// -- the app shell ------------------------------------------------------------------------------

const OFFLINE = () => {
  throw new TypeError("Failed to fetch");
};

function navigation(path, method = "GET") {
  return { url: ORIGIN + path, method, mode: "navigate" };
}

async function installed(options) {
  const worker = loadWorker(options);
  await dispatch(worker.listeners.install, {});
  await dispatch(worker.listeners.activate, {});
  return worker;
}

function cacheOf(worker) {
  const names = Array.from(worker.caches.named.keys());
  assert.equal(names.length, 1, "one cache: " + names);
  return worker.caches.named.get(names[0]).entries;
}

test("installing caches the shell's files and the signed-in person's chat page shell", async () => {
  const asked = [];
  const worker = await installed({
    assets: ["/static/messaging/main.3f2a9c1b4d5e.js", "/static/messaging/chat.1a2b3c4d5e6f.css"],
    network: (url, init) => {
      asked.push([url, init && init.credentials]);
      return answer(200, { body: url });
    },
  });
  assert.deepEqual(Array.from(cacheOf(worker).keys()).sort(), [
    "/shell/",
    "/static/messaging/chat.1a2b3c4d5e6f.css",
    "/static/messaging/main.3f2a9c1b4d5e.js",
  ]);
  assert.deepEqual(asked.at(-1), ["/shell/", "same-origin"], "the shell is fetched with the session");
});

test("a signed-out person's shell is not kept: the answer was a redirect to the login page", async () => {
  const worker = await installed({ network: () => answer(200, { redirected: true }) });
  assert.equal(cacheOf(worker).has("/shell/"), false);
});

test("pages come from the network; a chat address gets the shell only when it cannot be reached", async () => {
  let network = (url) => answer(200, { body: "fresh " + url });
  const worker = await installed({ network: (url, init) => network(url, init) });
  const online = await dispatch(worker.listeners.fetch, { request: navigation("/c/3/") });
  assert.equal((await online.responded).body, "fresh " + ORIGIN + "/c/3/");

  network = OFFLINE;
  for (const path of ["/", "/c/3/", "/c/12/"]) {
    const event = await dispatch(worker.listeners.fetch, { request: navigation(path) });
    assert.equal((await event.responded).body, "fresh /shell/", path);
  }
  // Not a chat address: the browser shows that it is offline.
  const settings = await dispatch(worker.listeners.fetch, { request: navigation("/settings/") });
  await assert.rejects(settings.responded, TypeError);
});

test("the API, uploaded files and other sites are left to the network", async () => {
  const worker = await installed({});
  for (const url of [ORIGIN + "/api/conversations/", ORIGIN + "/files/abc/", "https://cdn.example/x.js"]) {
    const event = await dispatch(worker.listeners.fetch, { request: { url, method: "GET", mode: "cors" } });
    assert.equal(event.responded, undefined, url);
  }
  assert.deepEqual(Array.from(cacheOf(worker).keys()), ["/shell/"]);
});

test("a hashed static file comes from the cache; an unhashed one from the network first", async () => {
  const asked = [];
  const hashed = "/static/messaging/main.3f2a9c1b4d5e.js";
  const worker = await installed({
    assets: [hashed],
    network: (url) => {
      asked.push(url);
      return answer(200, { body: "v1" });
    },
  });
  asked.length = 0;
  const cached = await dispatch(worker.listeners.fetch, { request: { url: ORIGIN + hashed, method: "GET", mode: "cors" } });
  assert.equal((await cached.responded).body, "v1");
  assert.deepEqual(asked, [], "no request for a file that cannot have changed");

  const plain = { url: ORIGIN + "/static/messaging/main.js", method: "GET", mode: "cors" };
  await (await dispatch(worker.listeners.fetch, { request: plain })).responded;
  assert.deepEqual(asked, [ORIGIN + "/static/messaging/main.js"]);
});

test("a redirect of a chat page (signed out) and a logout drop the shell and the offline copy", async () => {
  let network = () => answer(200, { body: "page" });
  const worker = await installed({ network: (url, init) => network(url, init) });
  assert.equal(cacheOf(worker).has("/shell/"), true);

  network = () => answer(0, { type: "opaqueredirect" });
  await (await dispatch(worker.listeners.fetch, { request: navigation("/") })).responded;
  assert.equal(cacheOf(worker).has("/shell/"), false);
  assert.deepEqual(worker.deleted, ["chat-offline"]);

  network = () => answer(200, { body: "page" });
  await dispatch(worker.listeners.message, { data: { type: "shell" } });
  assert.equal(cacheOf(worker).has("/shell/"), true, "signed in again: kept again");
  const logout = await dispatch(worker.listeners.fetch, { request: navigation("/accounts/logout/", "POST") });
  assert.equal(logout.responded, undefined, "the logout itself goes to the server untouched");
  assert.equal(cacheOf(worker).has("/shell/"), false);

  // Offline and signed out: no chat page from the worker.
  network = OFFLINE;
  const event = await dispatch(worker.listeners.fetch, { request: navigation("/") });
  await assert.rejects(event.responded, TypeError);
});

test("a new version drops the caches of the versions before it", async () => {
  const worker = loadWorker({});
  await worker.caches.open("chat-0123456789abcdef");
  await worker.caches.open("someone-elses");
  await dispatch(worker.listeners.install, {});
  await dispatch(worker.listeners.activate, {});
  assert.deepEqual(Array.from(worker.caches.named.keys()).sort(), ["chat-dev", "someone-elses"]);
});

// -- pushes it cannot read ----------------------------------------------------------------------

async function unreadablePush(worker) {
  const shown = [];
  worker.context.registration.showNotification = async (title, options) => shown.push({ title, ...options });
  await dispatch(worker.listeners.push, { data: { json: () => JSON.parse("not json") } });
  return shown;
}

test("a push it cannot read is named in the person's language, from the kept catalogue", async () => {
  const worker = loadWorker();
  const cache = await worker.caches.open("chat-dev");
  await cache.put("/jsi18n/", answer(200, { json: async () => ({ catalog: { "New message": "Neue Nachricht" } }) }));
  assert.deepEqual(await unreadablePush(worker), [{ title: "Neue Nachricht", tag: "chat" }]);
});

test("with no catalogue kept, a push it cannot read is named in English", async () => {
  assert.deepEqual(await unreadablePush(loadWorker()), [{ title: "New message", tag: "chat" }]);
});
