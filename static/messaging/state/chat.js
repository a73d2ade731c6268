/*
 * The client's picture of the chat, and how each server frame changes it: conversations
 * and their unread counts, the open conversation's messages and read pointers, who is
 * online and typing, the sync cursor. No DOM here: every function changes the state and
 * answers what changed, and the views redraw from that.
 *
 * Sync (see docs/protocol.md): `maxSeq` is the largest `seq` seen in pushes and sync
 * results. A push whose `prev_seq` is above it shows that something was missed, and so
 * does a `pong` with a larger `last_seq`: the client then asks for `sync` after `maxSeq`.
 */

import { mentionsMe } from "../text/mentions.js";
import { ms } from "../text/time.js";
import { listText } from "../text/errors.js";
import { convName, gist, typingSentence } from "./conversations.js";
import { formatNumber, gettext, interpolate } from "../text/i18n.js";

const TYPING_SHOW_FOR = 5000;

/** The state of one person's tab. `isVisible()` tells whether the person can see the page. */
export function createChatState({ me, isVisible = () => true, now = () => Date.now() }) {
  return {
    me,
    isVisible,
    now,
    convs: new Map(), // id -> conversation (as the API shows it)
    order: [], // conversation ids, newest activity first
    online: new Set(), // user ids of peers with a socket open
    maxSeq: 0, // largest seq seen in pushes and sync results
    seenChanges: new Set(), // "id:seq" already applied
    cur: null, // the open conversation (see openCurrent)
    typers: new Map(), // conversation id -> Map(user id -> {user, until})
    blocked: new Set(), // usernames the person blocks
    // The connection, as one value: "offline" (no socket the server is ready on),
    // "catching-up" (ready, syncing what was missed), "live" (caught up).
    link: "offline",
    // The sync request: "idle", "running" (asked, no answer yet) or "rerun" (running, and
    // another is wanted once it answers).
    sync: "idle",
    // Where the inbox's next page begins (the server's next_cursor), null when none is left;
    // `inboxPaged` once a page after the first was loaded.
    inboxCursor: null,
    inboxPaged: false,
  };
}

/** Make `id` the open conversation and answer its state. */
export function openCurrent(state, id) {
  const cur = {
    id,
    msgs: new Map(), // id -> message
    hasMore: false,
    loadingOlder: false,
    loaded: false,
    readPointers: {}, // user id -> the message id they have read up to
    lastReadSent: 0,
    pendingChange: null, // {kind: "edit"|"delete", id, at}
    editing: null, // the id of the message being edited
    unseenBelow: 0,
    dividerAfter: null, // "New messages" goes before the first other's message above this id
    gone: false, // removed from the group, or left it
    goneName: "",
    detached: false, // showing an older stretch around a search hit, not the newest messages
    detachedTop: 0,
    target: null, // a message to show once the history is in (from a search hit)
    olderPromise: null,
    to: null, // {id, username}: a person written to for the first time (id is null until then)
    replyTo: null, // the quote of the message the composer answers (state/replies.js)
  };
  const known = state.convs.get(id);
  if (known && known.unread > 0) cur.dividerAfter = known.last_read || 0;
  state.cur = cur;
  return cur;
}

/**
 * Open an empty pane for writing to someone with no conversation yet: nothing exists
 * until the first message, which goes `to` their username and opens the conversation.
 */
export function openNewDirect(state, user) {
  const cur = openCurrent(state, null);
  cur.to = { id: typeof user.id === "number" ? user.id : null, username: user.username };
  cur.loaded = true;
  return cur;
}

/** The open conversation as the pane shows it; a new direct one is its two people. */
export function currentConv(state) {
  const cur = state.cur;
  if (!cur) return null;
  if (cur.to) return { id: null, kind: "direct", title: "", members: [state.me, cur.to], last_message: null };
  return state.convs.get(cur.id) || null;
}

/**
 * The conversation that `m` shows a first message opened: the id, when `m` is mine and
 * `item` (its outbox entry) went to the person the open new pane writes to; else null.
 */
export function conversationOpenedBy(state, m, item) {
  const cur = state.cur;
  if (!cur || !cur.to || !m || !m.sender || typeof m.conversation !== "number") return null;
  if (m.sender.id !== state.me.id || !item || item.to !== cur.to.username) return null;
  return m.conversation;
}

