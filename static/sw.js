/*
 * The chat's service worker, served as /sw.js by messaging/web/service_worker.py (scope: the whole site).
 *
 * Pushes, shown while nobody has the chat open:
 *   {"type": "message", conversation, message, title, body, tag, url, mention, sent_at}
 *     shows (or replaces) the conversation's notification, never with an older message;
 *   {"type": "read", conversation, up_to, tag}
 *     closes it: the conversation was read up to that message somewhere else.
 * A click focuses a tab already on the conversation, or one of the chat's tabs taken there,
 * or opens one.
 *
 * The app shell, for an offline start: the static files (cached at install, under the
 * version the server wrote below), and /shell/, the chat page without data, cached for the
 * person signed in (a page asks for it after each load). Pages go to the network first; only
 * when it cannot be reached does a chat address get the shell, which the client fills with
 * what it kept in IndexedDB (static/messaging/state/offline.js). An answer that sends the
 * person to the login page, and a logout, drop the shell and that database: a signed-out
 * visit never gets a chat page from here. Nothing of /api/ is cached here.
 * Nothing here is evaluated from text (CSP: script-src 'self').
 */

"use strict";

// Filled in by messaging/web/service_worker.py when served: the static files' version
// and the shell's files under their (hashed, in production) URLs.
const VERSION = "dev";
const SHELL_ASSETS = [];

const CACHE_PREFIX = "chat-";
const CACHE = CACHE_PREFIX + VERSION;
const SHELL_URL = "/shell/";
const LOGIN_PATH = "/accounts/login/";
const LOGOUT_PATH = "/accounts/logout/";
// Fetched by pages and worth having offline: the client's texts and the manifest.
const KEPT_PATHS = new Set(["/jsi18n/", "/manifest.webmanifest"]);
const OFFLINE_DB = "chat-offline"; // state/offline.js
// A file name with Django's content hash ("main.3f2a9c1b4d5e.js") never changes content.
const HASHED = /\.[0-9a-f]{12}\.[A-Za-z0-9]+$/;

/** Whether a path shows the chat page: the inbox or a conversation. */
function isChatPath(pathname) {
  return pathname === "/" || /^\/c\/\d+\/$/.test(pathname);
}

async function keepShell(cache) {
  let response;
  try {
    response = await fetch(SHELL_URL, { credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    return; // offline: keep the copy there is
  }
  if (response.ok && !response.redirected) await cache.put(SHELL_URL, response);
  else if (response.redirected || response.status === 401 || response.status === 403) await forgetPerson();
}

/** Drop what belongs to the person: the shell, the texts, the offline copy of the chat. */
async function forgetPerson() {
  const names = await self.caches.keys();
  for (const name of names.filter((n) => n.startsWith(CACHE_PREFIX))) {
    const cache = await self.caches.open(name);
    await cache.delete(SHELL_URL);
    for (const path of KEPT_PATHS) await cache.delete(path, { ignoreSearch: true, ignoreVary: true });
  }
  if (self.indexedDB) {
    await new Promise((resolve) => {
      const request = self.indexedDB.deleteDatabase(OFFLINE_DB);
      request.onsuccess = request.onerror = request.onblocked = () => resolve();
    });
  }
}

self.addEventListener("install", (event) => {
  // A new version takes over at once: what it caches is complete before it does.
  self.skipWaiting();
  event.waitUntil(
    (async () => {
      const cache = await self.caches.open(CACHE);
      // One by one: a file that fails leaves the others cached, and the worker installed.
      await Promise.all(SHELL_ASSETS.map((url) => cache.add(url).catch(() => null)));
      await keepShell(cache);
    })()
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await self.caches.keys();
      await Promise.all(names.filter((n) => n.startsWith(CACHE_PREFIX) && n !== CACHE).map((n) => self.caches.delete(n)));
      await self.clients.claim();
    })()
  );
});

self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type === "shell") event.waitUntil(self.caches.open(CACHE).then(keepShell));
  else if (data.type === "forget") event.waitUntil(forgetPerson());
});

// -- fetches ----------------------------------------------------------------------------------

async function page(request) {
  let response;
  try {
    response = await fetch(request);
  } catch (error) {
    const url = new URL(request.url);
    if (isChatPath(url.pathname)) {
      const cache = await self.caches.open(CACHE);
      const shell = await cache.match(SHELL_URL, { ignoreVary: true });
      if (shell) return shell;
    }
    throw error;
  }
  // A chat page that redirects (to the login page: signed out) or the login page itself.
  const path = new URL(request.url).pathname;
  if (path.startsWith(LOGIN_PATH) || (response.type === "opaqueredirect" && isChatPath(path)) || response.status === 401) {
    await forgetPerson();
  }
  return response;
}

