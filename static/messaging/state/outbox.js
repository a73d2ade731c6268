/*
 * The outbox: messages written here that the server has not acknowledged yet, kept in the
 * browser's storage so that a reload or a lost connection loses none of them. Each item is
 * {client_id, conversation, to, body, created_at, state: "pending"|"failed", error, attempts}.
 * A first message to someone has `to` (their username) and no conversation until the
 * server's answer names the one it opened; it goes, and goes again, with `to`.
 * A send that failed for a passing reason (rate limit, database unavailable) is retried on
 * its own; any other failure waits for the person to retry or discard it.
 */

// Failures that pass on their own: the outbox retries these without being asked.
const TRANSIENT = new Set(["rate_limited", "unavailable"]);
// Past this many tries, an unavailable server is the person's call.
const MAX_AUTOMATIC_ATTEMPTS = 4;

/** How long to wait before retrying a failed item on its own, or null for not at all. */
export function retryDelay(item) {
  const code = item.error && item.error.code;
  if (item.state !== "failed" || !TRANSIENT.has(code)) return null;
  if (code === "unavailable" && item.attempts > MAX_AUTOMATIC_ATTEMPTS) return null;
  if (code === "rate_limited") return Math.max(1, Number(item.error.retry_after) || 1) * 1000 + 250;
  return Math.min(30000, 2000 * Math.pow(2, item.attempts - 1));
}

function validAttachment(a) {
  return a && typeof a.key === "string" && typeof a.name === "string" && (a.upload === null || typeof a.upload.id === "string");
}

function valid(item) {
  return (
    item &&
    typeof item.client_id === "string" &&
    typeof item.body === "string" &&
    (typeof item.conversation === "number" || (item.conversation === null && typeof item.to === "string")) &&
    (item.attachments === undefined || (Array.isArray(item.attachments) && item.attachments.every(validAttachment)))
  );
}

/** The item's files (none for a plain message). */
export function filesOf(item) {
  return Array.isArray(item.attachments) ? item.attachments : [];
}

/** Whether every file of the item is uploaded, so that the message can go. */
export function isReady(item) {
  return filesOf(item).every((a) => a.upload !== null);
}

/** The `message.send` frame of an item: to the person it was first written to, if so. */
export function sendFrame(item) {
  const frame = { type: "message.send", body: item.body, client_id: item.client_id };
  if (typeof item.to === "string") frame.to = item.to;
  else frame.conversation = item.conversation;
  if (typeof item.reply_to === "number") frame.reply_to = item.reply_to;
  const files = filesOf(item);
  if (files.length) frame.attachments = files.map((a) => a.upload.id);
  return frame;
}

/**
 * The outbox of one person, kept by `store` (see state/storage.js) under `key`.
 * `onRetryDue()` is called when failed items are due to be tried again.
 */