/** The open new pane's conversation exists now (`id`): it becomes that conversation. */
export function adoptConversation(state, id, at) {
  const cur = state.cur;
  const to = cur.to;
  cur.id = id;
  cur.to = null;
  if (!state.convs.has(id)) {
    // Known this far until the list is fetched again: enough for its row and header.
    state.convs.set(id, {
      id,
      kind: "direct",
      title: "",
      members: [state.me, to],
      unread: 0,
      last_read: 0,
      last_message: null,
      created_at: at,
      last_activity_at: at,
    });
    state.order.push(id);
    sortInbox(state);
  }
  return cur;
}

export function newestId(cur) {
  let max = 0;
  for (const id of cur.msgs.keys()) if (id > max) max = id;
  return max;
}

export function oldestId(cur) {
  let oldest = Infinity;
  for (const id of cur.msgs.keys()) if (id < oldest) oldest = id;
  return oldest;
}

// -----------------------------------------------------------------------------------------
// Conversations
// -----------------------------------------------------------------------------------------

export function sortInbox(state) {
  state.order.sort((a, b) => {
    const ca = state.convs.get(a);
    const cb = state.convs.get(b);
    const diff = ms(cb.last_activity_at) - ms(ca.last_activity_at);
    return diff !== 0 ? diff : b - a;
  });
}

/** Take the server's conversation list, keeping newer last messages seen live. */
export function setConversations(state, list, { partial = false } = {}) {
  const previous = state.convs;
  state.convs = new Map();
  state.order = [];
  for (const conv of list) {
    if (!conv || typeof conv.id !== "number") continue;
    const old = previous.get(conv.id);
    // Never let a slower HTTP answer roll back a newer last message we already saw.
    if (old && old.last_message && (!conv.last_message || old.last_message.id > conv.last_message.id)) {
      conv.last_message = old.last_message;
      conv.unread = Math.max(conv.unread || 0, old.unread || 0);
    conv.mentions = Math.max(conv.mentions || 0, old.mentions || 0);
      if (ms(old.last_activity_at) > ms(conv.last_activity_at)) conv.last_activity_at = old.last_activity_at;
    }
    // The list names a few of a big group's members; keep all of them once they were fetched.
    if (old && Array.isArray(old.members) && (conv.members || []).length < old.members.length) {
      if (old.members.length <= (conv.member_count || 0)) conv.members = old.members;
    }
    state.convs.set(conv.id, conv);
    state.order.push(conv.id);
  }
  if (partial) {
    // Only the first page: conversations of later pages, or opened by their address, stay.
    for (const [id, old] of previous) {
      if (state.convs.has(id)) continue;
      state.convs.set(id, old);
      state.order.push(id);
    }
  }
  sortInbox(state);
}

/** A later page of the inbox (scrolled to its end): the conversations not known yet join. */
export function addInboxPage(state, list) {
  for (const conv of list) {
    if (!conv || typeof conv.id !== "number" || state.convs.has(conv.id)) continue;
    state.convs.set(conv.id, conv);
    state.order.push(conv.id);
  }
  sortInbox(state);
}

/** A conversation made or changed through the API. */
export function addConversation(state, conv) {
  const known = state.convs.get(conv.id);
  delete conv.read_pointers;
  if (known) Object.assign(known, conv);
  else {
    state.convs.set(conv.id, conv);
    state.order.push(conv.id);
  }
  sortInbox(state);
}

/** Forget a conversation the person is no longer in; answers what was known of it. */
export function dropConversation(state, id) {
  const known = state.convs.get(id);
  state.convs.delete(id);
  state.order = state.order.filter((x) => x !== id);
  state.typers.delete(id);
  return known;
}

export function isViewing(state, convId) {
  return state.cur !== null && state.cur.id === convId && state.isVisible();
}

/** Everything in a conversation is read: no unread messages, no unread mentions of me. */
export function markRead(conv) {
  conv.unread = 0;
  conv.mentions = 0;
}

export function totalUnread(state) {
  let total = 0;
  for (const conv of state.convs.values()) total += conv.unread || 0;
  return total;
}

/** The direct conversation with someone, if there is one. */
export function findDirectWith(state, username) {
  for (const conv of state.convs.values()) {
    if (conv.kind !== "direct") continue;
    const peer = (conv.members || []).find((u) => u.id !== state.me.id);
    if (peer && peer.username === username) return conv;
  }
  return null;
}

/**
 * Fold the open conversation's details and newest page (fetched over HTTP) in; answers
 * {firstLoad, fresh}: `fresh` are the messages to show.
 */
