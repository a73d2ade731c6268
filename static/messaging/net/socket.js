/*
 * The one WebSocket of a tab: opening it, knowing when the server is ready, pinging it to
 * notice a dead or silent line, and reconnecting with jittered, capped exponential backoff.
 * It knows frames only as JSON; what they mean is the state's business.
 *
 * Pings are limited per user across all tabs (CHAT_PING_RATE, 60 per 30 s), and so are
 * handshakes (CHAT_CONNECT_RATE): a tab pings every 15 s when idle, and probes the line at
 * most every few seconds right after it sent something that expects an answer.
 */

export const PING_EVERY = 15000;
// A server that does not answer a ping in this long is taken for silent (hung or cut off).
export const PONG_TIMEOUT = 5000;
// A probe after a send waits at least this long after the previous ping.
export const PROBE_SPACING = 3000;
// A handshake that brings no `ready` in this long is given up and tried again.
export const CONNECT_TIMEOUT = 10000;
// Waits between tries stop growing here, so that a server that is back is found soon...
export const MAX_BACKOFF = 5000;
// ...and grow further only after this many tries in a row (over a minute of trying), so
// that a server refusing every handshake is not hammered by every tab.
export const PATIENT_AFTER = 20;
export const MAX_BACKOFF_PATIENT = 20000;
// Closed for abuse (1008): the server asks for a pause before the next try.
const PAUSE_AFTER_ABUSE = 30000;
// Turned away by a busy server (1013 after a `busy` error): it names the second to come
// back, each client a later one; up to a second of jitter keeps clients of one second apart.
// A wait longer than this is not believed.
export const LONGEST_BUSY_WAIT = 300000;
// Frames the server always answers: after one of these, silence means trouble.
const EXPECTS_ANSWER = new Set(["message.send", "message.edit", "message.delete", "sync"]);

/**
 * The wait before reconnect attempt number `attempt` (1, 2, …): half to all of 0.5 s, 1 s,
 * 2 s, 4 s, then of 5 s; of 20 s once `PATIENT_AFTER` tries in a row have failed.
 */
export function backoffDelay(attempt, random = Math.random) {
  const cap = attempt > PATIENT_AFTER ? MAX_BACKOFF_PATIENT : MAX_BACKOFF;
  const base = Math.min(cap, 500 * Math.pow(2, Math.min(attempt - 1, 6)));
  return base / 2 + random() * (base / 2);
}

/**
 * The least wait before reconnecting after a close with this code, or null for never
 * (4401: the session ended, the page goes to the login page instead). `busySeconds`: the
 * `retry_after` of a `busy` error that came before the close.
 */
export function minimumWaitAfterClose(code, random = Math.random, busySeconds = null) {
  if (code === 4401) return null;
  if (code === 1008) return PAUSE_AFTER_ABUSE + random() * (PAUSE_AFTER_ABUSE / 2);
  if (code === 1013 && busySeconds > 0) {
    return Math.min(busySeconds * 1000, LONGEST_BUSY_WAIT) + random() * 1000;
  }
  return 0;
}

/**
 * A socket that keeps itself connected. `onFrame(frame)` gets every frame (a `ready` one
 * first on each connection); `onClose({code, hadReady, attempt, silent, busy})` is told of
 * each loss before the next try is scheduled (`silent`: the server stopped answering, as a
 * hung server does, rather than closing; `busy`: the seconds a busy server asked this client
 * to wait, or null); `onConnecting()` when a new socket starts opening.
 */
export function createSocket({
  url,
  onFrame,
  onClose,
  onConnecting = () => {},
  WebSocketImpl = globalThis.WebSocket,
  timers = globalThis,
  random = Math.random,
  // A monotonic clock: the wall clock may jump (a corrected time, a sleeping laptop).
  now = () => (globalThis.performance ? globalThis.performance.now() : Date.now()),
}) {
  let ws = null;
  // "closed": no socket; "connecting": opening, or open before the server's `ready`;
  // "ready": frames may be sent.
  let phase = "closed";
  let attempt = 0;
  let reconnectTimer = null;
  let connectTimer = null;
  let pingTimer = null;
  let pongTimer = null;
  let probeTimer = null;
  let lastPingAt = -Infinity;
  // The `retry_after` of a `busy` answer to the handshake in progress, if any.
  let busySeconds = null;

  function write(frame) {
    if (!ws || phase !== "ready" || ws.readyState !== WebSocketImpl.OPEN) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  function send(frame) {
    const sent = write(frame);
    if (sent && EXPECTS_ANSWER.has(frame.type)) probe();
    return sent;
  }

  /** Ping now, unless a ping waits for its pong; a missing pong drops the socket. */
  function ping() {
    timers.clearTimeout(probeTimer);
    probeTimer = null;
    if (phase !== "ready" || pongTimer !== null) return;
    if (!write({ type: "ping" })) return;
    lastPingAt = now();
    pongTimer = timers.setTimeout(() => {
      pongTimer = null;
      drop(true);
    }, PONG_TIMEOUT);
  }

  /** Check soon that the server still answers, within the ping budget. */
  function probe() {
    if (phase !== "ready" || pongTimer !== null || probeTimer !== null) return;
    const wait = lastPingAt + PROBE_SPACING - now();
    if (wait <= 0) ping();
    else probeTimer = timers.setTimeout(ping, wait);
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
    busySeconds = null;
    onConnecting();
    // A server that accepts the connection but never answers (hung) leaves a handshake
    // pending for minutes: give it up and try again.
    connectTimer = timers.setTimeout(() => {
      connectTimer = null;
      if (sock === ws && phase === "connecting") drop(true);
    }, CONNECT_TIMEOUT);
    sock.onmessage = (event) => {
      if (sock !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (!frame || typeof frame.type !== "string") return;
      if (frame.type === "error" && frame.code === "busy" && phase === "connecting") {
        // The server turns the handshake away and closes with 1013: not the state's business.
        busySeconds = Number(frame.retry_after) || null;
        return;
      }
      if (frame.type === "ready") {
        phase = "ready";
        attempt = 0;
        timers.clearTimeout(connectTimer);
        connectTimer = null;
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
      closed(event.code, false);
    };
  }

  /** Forget a socket that stopped answering and treat it as lost. */
  function drop(silent) {
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
    closed(1006, silent);
  }

  function closed(code, silent) {
    const hadReady = phase === "ready";
    phase = "closed";
    stopPing();
    timers.clearTimeout(connectTimer);
    connectTimer = null;
    const busy = code === 1013 && !hadReady ? busySeconds : null;
    onClose({ code, hadReady, attempt, silent, busy });
    const wait = minimumWaitAfterClose(code, random, busy);
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
    pingTimer = timers.setInterval(ping, PING_EVERY);
  }

  function stopPing() {
    timers.clearInterval(pingTimer);
    pingTimer = null;
    timers.clearTimeout(pongTimer);
    pongTimer = null;
    timers.clearTimeout(probeTimer);
    probeTimer = null;
  }

  return {
    connect,
    send,
    /** Try again at once, with the backoff started over (the person asked). */
    reconnectNow() {
      attempt = 0;
      if (ws && phase !== "ready") drop(false); // a handshake that hangs is given up
      connect();
    },
    /**
     * The page came back into view, or the network came back: reconnect at once if no
     * socket is open, and make sure an open one still answers.
     */
    reconnectSoon() {
      if (ws) {
        if (phase === "ready") probe();
        return;
      }
      attempt = 0;
      connect();
    },
    isOpen: () => ws !== null,
  };
}