export function createOutbox({ store, key, onRetryDue = () => {}, timers = globalThis }) {
  const retryTimers = new Map(); // client_id -> timeout

  function all() {
    const items = store.get(key, []);
    return Array.isArray(items) ? items.filter(valid) : [];
  }

  function save(items) {
    if (items.length) store.set(key, items);
    else store.remove(key);
  }

  function get(clientId) {
    return all().find((i) => i.client_id === clientId) || null;
  }

  /** Put an item in the place of the one with `oldId` (added at the end if there is none). */
  function replace(oldId, item) {
    const items = all();
    const at = items.findIndex((i) => i.client_id === oldId);
    if (at >= 0) items[at] = item;
    else items.push(item);
    save(items);
  }

  function cancelRetry(clientId) {
    const t = retryTimers.get(clientId);
    if (t !== undefined) {
      timers.clearTimeout(t);
      retryTimers.delete(clientId);
    }
  }

  function remove(clientId) {
    cancelRetry(clientId);
    const items = all();
    const at = items.findIndex((i) => i.client_id === clientId);
    if (at < 0) return null;
    const [removed] = items.splice(at, 1);
    save(items);
    return removed;
  }

  return {
    all,
    get,
    /**
     * A new message to send, in state "pending"; `to` instead of a conversation for a first
     * one; `replyTo` and `quote` for a reply; `attachments` for files (see above).
     */
    add({ clientId, conversation = null, to = null, body, createdAt, replyTo = null, quote = null, attachments = [] }) {
      const item = {
        client_id: clientId,
        conversation: to === null ? conversation : null,
        body,
        created_at: createdAt,
        state: "pending",
        error: null,
        attempts: 0,
      };
      if (to !== null) item.to = to;
      if (typeof replyTo === "number") {
        item.reply_to = replyTo;
        item.quote = quote;
      }
      if (attachments.length) {
        item.attachments = attachments.map((a) => ({
          key: a.key,
          name: a.name,
          size: a.size,
          type: a.type,
          upload: a.upload || null,
        }));
      }
      replace(item.client_id, item);
      return item;
    },
    /** A file of an item is uploaded: answers the item (null if it is gone). */
    uploaded(clientId, key, upload) {
      const item = get(clientId);
      const file = item && filesOf(item).find((a) => a.key === key);
      if (!file) return null;
      file.upload = upload;
      replace(clientId, item);
      return item;
    },
    /**
     * The person took a file off a message still waiting for it: answers the item, or null
     * when nothing was left to send (no text, no other file) and the item went too.
     */
    dropFile(clientId, key) {
      const item = get(clientId);
      if (!item) return null;
      item.attachments = filesOf(item).filter((a) => a.key !== key);
      if (!item.attachments.length) {
        delete item.attachments;
        if (!item.body.trim()) {
          remove(clientId);
          return null;
        }
      }
      replace(clientId, item);
      return item;
    },
    /** The item that holds the file with this key, or null. */
    holding(key) {
      return all().find((i) => filesOf(i).some((a) => a.key === key)) || null;
    },
    /** The conversation first messages to `to` opened: they show there from now on. */
    assign(to, conversationId) {
      const items = all();
      let changed = false;
      for (const item of items) {
        if (item.to === to && item.conversation === null) {
          item.conversation = conversationId;
          changed = true;
        }
      }
      if (changed) save(items);
    },
    /** The server has the message: forget it; answers the item, or null if unknown. */
    ack: remove,
    /** The person gave up on it. */
    discard: remove,
    /** The server refused it: mark it failed and plan an automatic retry if one fits. */
    fail(clientId, error) {
      const item = get(clientId);
      if (!item) return null;
      item.state = "failed";
      item.error = { code: error.code, detail: error.detail || "", retry_after: error.retry_after };
      item.attempts = (item.attempts || 0) + 1;
      replace(clientId, item);
      cancelRetry(clientId);
      const wait = retryDelay(item);
      if (wait !== null) {
        retryTimers.set(
          clientId,
          timers.setTimeout(() => {
            retryTimers.delete(clientId);
            onRetryDue();
          }, wait)
        );
      }
      return item;
    },
    /**
     * Ready an item to go again; a conflict gets a new client_id, as it is a new message
     * now. `manual`: the person asked, so the automatic attempts start over. Answers the
     * item to send, or null.
     */
    retry(clientId, { manual = false, newClientId } = {}) {
      cancelRetry(clientId);
      const item = get(clientId);
      if (!item) return null;
      if (manual) item.attempts = 0;
      const fresh =
        item.error && item.error.code === "conflict"
          ? Object.assign({}, item, { client_id: newClientId() })
          : item;
      fresh.state = "pending";
      fresh.error = null;
      replace(clientId, fresh);
      return fresh;
    },
    /** Items that failed for a passing reason and may go again, oldest first. */
    dueForRetry() {
      return all().filter((i) => retryDelay(i) !== null);
    },
    /** Items to send when the connection is (back) up: all but the failed ones and those whose files are not up yet. */
    unsent() {
      return all().filter((i) => i.state !== "failed" && isReady(i));
    },
    /** Items whose files are still to upload (after a reload: to upload again). */
    uploading() {
      return all().filter((i) => i.state !== "failed" && !isReady(i));
    },
    /** Forget everything written to a conversation the person is no longer in. */
    dropConversation(conversationId) {
      const items = all();
      const keep = items.filter((i) => i.conversation !== conversationId);
      if (keep.length !== items.length) save(keep);
    },
  };
}