export function applyConversationPage(state, cur, detail, page) {
  const readPointers = detail.read_pointers || {};
  delete detail.read_pointers;
  const known = state.convs.get(cur.id);
  if (known) {
    // Keep the inbox's own live view of the last message if it is newer.
    if (known.last_message && (!detail.last_message || known.last_message.id > detail.last_message.id)) {
      detail.last_message = known.last_message;
      detail.last_activity_at = known.last_activity_at;
    }
    Object.assign(known, detail);
  } else {
    state.convs.set(cur.id, detail);
    state.order.push(cur.id);
    sortInbox(state);
  }
  for (const key of Object.keys(readPointers)) {
    cur.readPointers[key] = Math.max(cur.readPointers[key] || 0, Number(readPointers[key]) || 0);
  }
  const firstLoad = !cur.loaded;
  if (firstLoad) {
    cur.loaded = true;
    cur.hasMore = Boolean(page.has_more);
  }
  const messages = page.messages || [];
  // An older stretch on screen takes only changes to what it shows.
  const fresh = cur.detached ? messages.filter((m) => cur.msgs.has(m.id)) : messages;
  return { firstLoad, fresh };
}

// -----------------------------------------------------------------------------------------
// Sync
// -----------------------------------------------------------------------------------------

export function seeSeq(state, seq) {
  if (typeof seq === "number" && seq > state.maxSeq) state.maxSeq = seq;
}

/** The `sync` frame to send now, or null (offline, or one is running: it reruns after). */
export function requestSync(state) {
  if (state.link === "offline") return null;
  if (state.sync !== "idle") {
    state.sync = "rerun";
    return null;
  }
  state.sync = "running";
  return { type: "sync", after: state.maxSeq };
}

/** The sync frame could not be sent. */
export function syncNotSent(state) {
  state.sync = "idle";
}

/**
 * The server's first frame on a socket: who is online; catching up starts. Answers whether
 * anything was missed: `last_seq` above what this page has seen (or not told).
 */
export function onReady(state, frame) {
  state.online = new Set((frame.online || []).map((u) => u.id));
  state.link = "catching-up";
  state.sync = "idle";
  return !(typeof frame.last_seq === "number" && frame.last_seq <= state.maxSeq);
}

/** Caught up after a (re)connection. */
export function onCaughtUp(state) {
  state.link = "live";
}

/** The socket is gone; answers whether anyone was shown online (presence is unknown now). */
export function onSocketClosed(state) {
  state.link = "offline";
  state.sync = "idle";
  const hadOnline = state.online.size > 0;
  state.online.clear();
  return hadOnline;
}

/**
 * A page of sync results. Answers {applied, next}: next is "sync" (ask for more),
 * "caught-up" (the catching up after a connection is done) or null.
 */
export function onSyncResult(state, frame) {
  const messages = Array.isArray(frame.messages) ? frame.messages : [];
  const applied = applyMessages(state, messages, { live: false });
  for (const m of messages) seeSeq(state, m.seq);
  // A push that showed a gap while a sync ran is covered by the next sync, asked for now.
  const again = (frame.more && messages.length > 0) || state.sync === "rerun";
  state.sync = "idle";
  let next = null;
  if (again) next = "sync";
  else if (state.link === "catching-up") next = "caught-up";
  return { applied, next };
}

/** A `message.new` or `message.updated` push; answers {applied, needSync} or null. */
export function onPush(state, frame) {
  const m = frame.message;
  if (!m || typeof m.id !== "number") return null;
  const gap = typeof frame.prev_seq === "number" && frame.prev_seq > state.maxSeq;
  const applied = applyMessages(state, [m], { live: true, isNew: frame.type === "message.new" });
  // Past a gap the cursor stays put, so that the sync asks for what was missed.
  if (!gap) seeSeq(state, m.seq);
  return { applied, needSync: gap };
}

/** The server stored one of my messages. */
export function onAck(state, frame) {
  const m = frame.message;
  if (m && typeof m.id === "number") return applyMessages(state, [m], { live: true, ack: true });
  const result = emptyResult();
  if (frame.client_id) result.acked.push(frame.client_id);
  return result;
}

/** A `pong`: answers whether the server has changes this client has not seen. */
export function onPong(state, frame) {
  return typeof frame.last_seq === "number" && frame.last_seq > state.maxSeq;
}

/**
 * An `error` frame that refuses the running sync for a passing reason: answers the wait in
 * ms before asking again, or null when the error is about something else.
 */
