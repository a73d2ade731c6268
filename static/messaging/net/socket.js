/*
 * The one WebSocket of a tab: opening it, knowing when the server is ready, pinging it to
 * notice a dead line, and reconnecting with jittered exponential backoff. It knows frames
 * only as JSON; what they mean is the state's business.
 */

export const PING_EVERY = 25000;
export const PONG_TIMEOUT = 10000;
const MAX_BACKOFF = 30000;
// Closed for abuse (1008): the server asks for a pause before the next try.
const PAUSE_AFTER_ABUSE = 30000;

/** The wait before reconnect attempt number `attempt` (1, 2, …): half to all of 1 s, 2 s, … 30 s. */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(MAX_BACKOFF, 1000 * Math.pow(2, Math.min(attempt - 1, 5)));
  return base / 2 + random() * (base / 2);
}

/**
 * The least wait before reconnecting after a close with this code, or null for never
 * (4401: the session ended, the page goes to the login page instead).
 */
export function minimumWaitAfterClose(code, random = Math.random) {
  if (code === 4401) return null;
  if (code === 1008) return PAUSE_AFTER_ABUSE + random() * (PAUSE_AFTER_ABUSE / 2);
  return 0;
}

/**
 * A socket that keeps itself connected. `onFrame(frame)` gets every frame (a `ready` one
 * first on each connection); `onClose({code, hadReady, attempt})` is told of each loss
 * before the next try is scheduled; `onConnecting()` when a new socket starts opening.
 */
export function createSocket({
  url,
  onFrame,
  onClose,
  onConnecting = () => {},
  WebSocketImpl = globalThis.WebSocket,
  timers = globalThis,
  random = Math.random,
}) {
  let ws = null;
  // "closed": no socket; "connecting": opening, or open before the server's `ready`;
  // "ready": frames may be sent.
  let phase = "closed";
  let attempt = 0;
  let reconnectTimer = null;
  let pingTimer = null;
  let pongTimer = null;

  function send(frame) {
    if (!ws || phase !== "ready" || ws.readyState !== WebSocketImpl.OPEN) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  function connect() {
    timers.clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (ws) return;
    let sock;
    try {
      sock = new WebSocketImpl(typeof url === "function" ? url() : url);
    } catch (e) {
      scheduleReconnect(0);
      return;
    }
    ws = sock;
    phase = "connecting";
    onConnecting();
    sock.onmessage = (event) => {
      if (sock !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (!frame || typeof frame.type !== "string") return;
      if (frame.type === "ready") {
        phase = "ready";
        attempt = 0;
        startPing();
      } else if (frame.type === "pong") {
        timers.clearTimeout(pongTimer);
        pongTimer = null;
      }
      onFrame(frame);
    };
    sock.onclose = (event) => {
      if (sock !== ws) return;
      ws = null;
      closed(event.code);
    };
  }

  /** Forget a socket that stopped answering and treat it as lost. */
  function drop() {
    const sock = ws;
    ws = null;
    if (sock) {
      sock.onmessage = sock.onclose = null;
      try {
        sock.close(1000);
      } catch (e) {
        /* ignore */
      }
    }
    closed(1006);
  }

  function closed(code) {
    const hadReady = phase === "ready";
    phase = "closed";
    stopPing();
    onClose({ code, hadReady, attempt });
    const wait = minimumWaitAfterClose(code, random);
    if (wait !== null) scheduleReconnect(wait);
  }

  function scheduleReconnect(minDelay) {
    timers.clearTimeout(reconnectTimer);
    attempt += 1;
    const delay = Math.max(minDelay || 0, backoffDelay(attempt, random));
    reconnectTimer = timers.setTimeout(connect, delay);
  }

  function startPing() {
    stopPing();
    pingTimer = timers.setInterval(() => {
      if (phase !== "ready") return;
      if (send({ type: "ping" }) && pongTimer === null) {
        pongTimer = timers.setTimeout(() => {
          pongTimer = null;
          drop();
        }, PONG_TIMEOUT);
      }
    }, PING_EVERY);
  }

  function stopPing() {
    timers.clearInterval(pingTimer);
    pingTimer = null;
    timers.clearTimeout(pongTimer);
    pongTimer = null;
  }

  return {
    connect,
    send,
    /** Try again at once, with the backoff started over (the person asked, or came back online). */
    reconnectNow() {
      attempt = 0;
      connect();
    },
    /** Reconnect now unless a socket is open or opening. */
    reconnectSoon() {
      if (ws) return;
      attempt = 0;
      connect();
    },
    isOpen: () => ws !== null,
  };
}
