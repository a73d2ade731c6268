/*
 * What this browser keeps of the chat for an offline start, in IndexedDB, per person: the
 * inbox (the KEEP_CONVERSATIONS conversations with the latest activity) and the last
 * KEEP_MESSAGES messages shown of each. When the network cannot be reached, the service
 * worker answers a chat address with the chat page without data (/shell/, see static/sw.js),
 * and the page is drawn from this copy, read-only, until the connection is back.
 * Logging out drops it: here, in the worker, and by the logout's Clear-Site-Data.
 */

export const DB_NAME = "chat-offline";
const STORE = "snapshots";
export const KEEP_CONVERSATIONS = 30;
export const KEEP_MESSAGES = 50;
const SAVE_AFTER_MS = 800;
const LOAD_WAIT_MS = 3000;

const inboxKey = (userId) => userId + ":inbox";
const messagesKey = (userId, convId) => userId + ":c:" + convId;

function plain(value) {
  return JSON.parse(JSON.stringify(value));
}

/** The inbox's record: the conversations with the latest activity, as the API shows them. */
export function inboxRecord(state, now) {
  const conversations = state.order
    .slice(0, KEEP_CONVERSATIONS)
    .map((id) => state.convs.get(id))
    .filter(Boolean);
  return { key: inboxKey(state.me.id), user: state.me.id, conversations: plain(conversations), savedAt: now };
}

/** The open conversation's record (its newest messages shown), or null: nothing to keep. */
export function messagesRecord(state, now) {
  const cur = state.cur;
  if (!cur || typeof cur.id !== "number" || !cur.loaded || cur.detached || cur.gone) return null;
  const all = Array.from(cur.msgs.values()).sort((a, b) => a.id - b.id);
  const kept = all.slice(-KEEP_MESSAGES);
  return {
    key: messagesKey(state.me.id, cur.id),
    user: state.me.id,
    conversation: cur.id,
    messages: plain(kept),
    hasMore: Boolean(cur.hasMore) || all.length > kept.length,
    savedAt: now,
  };
}

/** The keys to delete: other people's, and conversations no longer in the kept inbox. */
export function staleKeys(keys, inbox) {
  const kept = new Set([inbox.key]);
  for (const conv of inbox.conversations) kept.add(messagesKey(inbox.user, conv.id));
  return keys.filter((key) => !kept.has(String(key)));
}

/**
 * What an offline start shows, from the kept records and the page's address:
 * {conversations, conversation (the id the address names, or null), histories: Map(id ->
 * {history, hasMore}), savedAt}. Only the person's own records count.
 */
export function offlineBoot(records, userId, pathname) {
  const mine = (records || []).filter((r) => r && r.user === userId);
  const inbox = mine.find((r) => r.key === inboxKey(userId));
  const conversations = inbox && Array.isArray(inbox.conversations) ? inbox.conversations : [];
  const match = /^\/c\/(\d+)\/$/.exec(pathname);
  const histories = new Map();
  for (const r of mine) {
    if (typeof r.conversation === "number" && Array.isArray(r.messages)) {
      histories.set(r.conversation, { history: r.messages, hasMore: Boolean(r.hasMore) });
    }
  }
  return {
    conversations,
    conversation: match ? Number(match[1]) : null,
    histories,
    savedAt: inbox ? inbox.savedAt : null,
  };
}

// -- IndexedDB ------------------------------------------------------------------------------

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function openDb(factory) {
  if (!factory) return Promise.resolve(null);
  return new Promise((resolve) => {
    let request;
    try {
      request = factory.open(DB_NAME, 1);
    } catch (e) {
      resolve(null); // storage disabled
      return;
    }
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "key" });
    request.onsuccess = () => {
      const db = request.result;
      // A logout elsewhere deletes the database: let it.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    request.onerror = request.onblocked = () => resolve(null);
  });
}

async function readAll(factory) {
  const db = await openDb(factory);
  if (!db) return [];
  try {
    return await done(db.transaction(STORE).objectStore(STORE).getAll());
  } catch (e) {
    return [];
  } finally {
    db.close();
  }
}

/**
 * Read every kept record (none when storage is off or empty). The page draws nothing until
 * this answers: past `waitMs` (a database held by a deletion elsewhere) it answers none.
 */
export function loadRecords(factory = globalThis.indexedDB, { waitMs = LOAD_WAIT_MS, timers = globalThis } = {}) {
  return new Promise((resolve) => {
    const late = timers.setTimeout(() => resolve([]), waitMs);
    readAll(factory).then((records) => {
      timers.clearTimeout(late);
      resolve(records);
    });
  });
}

/** Forget everything kept for an offline start: this database, the worker's caches. */
export async function forgetOffline(win = globalThis) {
  const work = [];
  if (win.indexedDB) {
    work.push(
      new Promise((resolve) => {
        const request = win.indexedDB.deleteDatabase(DB_NAME);
        request.onsuccess = request.onerror = request.onblocked = () => resolve();
      })
    );
  }
  if (win.caches) {
    work.push(
      win.caches
        .keys()
        .then((names) => Promise.all(names.filter((n) => n.startsWith("chat-")).map((n) => win.caches.delete(n))))
        .catch(() => null)
    );
  }
  const worker = win.navigator && win.navigator.serviceWorker && win.navigator.serviceWorker.controller;
  if (worker) worker.postMessage({ type: "forget" });
  await Promise.all(work);
}

/**
 * The kept copy of one person's chat: `save()` (soon) writes the inbox and the open
 * conversation from `state`; `seal()` stops all writes (the person logged out).
 */
export function createOfflineCopy({ state, factory = globalThis.indexedDB, timers = globalThis, now = () => Date.now() }) {
  let db = null;
  let sealed = false;
  let timer = null;
  // Taken at once, written together: a conversation left before the write is kept too.
  const shown = new Map(); // conversation id -> its messages record

  async function connection() {
    if (!db) {
      db = openDb(factory).then((opened) => {
        if (opened) opened.addEventListener("close", () => (db = null));
        return opened;
      });
    }
    return db;
  }

  async function write() {
    timer = null;
    if (sealed || !state.me) return;
    const inbox = inboxRecord(state, now());
    const records = Array.from(shown.values()).filter((r) => inbox.conversations.some((c) => c.id === r.conversation));
    shown.clear();
    const open = await connection();
    if (!open || sealed) return;
    try {
      const store = open.transaction(STORE, "readwrite").objectStore(STORE);
      store.put(inbox);
      for (const record of records) store.put(record);
      const keys = await done(store.getAllKeys());
      for (const key of staleKeys(keys, inbox)) store.delete(key);
    } catch (e) {
      db = null; // closed under us (a logout in another tab): open again next time
    }
  }

  return {
    save() {
      if (sealed) return;
      const messages = messagesRecord(state, now());
      if (messages) shown.set(messages.conversation, messages);
      if (timer === null) timer = timers.setTimeout(write, SAVE_AFTER_MS);
    },
    seal() {
      sealed = true;
      shown.clear();
      if (timer !== null) timers.clearTimeout(timer);
      timer = null;
    },
  };
}