export function syncRefused(state, frame) {
  if (state.sync === "idle" || (frame.code !== "unavailable" && frame.code !== "rate_limited")) return null;
  state.sync = "idle";
  return (frame.code === "rate_limited" ? Math.max(1, Number(frame.retry_after) || 1) : 3) * 1000;
}

// -----------------------------------------------------------------------------------------
// Messages
// -----------------------------------------------------------------------------------------

function emptyResult() {
  return {
    forCur: [], // messages of the open conversation, to show
    inboxChanged: false,
    unknownConv: false, // a message of a conversation not in the list: fetch the list
    announcements: [], // what a screen reader should say
    notify: [], // {conv, message}: new messages from others, for a notification
    acked: [], // client_ids of mine the server has stored
    stored: {}, // client_id -> created_at of mine stored, from a live push or ack
    typingChanged: false, // someone in the open conversation stopped typing by writing
  };
}

/** Apply messages from pushes, sync results, acks or history pages. */
export function applyMessages(state, list, opts) {
  const result = emptyResult();
  const cur = state.cur;
  const me = state.me;
  for (const m of list) {
    if (!m || typeof m.id !== "number" || !m.sender) continue;
    const key = m.id + ":" + m.seq;
    if (state.seenChanges.has(key)) continue;
    state.seenChanges.add(key);

    if (m.sender.id === me.id && m.client_id) {
      result.acked.push(m.client_id);
      if (opts.live && m.kind !== "system") result.stored[m.client_id] = m.created_at;
    }
    const conv = state.convs.get(m.conversation);
    const fromOther = m.sender.id !== me.id && !m.deleted && !opts.ack && m.kind !== "system";
    if (fromOther && opts.live && opts.isNew && m.id > ((conv && conv.last_read) || 0)) {
      result.notify.push({ conv, message: m });
      // Read while away: mark where the reader left off.
      if (cur && cur.id === m.conversation && !isViewing(state, cur.id) && cur.dividerAfter === null) {
        cur.dividerAfter = (conv && conv.last_read) || 0;
      }
    }
    if (!conv) {
      result.unknownConv = true;
      if (fromOther) {
        result.announcements.push(
          interpolate(gettext("New message from %(name)s: %(text)s"), { name: m.sender.username, text: gist(m, 140) })
        );
      }
    } else if (foldIntoConversation(state, conv, m, opts, result.announcements)) {
      result.inboxChanged = true;
    }
    if (cur && cur.id === m.conversation) result.forCur.push(m);
    if (m.sender.id !== me.id && stopTyping(state, m.conversation, m.sender.id) && cur && cur.id === m.conversation) {
      result.typingChanged = true;
    }
  }
  if (result.inboxChanged) sortInbox(state);
  return result;
}

/** Fold a message into its conversation's inbox entry; answer whether anything changed. */
function foldIntoConversation(state, conv, m, opts, announcements) {
  const me = state.me;
  const cur = state.cur;
  const last = conv.last_message;
  if (!last || m.id > last.id) {
    conv.last_message = m;
    if (ms(m.created_at) > ms(conv.last_activity_at)) conv.last_activity_at = m.created_at;
    if (m.kind === "system") {
      if (!opts.ack && opts.live && cur && cur.id === conv.id) announcements.push(m.body);
      return true;
    }
    if (m.sender.id !== me.id && !m.deleted && m.id > (conv.last_read || 0)) {
      if (!isViewing(state, conv.id)) {
        conv.unread = (conv.unread || 0) + 1;
        if (mentionsMe(m, me.id)) conv.mentions = (conv.mentions || 0) + 1;
      }
      if (!opts.ack) {
        const body = gist(m, 140);
        announcements.push(
          cur && cur.id === conv.id
            ? interpolate(gettext("%(name)s: %(text)s"), { name: m.sender.username, text: body })
            : conv.kind === "group"
              ? interpolate(gettext("New message from %(name)s in %(group)s: %(text)s"), {
                  name: m.sender.username,
                  group: convName(me, conv),
                  text: body,
                })
              : interpolate(gettext("New message from %(name)s: %(text)s"), { name: m.sender.username, text: body })
        );
      }
    }
    return true;
  }
  if (last.id === m.id) {
    if ((m.seq || 0) >= (last.seq || 0)) conv.last_message = m;
    if (m.deleted && !last.deleted) unreadLessForDeletion(state, conv, m);
    return true;
  }
  if (m.deleted) return unreadLessForDeletion(state, conv, m);
  return false;
}

