/* Stand-ins for what the browser gives the client: storage, timers, a WebSocket. */

/** A storage area (localStorage's interface) kept in a Map. */
export function fakeStorage() {
  const data = new Map();
  return {
    getItem: (key) => (data.has(key) ? data.get(key) : null),
    setItem: (key, value) => data.set(key, String(value)),
    removeItem: (key) => data.delete(key),
    clear: () => data.clear(),
    key: (i) => Array.from(data.keys())[i] ?? null,
    get length() {
      return data.size;
    },
  };
}

/** Timers that run only when the test moves the clock. */
export function fakeTimers() {
  let now = 0;
  let nextId = 1;
  const pending = new Map(); // id -> {at, fn, every}
  const timers = {
    setTimeout(fn, wait) {
      const id = nextId++;
      pending.set(id, { at: now + wait, fn, every: null });
      return id;
    },
    setInterval(fn, every) {
      const id = nextId++;
      pending.set(id, { at: now + every, fn, every });
      return id;
    },
    clearTimeout: (id) => pending.delete(id),
    clearInterval: (id) => pending.delete(id),
    /** Move the clock forward, running what falls due in order. */
    advance(ms) {
      const end = now + ms;
      for (;;) {
        let due = null;
        for (const [id, t] of pending) if (t.at <= end && (!due || t.at < due[1].at)) due = [id, t];
        if (!due) break;
        const [id, t] = due;
        now = t.at;
        if (t.every === null) pending.delete(id);
        else t.at += t.every;
        t.fn();
      }
      now = end;
    },
    /** The waits of the timeouts still pending, from now. */
    waits: () => Array.from(pending.values()).map((t) => t.at - now),
    now: () => now,
  };
  return timers;
}

/** A WebSocket class whose instances the test opens, feeds and closes. */
export function fakeWebSocketClass() {
  const opened = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = FakeWebSocket.OPEN;
      this.sent = [];
      opened.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {
      this.readyState = FakeWebSocket.CLOSED;
    }
    /** The server sends a frame. */
    receive(frame) {
      this.onmessage({ data: JSON.stringify(frame) });
    }
    /** The connection ends with this code. */
    lose(code = 1006) {
      this.readyState = FakeWebSocket.CLOSED;
      this.onclose({ code });
    }
  }
  Object.assign(FakeWebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3, opened });
  return FakeWebSocket;
}

export const alice = { id: 1, username: "alice" };
export const bob = { id: 2, username: "bob" };
export const carol = { id: 3, username: "carol" };

let nextId = 100;

/** A message as the server shows it. */
export function message(fields) {
  const id = fields.id ?? nextId++;
  return {
    id,
    seq: id,
    conversation: 12,
    sender: bob,
    body: "hi",
    client_id: "c-" + id,
    created_at: "2026-11-26T10:00:00.000000Z",
    edited_at: null,
    deleted: false,
    ...fields,
  };
}

/** A direct conversation between alice and bob, as the API lists it. */
export function direct(fields = {}) {
  return {
    id: 12,
    kind: "direct",
    title: "",
    members: [alice, bob],
    last_message: null,
    unread: 0,
    last_read: 0,
    created_at: "2026-11-26T09:00:00.000000Z",
    last_activity_at: "2026-11-26T09:00:00.000000Z",
    ...fields,
  };
}