async function networkFirst(request) {
  const cache = await self.caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic") await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const kept = await cache.match(request, { ignoreVary: true });
    if (kept) return kept;
    throw error;
  }
}

async function cacheFirst(request) {
  const cache = await self.caches.open(CACHE);
  const kept = await cache.match(request);
  if (kept) return kept;
  const response = await fetch(request);
  if (response.ok && response.type === "basic") await cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.method !== "GET") {
    if (url.pathname === LOGOUT_PATH) event.waitUntil(forgetPerson());
    return; // to the network, untouched
  }
  if (request.mode === "navigate") {
    event.respondWith(page(request));
  } else if (url.pathname.startsWith("/static/")) {
    event.respondWith(HASHED.test(url.pathname) ? cacheFirst(request) : networkFirst(request));
  } else if (KEPT_PATHS.has(url.pathname)) {
    event.respondWith(networkFirst(request));
  }
  // Anything else (the API, files, the socket) goes to the network as if there were no worker.
});

// -- pushes -----------------------------------------------------------------------------------

function readPush(event) {
  if (!event.data) return null;
  try {
    const data = event.data.json();
    return data && typeof data === "object" ? data : null;
  } catch (e) {
    return null;
  }
}

function sameConversationPath(url, conversation) {
  try {
    return new URL(url, self.location.origin).pathname === "/c/" + conversation + "/";
  } catch (e) {
    return false;
  }
}

async function showMessage(data) {
  const tag = String(data.tag || "chat");
  const shown = await self.registration.getNotifications({ tag });
  // Pushes of one conversation may arrive out of order: keep the newest message shown.
  if (shown.some((n) => n.data && Number(n.data.message) > Number(data.message))) return;
  await self.registration.showNotification(String(data.title || "New message"), {
    body: String(data.body || ""),
    tag,
    renotify: true,
    timestamp: data.sent_at ? Date.parse(data.sent_at) : Date.now(),
    data: {
      url: typeof data.url === "string" && data.url.startsWith("/") ? data.url : "/",
      conversation: data.conversation,
      message: data.message,
    },
  });
}

async function closeRead(data) {
  const shown = await self.registration.getNotifications({ tag: String(data.tag || "") });
  for (const notification of shown) {
    const message = notification.data ? Number(notification.data.message) : 0;
    if (!message || message <= Number(data.up_to)) notification.close();
  }
}

/** Name an unreadable push in the person's language, from the catalogue the pages keep. */
async function fallbackTitle() {
  try {
    const cache = await self.caches.open(CACHE);
    const kept = await cache.match("/jsi18n/", { ignoreVary: true });
    const title = kept ? ((await kept.json()).catalog || {})["New message"] : null;
    return typeof title === "string" && title ? title : "New message";
  } catch (e) {
    return "New message";
  }
}

self.addEventListener("push", (event) => {
  const data = readPush(event);
  if (!data) {
    event.waitUntil(fallbackTitle().then((title) => self.registration.showNotification(title, { tag: "chat" })));
    return;
  }
  if (data.type === "read") {
    event.waitUntil(closeRead(data));
    return;
  }
  event.waitUntil(showMessage(data));
});

// -- notification clicks ----------------------------------------------------------------------

/** The order to try tabs in: the chat's own before other pages, the focused one first. */
function rank(client) {
  const chat = isChatPath(new URL(client.url).pathname) ? 0 : 2;
  return chat + (client.focused ? 0 : 1);
}

async function openConversation(url, conversation) {
  const target = new URL(url, self.location.origin).href;
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const own = windows.filter((client) => new URL(client.url).origin === self.location.origin);
  const there = own.find((client) => sameConversationPath(client.url, conversation));
  if (there) return there.focus();
  for (const client of own.sort((a, b) => rank(a) - rank(b))) {
    if ("navigate" in client) {
      try {
        const moved = await client.navigate(target);
        if (moved) return moved.focus();
      } catch (e) {
        // Not this one (not controlled by this worker yet): try the next, or open one.
      }
    }
  }
  return self.clients.openWindow(target);
}

self.addEventListener("notificationclick", (event) => {
  const data = event.notification.data || {};
  event.notification.close();
  event.waitUntil(openConversation(data.url || "/", data.conversation));
});