function unreadLessForDeletion(state, conv, m) {
  if (m.sender.id === state.me.id || m.id <= (conv.last_read || 0) || !conv.unread) return false;
  if (state.cur && state.cur.id === conv.id) {
    const known = state.cur.msgs.get(m.id);
    if (known && known.deleted) return false;
  }
  conv.unread = Math.max(0, conv.unread - 1);
  if (!conv.unread) conv.mentions = 0;
  return true;
}

/** Others' messages above `lastRead` in the open conversation that count as unread (and pass `which`). */
export function countUnread(state, lastRead, which = () => true) {
  let n = 0;
  for (const m of state.cur.msgs.values()) {
    if (m.id > lastRead && !m.deleted && m.kind !== "system" && m.sender.id !== state.me.id && which(m)) n++;
  }
  return n;
}

// -----------------------------------------------------------------------------------------
// Reading
// -----------------------------------------------------------------------------------------

/**
 * A `read` frame. Answers null when nothing shows it, else {inbox: true} (my own pointer
 * moved: unread counts changed; `refresh` when the list must be fetched to know them) or
 * {seen: true} (someone else's pointer in the open conversation moved).
 * A pointer never moves back.
 */
export function onRead(state, frame) {
  const conv = state.convs.get(frame.conversation);
  const userId = frame.user && frame.user.id;
  const upTo = Number(frame.up_to) || 0;
  const cur = state.cur;
  if (userId === state.me.id) {
    if (!conv) return null;
    conv.last_read = Math.max(conv.last_read || 0, upTo);
    if (cur && cur.id === conv.id) {
      conv.unread = countUnread(state, conv.last_read);
      conv.mentions = countUnread(state, conv.last_read, (m) => mentionsMe(m, state.me.id));
    } else if (conv.last_message && upTo >= conv.last_message.id) markRead(conv);
    else return { inbox: true, refresh: true };
    return { inbox: true, refresh: false };
  }
  if (cur && cur.id === frame.conversation) {
    const key = String(userId);
    cur.readPointers[key] = Math.max(cur.readPointers[key] || 0, upTo);
    return { seen: true };
  }
  return null;
}

/**
 * What to tell the server now that the person sees the open conversation: answers
 * {unreadCleared, frame}, frame being the `read` to send or null.
 */
export function readToSend(state) {
  const cur = state.cur;
  if (!cur || cur.gone || !state.isVisible()) return { unreadCleared: false, frame: null };
  const conv = state.convs.get(cur.id);
  const newest = newestId(cur);
  let unreadCleared = false;
  if (conv && (conv.unread || conv.mentions)) {
    markRead(conv);
    unreadCleared = true;
  }
  if (!newest || newest <= cur.lastReadSent) return { unreadCleared, frame: null };
  if (conv && newest <= (conv.last_read || 0)) {
    cur.lastReadSent = newest;
    return { unreadCleared, frame: null };
  }
  return { unreadCleared, frame: { type: "read", conversation: cur.id, up_to: newest } };
}

/** The `read` frame went out. */
export function readSent(state, frame) {
  const cur = state.cur;
  if (!cur || cur.id !== frame.conversation) return;
  cur.lastReadSent = frame.up_to;
  const conv = state.convs.get(cur.id);
  if (conv) conv.last_read = Math.max(conv.last_read || 0, frame.up_to);
}

/**
 * The people who have read my last message in the open conversation, as the marker under
 * it says: answers {id, text} or null.
 */
export function seenMarker(state) {
  const cur = state.cur;
  if (!cur || cur.detached) return null;
  const conv = state.convs.get(cur.id);
  if (!conv) return null;
  const me = state.me;
  let lastMine = null;
  for (const m of cur.msgs.values()) {
    if (m.sender.id === me.id && !m.deleted && m.kind !== "system" && (!lastMine || m.id > lastMine.id)) lastMine = m;
  }
  if (!lastMine) return null;
  const peers = (conv.members || []).filter((u) => u.id !== me.id);
  const readers = peers.filter((u) => (cur.readPointers[String(u.id)] || 0) >= lastMine.id);
  if (!readers.length) return null;
  let text = gettext("Seen");
  if (conv.kind === "group") {
    if (readers.length === peers.length && peers.length > 1) text = gettext("Seen by everyone");
    else if (readers.length <= 3) text = interpolate(gettext("Seen by %(names)s"), { names: listText(readers.map((u) => u.username)) });
    else {
      text = interpolate(gettext("Seen by %(count)s of %(total)s"), {
        count: formatNumber(readers.length),
        total: formatNumber(peers.length),
      });
    }
  }
  return { id: lastMine.id, text };
}

// -----------------------------------------------------------------------------------------
// Presence, typing, group changes
// -----------------------------------------------------------------------------------------

/** A `presence` frame; answers whether it was one. */
export function onPresence(state, frame) {
  if (!frame.user) return false;
  if (frame.online) state.online.add(frame.user.id);
  else state.online.delete(frame.user.id);
  return true;
}

/** A `typing` frame: answers the conversation it is about, or null. */
export function onTyping(state, frame) {
  if (!frame.user || frame.user.id === state.me.id) return null;
  let map = state.typers.get(frame.conversation);
  if (!map) {
    map = new Map();
    state.typers.set(frame.conversation, map);
  }
  map.set(frame.user.id, { user: frame.user, until: state.now() + TYPING_SHOW_FOR });
  return frame.conversation;
}

function stopTyping(state, convId, userId) {
  const map = state.typers.get(convId);
  return Boolean(map && map.delete(userId));
}

/** Forget typing that is over; answers the conversations whose typing changed. */
export function sweepTypers(state) {
  const now = state.now();
  const changed = [];
  for (const [convId, map] of state.typers) {
    let any = false;
    for (const [userId, entry] of map) {
      if (entry.until <= now) {
        map.delete(userId);
        any = true;
      }
    }
    if (!map.size) state.typers.delete(convId);
    if (any) changed.push(convId);
  }
  return changed;
}

export function typingText(state, convId) {
  const map = state.typers.get(convId);
  if (!map) return "";
  const now = state.now();
  const names = [];
  for (const entry of map.values()) if (entry.until > now) names.push(entry.user.username);
  return typingSentence(names, state.convs.get(convId));
}

/**
 * A group changed: its title or members. Answers null, {refresh: true} (added to a group:
 * fetch it), {changed: id}, {gone: id, text, removed} (I am no longer in it; `removed`:
 * someone else removed me, rather than I left), or {rejoined: id,
 * text} (added back to the group that is open on its "no longer in this group" notice).
 */
export function onConversationUpdated(state, frame) {
  const c = frame.conversation;
  const change = frame.change || {};
  if (!c || typeof c.id !== "number") return null;
  const me = state.me;
  const members = Array.isArray(c.members) ? c.members : [];
  if (!members.some((u) => u.id === me.id)) {
    const open = state.cur && state.cur.id === c.id && !state.cur.gone;
    if (!state.convs.has(c.id) && !open) return null; // gone already (left from this tab)
    const by = change.by && change.by.id !== me.id ? change.by.username : null;
    const name = state.convs.has(c.id) ? convName(me, state.convs.get(c.id)) : c.title;
    const removed = change.kind === "removed" && by;
    let text;
    if (name) {
      text = removed
        ? interpolate(gettext("%(name)s removed you from “%(group)s”. You’re no longer in this group."), { name: by, group: name })
        : interpolate(gettext("You left “%(group)s”. You’re no longer in this group."), { group: name });
    } else {
      text = removed
        ? interpolate(gettext("%(name)s removed you from the group. You’re no longer in it."), { name: by })
        : gettext("You left the group. You’re no longer in it.");
    }
    return { gone: c.id, text, removed: change.kind === "removed" && Boolean(by) };
  }
  const conv = state.convs.get(c.id);
  if (state.cur && state.cur.id === c.id && state.cur.gone) {
    // Added back while the group is still open on its "removed" notice: open it afresh.
    const by = change.by && change.by.id !== me.id ? change.by.username : null;
    const name = c.title || (conv ? convName(me, conv) : state.cur.goneName) || "the group";
    const text = by
      ? interpolate(gettext("%(name)s added you back to “%(group)s”."), { name: by, group: name })
      : interpolate(gettext("You’re back in “%(group)s”."), { group: name });
    return { rejoined: c.id, text };
  }
  if (!conv) return { refresh: true };
  conv.kind = c.kind || conv.kind;
  conv.title = typeof c.title === "string" ? c.title : conv.title;
  conv.members = members;
  conv.member_count = members.length; // the frame lists every member
  // Only the person's own frames (mute is theirs alone) say whether it is muted.
  if (typeof c.muted === "boolean") conv.muted = c.muted;
  const typers = state.typers.get(c.id);
  if (typers) for (const id of Array.from(typers.keys())) if (!members.some((u) => u.id === id)) typers.delete(id);
  return { changed: c.id };
}
