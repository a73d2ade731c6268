/*
 * Chat browser client: one WebSocket for all conversations, an inbox beside the open
 * conversation, optimistic sends with a persistent outbox, drafts, typing, read receipts,
 * edit and delete, reports, blocks, groups (create, rename, add, remove, leave) and message
 * search. Plain JS, no dependencies.
 *
 * Safety rule: user data (bodies, usernames, titles) only ever goes in through
 * textContent / createTextNode / element properties, never through innerHTML.
 */
(function () {
  "use strict";

  // ---------------------------------------------------------------------------------------
  // Boot data
  // ---------------------------------------------------------------------------------------

  function readJSON(id, fallback) {
    const node = document.getElementById(id);
    if (!node) return fallback;
    try {
      const value = JSON.parse(node.textContent);
      return value === null || value === undefined ? fallback : value;
    } catch (e) {
      return fallback;
    }
  }

  const app = document.getElementById("app");
  const config = readJSON("chat-config", null);
  if (!app || !config || !config.user) return;

  const me = config.user;
  const MAX_BODY = config.maxBody || 4000;
  const PAGE = config.historyPage || 50;
  const COUNTER_FROM = Math.max(0, MAX_BODY - Math.max(200, Math.round(MAX_BODY * 0.1)));
  const TYPING_SEND_EVERY = 3000;
  const TYPING_SHOW_FOR = 5000;
  const PING_EVERY = 25000;
  const PONG_TIMEOUT = 10000;
  const BASE_TITLE = "Chat";

  const URLS = {
    login: app.dataset.loginUrl || "/accounts/login/",
    inbox: app.dataset.inboxUrl || "/",
    conversation(id) {
      const pattern = app.dataset.conversationUrl || "/c/0/";
      return pattern.replace(/\/0\/$/, "/" + encodeURIComponent(id) + "/");
    },
    direct(username) {
      const pattern = app.dataset.directUrl || "/dm/__username__/";
      return pattern.replace("__username__", encodeURIComponent(username));
    },
  };

  const ui = {
    inbox: document.getElementById("inbox"),
    inboxEmpty: document.querySelector('[data-testid="inbox-empty"]'),
    search: document.getElementById("user-search"),
    searchResults: document.getElementById("user-search-results"),
    banner: document.getElementById("banner"),
    emptyState: document.getElementById("empty-state"),
    conversation: document.getElementById("conversation"),
    title: document.getElementById("conversation-title"),
    status: document.getElementById("conversation-status"),
    headAvatar: document.getElementById("conversation-avatar"),
    back: document.querySelector('[data-testid="back-button"]'),
    scroller: document.getElementById("scroller"),
    loadOlder: document.getElementById("load-older"),
    historyStart: document.getElementById("history-start"),
    messages: document.getElementById("messages"),
    jump: document.getElementById("jump-latest"),
    typing: document.getElementById("typing"),
    notice: document.getElementById("notice"),
    composer: document.getElementById("composer"),
    input: document.getElementById("composer-input"),
    counter: document.getElementById("composer-counter"),
    send: document.getElementById("send-button"),
    live: document.getElementById("live-region"),
    settings: document.getElementById("settings"),
    notifyToggle: document.getElementById("notify-toggle"),
    previewToggle: document.getElementById("preview-toggle"),
    notifyStatus: document.getElementById("notify-status"),
    newGroup: document.getElementById("new-group-button"),
    msearchForm: document.getElementById("message-search-form"),
    msearch: document.getElementById("message-search"),
    searchPanel: document.getElementById("search-panel"),
    searchSummary: document.getElementById("search-summary"),
    searchError: document.getElementById("search-error"),
    searchHits: document.getElementById("search-hits"),
    searchMore: document.getElementById("search-more"),
    searchClose: document.getElementById("search-close"),
    inboxWrap: document.querySelector(".inbox-wrap"),
    menu: document.getElementById("conv-menu"),
    menuGroup: document.getElementById("menu-group"),
    menuBlock: document.getElementById("menu-block"),
    menuLeave: document.getElementById("menu-leave"),
    blockedBar: document.getElementById("blocked-bar"),
    blockedText: document.getElementById("blocked-text"),
    blockedUnblock: document.getElementById("blocked-unblock"),
    goneBar: document.getElementById("gone-bar"),
    goneText: document.getElementById("gone-text"),
    goneBack: document.getElementById("gone-back"),
    groupCreate: document.getElementById("group-create"),
    groupCreateForm: document.getElementById("group-create-form"),
    groupTitle: document.getElementById("group-title-input"),
    groupCreateError: document.getElementById("group-create-error"),
    groupCreateSubmit: document.getElementById("group-create-submit"),
    groupDialog: document.getElementById("group-dialog"),
    renameForm: document.getElementById("group-rename-form"),
    renameInput: document.getElementById("group-rename-input"),
    renameSave: document.getElementById("group-rename-save"),
    renameStatus: document.getElementById("group-rename-status"),
    members: document.getElementById("group-members"),
    membersError: document.getElementById("group-members-error"),
    addForm: document.getElementById("group-add-form"),
    addError: document.getElementById("group-add-error"),
    addSubmit: document.getElementById("group-add-submit"),
    leave: document.getElementById("group-leave"),
    leaveBox: document.getElementById("group-leave-box"),
    leaveText: document.getElementById("group-leave-text"),
    leaveCancel: document.getElementById("group-leave-cancel"),
    leaveConfirm: document.getElementById("group-leave-confirm"),
    leaveError: document.getElementById("group-leave-error"),
  };

  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------

  /** Create an element; attrs are set with setAttribute, children appended as text or nodes. */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const key of Object.keys(attrs)) {
        const value = attrs[key];
        if (value === null || value === undefined || value === false) continue;
        if (key === "text") node.textContent = String(value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    if (children) {
      for (const child of [].concat(children)) {
        if (child === null || child === undefined || child === false) continue;
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    }
    return node;
  }

  function codePoints(text) {
    let n = 0;
    for (const _ of text) n++; // eslint-disable-line no-unused-vars
    return n;
  }

  function truncate(text, max) {
    const chars = Array.from(text);
    return chars.length > max ? chars.slice(0, max - 1).join("") + "…" : text;
  }

  function oneLine(text) {
    return text.replace(/\s+/g, " ").trim();
  }

  function ms(iso) {
    const t = Date.parse(iso);
    return Number.isFinite(t) ? t : 0;
  }

  function newClientId() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try {
        return c.randomUUID();
      } catch (e) {
        /* not a secure context: fall through */
      }
    }
    const bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
    else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return (
      hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20)
    );
  }

  function debounce(fn, wait) {
    let timer = null;
    const wrapped = function () {
      clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        fn();
      }, wait);
    };
    wrapped.cancel = function () {
      clearTimeout(timer);
      timer = null;
    };
    wrapped.flush = function () {
      if (timer !== null) {
        clearTimeout(timer);
        timer = null;
        fn();
      }
    };
    return wrapped;
  }

  const store = {
    // Set once this person's data is wiped (logout): nothing is written back after it.
    sealed: false,
    get(key, fallback) {
      try {
        const raw = window.localStorage.getItem(key);
        return raw === null ? fallback : JSON.parse(raw);
      } catch (e) {
        return fallback;
      }
    },
    set(key, value) {
      if (store.sealed) return;
      try {
        window.localStorage.setItem(key, JSON.stringify(value));
      } catch (e) {
        /* storage full or disabled: keep going without persistence */
      }
    },
    remove(key) {
      try {
        window.localStorage.removeItem(key);
      } catch (e) {
        /* ignore */
      }
    },
  };

  function storageAreas() {
    try {
      return [window.localStorage, window.sessionStorage];
    } catch (e) {
      return []; // storage disabled: nothing was kept
    }
  }

  /**
   * Wipe everything this page keeps in the browser (drafts, outbox, notification choices)
   * when the session ends: the next person at this computer must find none of it.
   */
  function forgetEverything() {
    store.sealed = true;
    for (const area of storageAreas()) {
      try {
        area.clear();
      } catch (e) {
        /* ignore */
      }
    }
  }

  /** Drop what someone else signed in here before left behind (keys are "chat:<id>:…"). */
  function forgetOtherPeople() {
    for (const area of storageAreas()) {
      try {
        const keys = [];
        for (let i = 0; i < area.length; i++) keys.push(area.key(i));
        for (const key of keys) {
          const owner = /^chat:(\d+):/.exec(key || "");
          if (owner && Number(owner[1]) !== me.id) area.removeItem(key);
        }
      } catch (e) {
        /* ignore */
      }
    }
  }

  forgetOtherPeople();

  // ---------------------------------------------------------------------------------------
  // Time formatting (reader's local time zone)
  // ---------------------------------------------------------------------------------------

  const fmtTime = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const fmtFull = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
  const fmtWeekday = new Intl.DateTimeFormat(undefined, { weekday: "short" });
  const fmtShortDate = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  const fmtShortDateYear = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
  });
  const fmtDay = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });
  const fmtDayYear = new Intl.DateTimeFormat(undefined, {
    weekday: "long", year: "numeric", month: "long", day: "numeric",
  });

  function startOfDay(d) {
    return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  }

  function dayLabel(date) {
    const today = startOfDay(new Date());
    const day = startOfDay(date);
    const diff = Math.round((today - day) / 86400000);
    if (diff === 0) return "Today";
    if (diff === 1) return "Yesterday";
    return date.getFullYear() === new Date().getFullYear() ? fmtDay.format(date) : fmtDayYear.format(date);
  }

  function shortStamp(date) {
    const today = startOfDay(new Date());
    const day = startOfDay(date);
    const diff = Math.round((today - day) / 86400000);
    if (diff === 0) return fmtTime.format(date);
    if (diff === 1) return "Yesterday";
    if (diff > 1 && diff < 7) return fmtWeekday.format(date);
    return date.getFullYear() === new Date().getFullYear()
      ? fmtShortDate.format(date)
      : fmtShortDateYear.format(date);
  }

  function timeEl(iso, short, testid) {
    const date = new Date(ms(iso));
    return el("time", {
      datetime: iso,
      title: fmtFull.format(date),
      "data-testid": testid || null,
      text: short ? shortStamp(date) : fmtTime.format(date),
    });
  }

  // ---------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------

  const state = {
    convs: new Map(), // id -> conversation dict (as the API shows it)
    order: [], // conversation ids, newest activity first
    online: new Set(), // user ids of peers with a socket open
    maxSeq: 0, // largest seq seen in pushes and sync results
    seenChanges: new Set(), // "id:seq" already applied
    cur: null, // the open conversation's view state
    typers: new Map(), // conversation id -> Map(user id -> {user, until})
    blocked: new Set(), // usernames the user blocks
  };

  function setConversations(list) {
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
        if (ms(old.last_activity_at) > ms(conv.last_activity_at)) conv.last_activity_at = old.last_activity_at;
      }
      state.convs.set(conv.id, conv);
      state.order.push(conv.id);
    }
    sortInbox();
  }

  function sortInbox() {
    state.order.sort((a, b) => {
      const ca = state.convs.get(a);
      const cb = state.convs.get(b);
      const diff = ms(cb.last_activity_at) - ms(ca.last_activity_at);
      return diff !== 0 ? diff : b - a;
    });
  }

  function others(conv) {
    return (conv.members || []).filter((u) => u.id !== me.id);
  }

  function convName(conv) {
    if (!conv) return "";
    if (conv.kind === "group") {
      if (conv.title) return conv.title;
      const names = others(conv).map((u) => u.username);
      return names.length ? names.join(", ") : "Just you";
    }
    const other = others(conv)[0];
    return other ? other.username : "Unknown";
  }

  function directPeer(conv) {
    return conv && conv.kind === "direct" ? others(conv)[0] || null : null;
  }

  function isViewing(convId) {
    return (
      state.cur !== null &&
      state.cur.id === convId &&
      document.visibilityState === "visible"
    );
  }

  function totalUnread() {
    let total = 0;
    for (const conv of state.convs.values()) total += conv.unread || 0;
    return total;
  }

  function updateTitle() {
    const total = totalUnread();
    document.title = total > 0 ? "(" + total + ") " + BASE_TITLE : BASE_TITLE;
  }

  // ---------------------------------------------------------------------------------------
  // Outbox (localStorage, per user): sends that are not acked yet
  // ---------------------------------------------------------------------------------------

  const OUTBOX_KEY = "chat:" + me.id + ":outbox";
  const draftKey = (convId) => "chat:" + me.id + ":draft:" + convId;

  function outboxAll() {
    const items = store.get(OUTBOX_KEY, []);
    if (!Array.isArray(items)) return [];
    return items.filter(
      (i) => i && typeof i.client_id === "string" && typeof i.body === "string" && typeof i.conversation === "number"
    );
  }

  function outboxSave(items) {
    if (items.length) store.set(OUTBOX_KEY, items);
    else store.remove(OUTBOX_KEY);
  }

  function outboxGet(clientId) {
    return outboxAll().find((i) => i.client_id === clientId) || null;
  }

  function outboxPut(item) {
    const items = outboxAll();
    const at = items.findIndex((i) => i.client_id === item.client_id);
    if (at >= 0) items[at] = item;
    else items.push(item);
    outboxSave(items);
  }

  function outboxReplace(oldId, item) {
    const items = outboxAll();
    const at = items.findIndex((i) => i.client_id === oldId);
    if (at >= 0) items[at] = item;
    else items.push(item);
    outboxSave(items);
  }

  function outboxRemove(clientId) {
    const items = outboxAll();
    const at = items.findIndex((i) => i.client_id === clientId);
    if (at < 0) return null;
    const [removed] = items.splice(at, 1);
    outboxSave(items);
    return removed;
  }

  const retryTimers = new Map(); // client_id -> timeout

  function cancelRetry(clientId) {
    const t = retryTimers.get(clientId);
    if (t !== undefined) {
      clearTimeout(t);
      retryTimers.delete(clientId);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Plain-words errors
  // ---------------------------------------------------------------------------------------

  function errorText(error) {
    const code = error && error.code;
    switch (code) {
      case "rate_limited": {
        const wait = Math.max(1, Math.ceil(Number(error.retry_after) || 1));
        return "You’re sending too fast. Trying again in " + wait + (wait === 1 ? " second." : " seconds.");
      }
      case "cannot_send":
        return "Can’t deliver this message: this person isn’t able to receive messages from you.";
      case "too_long":
        return "This message is too long. The limit is " + MAX_BODY.toLocaleString() + " characters.";
      case "empty":
        return "Empty messages can’t be sent.";
      case "unavailable":
        return "The server couldn’t save this just now. Nothing was lost — try again.";
      case "conflict":
        return "This message clashed with an earlier one. Retry to send it as a new message.";
      case "not_found":
        return "This conversation or message isn’t available any more.";
      case "forbidden":
        return "You can only change your own messages.";
      case "bad_frame":
      case "bad_json":
      case "unknown_type":
        return "The server didn’t understand the request" + (error.detail ? " (" + error.detail + ")." : ".");
      default:
        return (error && error.detail) || "Something went wrong.";
    }
  }

  const TRANSIENT = new Set(["rate_limited", "unavailable"]);

  // ---------------------------------------------------------------------------------------
  // Avatars
  // ---------------------------------------------------------------------------------------

  function hueOf(text) {
    let h = 0;
    for (const ch of text) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }

  /** A person's small avatar: the first letter of their name on their own colour. */
  function userAvatar(username) {
    const avatar = el("span", { class: "avatar avatar-small", "aria-hidden": "true" });
    avatar.style.setProperty("--hue", String(hueOf(username)));
    avatar.appendChild(el("span", { class: "avatar-letter", text: (Array.from(username)[0] || "?").toUpperCase() }));
    return avatar;
  }

  function fillAvatar(node, conv) {
    const name = convName(conv);
    const initial = Array.from(name.trim())[0] || "?";
    node.replaceChildren();
    node.classList.toggle("avatar-group", conv.kind === "group");
    node.style.setProperty("--hue", String(hueOf(name)));
    node.appendChild(el("span", { class: "avatar-letter", text: initial.toUpperCase() }));
    const peer = directPeer(conv);
    if (peer) {
      const online = state.online.has(peer.id);
      node.appendChild(
        el("span", {
          class: "presence-dot" + (online ? " is-online" : ""),
          "data-testid": "online-dot",
          "data-online": online ? "true" : "false",
        })
      );
    }
  }

  // ---------------------------------------------------------------------------------------
  // Inbox rendering
  // ---------------------------------------------------------------------------------------

  const inboxEls = new Map(); // conversation id -> li

  function typingNames(convId) {
    const map = state.typers.get(convId);
    if (!map) return [];
    const now = Date.now();
    const names = [];
    for (const entry of map.values()) if (entry.until > now) names.push(entry.user.username);
    return names;
  }

  function typingText(convId, conv) {
    const names = typingNames(convId);
    if (!names.length) return "";
    if (conv && conv.kind === "direct") return names[0] + " is typing…";
    if (names.length === 1) return names[0] + " is typing…";
    if (names.length === 2) return names[0] + " and " + names[1] + " are typing…";
    return names.length + " people are typing…";
  }

  function previewText(conv) {
    const last = conv.last_message;
    if (!last) return "No messages yet";
    if (last.deleted) return last.sender.id === me.id ? "You deleted a message" : "Message deleted";
    if (last.kind === "system") return truncate(oneLine(last.body), 120);
    const body = truncate(oneLine(last.body), 120);
    if (last.sender.id === me.id) return "You: " + body;
    return conv.kind === "group" ? last.sender.username + ": " + body : body;
  }

  function buildInboxItem() {
    const li = el("li", { class: "inbox-row" });
    const a = el("a", { class: "inbox-item", "data-testid": "inbox-item" });
    const avatar = el("span", { class: "avatar", "aria-hidden": "true" });
    const name = el("span", { class: "inbox-name", "data-testid": "inbox-name" });
    const timeSlot = el("span", { class: "inbox-time-slot" });
    const preview = el("span", { class: "inbox-preview", "data-testid": "inbox-preview" });
    const badge = el("span", { class: "badge", "data-testid": "unread-badge" });
    const tag = el("span", { class: "inbox-tag", "data-testid": "inbox-blocked", text: "Blocked", hidden: true });
    const sr = el("span", { class: "visually-hidden inbox-sr" });
    a.append(
      avatar,
      el("span", { class: "inbox-main" }, [
        el("span", { class: "inbox-top" }, [name, timeSlot]),
        el("span", { class: "inbox-bottom" }, [preview, tag, badge]),
      ]),
      sr
    );
    li.appendChild(a);
    li._parts = { a, avatar, name, timeSlot, preview, badge, tag, sr };
    return li;
  }

  function fillInboxItem(li, conv) {
    const p = li._parts;
    const active = state.cur !== null && state.cur.id === conv.id;
    const unread = conv.unread || 0;
    p.a.href = URLS.conversation(conv.id);
    p.a.dataset.conversationId = String(conv.id);
    p.a.dataset.unread = String(unread);
    p.a.dataset.kind = conv.kind;
    p.a.classList.toggle("is-active", active);
    p.a.classList.toggle("has-unread", unread > 0);
    if (active) p.a.setAttribute("aria-current", "page");
    else p.a.removeAttribute("aria-current");
    fillAvatar(p.avatar, conv);
    p.name.textContent = convName(conv);
    p.timeSlot.replaceChildren();
    const stamp = conv.last_message ? conv.last_message.created_at : conv.created_at;
    if (stamp) p.timeSlot.appendChild(timeEl(stamp, true, "inbox-time"));
    const typing = typingText(conv.id, conv);
    p.preview.classList.toggle("is-typing", Boolean(typing));
    p.preview.textContent = typing || previewText(conv);
    p.badge.textContent = unread > 99 ? "99+" : String(unread);
    p.badge.hidden = unread === 0;
    const peer = directPeer(conv);
    const blocked = Boolean(peer && state.blocked.has(peer.username));
    p.tag.hidden = !blocked;
    const bits = [];
    if (blocked) bits.push("blocked");
    if (peer && state.online.has(peer.id)) bits.push("online");
    if (unread) bits.push(unread + (unread === 1 ? " unread message" : " unread messages"));
    p.sr.textContent = bits.length ? ", " + bits.join(", ") : "";
  }

  function renderInbox() {
    const focused = document.activeElement;
    const keepFocus =
      focused && ui.inbox.contains(focused) && focused.dataset ? focused.dataset.conversationId || null : null;

    const wanted = new Set(state.order);
    for (const [id, li] of inboxEls) {
      if (!wanted.has(id)) {
        li.remove();
        inboxEls.delete(id);
      }
    }
    // Remove server-rendered rows that JS does not own.
    for (const child of Array.from(ui.inbox.children)) {
      if (!child._parts) child.remove();
    }
    state.order.forEach((id, index) => {
      let li = inboxEls.get(id);
      if (!li) {
        li = buildInboxItem();
        inboxEls.set(id, li);
      }
      fillInboxItem(li, state.convs.get(id));
      if (ui.inbox.children[index] !== li) ui.inbox.insertBefore(li, ui.inbox.children[index] || null);
    });
    if (keepFocus && !ui.inbox.contains(document.activeElement)) {
      const again = ui.inbox.querySelector('[data-conversation-id="' + CSS.escape(keepFocus) + '"]');
      if (again) again.focus();
    }
    if (ui.inboxEmpty) ui.inboxEmpty.hidden = state.order.length > 0;
    updateTitle();
  }

  const scheduleInboxRefresh = debounce(() => refreshInbox(), 400);

  // ---------------------------------------------------------------------------------------
  // HTTP
  // ---------------------------------------------------------------------------------------

  function goLogin() {
    const next = location.pathname + location.search;
    window.location.assign(URLS.login + "?next=" + encodeURIComponent(next));
  }

  async function api(path) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    if (response.status === 401) {
      goLogin();
      throw Object.assign(new Error("signed out"), { status: 401 });
    }
    if (!response.ok) throw Object.assign(new Error("HTTP " + response.status), { status: response.status });
    return response.json();
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  /**
   * Call the API with the session (and the CSRF token for unsafe methods). Never throws:
   * answers {ok, status, data}, where a network failure is status 0.
   */
  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    const init = { method, credentials: "same-origin", headers, cache: "no-store" };
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      return { ok: false, status: 0, data: null };
    }
    if (response.status === 401) {
      goLogin();
      return { ok: false, status: 401, data: null };
    }
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (e) {
        data = null;
      }
    }
    return { ok: response.ok, status: response.status, data };
  }

  // The server's own words for some refusals, said the way people say them.
  const PLAIN_DETAILS = {
    "only the group's creator can remove people": "Only the person who created this group can remove people from it.",
    "you cannot add someone you block or who blocks you":
      "You can’t add someone you’ve blocked, or who has blocked you.",
    "you cannot block yourself": "You can’t block yourself.",
    "search for at least one word": "Type at least one word to search for: letters or numbers, not only symbols.",
    "say why you report this message": "Please say why you’re reporting this message.",
    "a group needs at least two other people": "A group needs at least two other people.",
    "a direct conversation has no members to change": "This is a conversation between two people; it has no members to change.",
  };

  function sentence(text) {
    const t = String(text || "").trim();
    if (!t) return "";
    const first = t.charAt(0).toUpperCase() + t.slice(1);
    return /[.!?…]$/.test(first) ? first : first + ".";
  }

  function plainDetail(detail) {
    const key = String(detail || "").trim();
    return PLAIN_DETAILS[key] || sentence(key.replace(/'/g, "’"));
  }

  function waitText(seconds) {
    const s = Math.max(1, Math.ceil(Number(seconds) || 1));
    if (s < 90) return s + (s === 1 ? " second" : " seconds");
    const m = Math.ceil(s / 60);
    return m + (m === 1 ? " minute" : " minutes");
  }

  /** An HTTP failure in plain words; `what` completes "Couldn’t …" (e.g. "rename the group"). */
  function httpErrorText(res, what, notFound) {
    const data = res.data || {};
    if (res.status === 0) return "Couldn’t reach the server, so nothing changed. Check your connection and try again.";
    if (res.status === 429) return "That’s too many requests for now. Try again in " + waitText(data.retry_after || 60) + ".";
    if (res.status === 404) return notFound || "That isn’t available any more.";
    if (res.status === 400 && data.errors) {
      const messages = [];
      for (const list of Object.values(data.errors)) if (Array.isArray(list)) messages.push(...list);
      if (messages.length) return messages.map(plainDetail).join(" ");
    }
    if (res.status === 403 && /csrf/i.test(String(data.detail || ""))) {
      return "Your session has changed. Reload the page and try again.";
    }
    if (res.status >= 500) return "The server couldn’t " + what + " just now. Try again in a moment.";
    return data.detail ? plainDetail(data.detail) : "Couldn’t " + what + ".";
  }

  async function refreshBlocks() {
    const res = await request("GET", "/api/blocks/");
    if (!res.ok || !res.data || !Array.isArray(res.data.blocks)) return;
    state.blocked = new Set(res.data.blocks.map((u) => u.username));
    renderBlockState();
  }

  async function refreshInbox() {
    let data;
    try {
      data = await api("/api/conversations/");
    } catch (e) {
      return;
    }
    if (!data || !Array.isArray(data.conversations)) return;
    setConversations(data.conversations);
    if (state.cur) {
      const conv = state.convs.get(state.cur.id);
      if (conv && isViewing(conv.id) && conv.unread) {
        conv.unread = 0;
        maybeSendRead(true);
      }
    }
    renderInbox();
    renderHeader();
    updateSeen();
  }

  // ---------------------------------------------------------------------------------------
  // Connection banner
  // ---------------------------------------------------------------------------------------

  let bannerTimer = null;
  const bannerText = el("span", { class: "banner-text" });
  const bannerButton = el("button", {
    type: "button",
    class: "banner-button",
    "data-testid": "reconnect-now",
    text: "Reconnect now",
  });
  if (ui.banner) {
    ui.banner.replaceChildren(el("span", { class: "banner-dot", "aria-hidden": "true" }), bannerText, bannerButton);
  }
  bannerButton.addEventListener("click", () => {
    attempt = 0;
    connect();
  });

  function setConnection(status, message, immediate) {
    app.dataset.connection = status;
    clearTimeout(bannerTimer);
    bannerTimer = null;
    if (!ui.banner) return;
    if (status === "online") {
      ui.banner.hidden = true;
      ui.banner.dataset.state = "online";
      return;
    }
    const show = () => {
      bannerText.textContent = message;
      ui.banner.dataset.state = status;
      bannerButton.hidden = status === "connecting";
      ui.banner.hidden = false;
    };
    if (immediate || !ui.banner.hidden) show();
    else bannerTimer = setTimeout(show, 1500);
  }

  function offlineMessage() {
    return navigator.onLine === false
      ? "You’re offline. Messages will be sent when you’re back online."
      : "Connection lost. Reconnecting…";
  }

  // ---------------------------------------------------------------------------------------
  // WebSocket
  // ---------------------------------------------------------------------------------------

  let ws = null;
  let wsReady = false;
  let gotReady = false;
  let attempt = 0;
  let reconnectTimer = null;
  let pingTimer = null;
  let pongTimer = null;
  let syncing = false;
  let syncAgain = false;
  let afterConnect = false;
  let readyAt = 0;

  function send(frame) {
    if (!ws || !wsReady || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (ws) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let sock;
    try {
      sock = new WebSocket(scheme + "//" + location.host + (config.wsPath || "/ws/chat/"));
    } catch (e) {
      scheduleReconnect(0);
      return;
    }
    ws = sock;
    wsReady = false;
    gotReady = false;
    if (app.dataset.connection !== "offline") app.dataset.connection = "connecting";
    sock.onmessage = (event) => {
      if (sock !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (frame && typeof frame.type === "string") handleFrame(frame);
    };
    sock.onclose = (event) => {
      if (sock !== ws) return;
      ws = null;
      onClosed(event.code);
    };
  }

  /** Forget a socket that stopped answering and treat it as lost. */
  function dropSocket() {
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
    onClosed(1006);
  }

  function onClosed(code) {
    const hadReady = gotReady;
    wsReady = false;
    gotReady = false;
    syncing = false;
    syncAgain = false;
    stopPing();
    // Presence is unknown while disconnected; `ready` tells it again.
    if (state.online.size) {
      state.online.clear();
      renderInbox();
      renderHeader();
    }
    if (code === 4401) {
      setConnection("offline", "Your session has ended. Taking you to the login page…", true);
      forgetEverything();
      goLogin();
      return;
    }
    if (code === 1008) {
      setConnection(
        "offline",
        "The server paused this connection because of too many requests. Reconnecting shortly…",
        true
      );
      scheduleReconnect(30000 + Math.random() * 15000);
      return;
    }
    setConnection("offline", offlineMessage(), false);
    if (!hadReady && attempt >= 1) checkSignedIn();
    scheduleReconnect(0);
  }

  async function checkSignedIn() {
    try {
      const response = await fetch("/api/conversations/", {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      if (response.status === 401 || response.status === 403) goLogin();
    } catch (e) {
      /* offline: keep trying */
    }
  }

  function scheduleReconnect(minDelay) {
    clearTimeout(reconnectTimer);
    attempt += 1;
    const base = Math.min(30000, 1000 * Math.pow(2, Math.min(attempt - 1, 5)));
    const delay = Math.max(minDelay || 0, base / 2 + Math.random() * (base / 2));
    reconnectTimer = setTimeout(connect, delay);
  }

  function reconnectSoon() {
    if (ws) return;
    attempt = 0;
    connect();
  }

  function startPing() {
    stopPing();
    pingTimer = setInterval(() => {
      if (!wsReady) return;
      if (send({ type: "ping" }) && pongTimer === null) {
        pongTimer = setTimeout(() => {
          pongTimer = null;
          dropSocket();
        }, PONG_TIMEOUT);
      }
    }, PING_EVERY);
  }

  function stopPing() {
    clearInterval(pingTimer);
    pingTimer = null;
    clearTimeout(pongTimer);
    pongTimer = null;
  }

  function requestSync() {
    if (!wsReady) return;
    if (syncing) {
      syncAgain = true;
      return;
    }
    syncing = true;
    if (!send({ type: "sync", after: state.maxSeq })) syncing = false;
  }

  function seeSeq(seq) {
    if (typeof seq === "number" && seq > state.maxSeq) state.maxSeq = seq;
  }

  // ---------------------------------------------------------------------------------------
  // Frames from the server
  // ---------------------------------------------------------------------------------------

  function handleFrame(frame) {
    switch (frame.type) {
      case "ready":
        return onReady(frame);
      case "sync.result":
        return onSyncResult(frame);
      case "message.new":
      case "message.updated":
        return onPush(frame);
      case "message.ack":
        return onAck(frame);
      case "read":
        return onRead(frame);
      case "typing":
        return onTyping(frame);
      case "presence":
        return onPresence(frame);
      case "conversation.updated":
        return onConversationUpdated(frame);
      case "pong":
        clearTimeout(pongTimer);
        pongTimer = null;
        if (typeof frame.last_seq === "number" && frame.last_seq > state.maxSeq) requestSync();
        return;
      case "error":
        return onError(frame);
      default:
        return;
    }
  }

  function onReady(frame) {
    wsReady = true;
    gotReady = true;
    readyAt = Date.now();
    attempt = 0;
    state.online = new Set((frame.online || []).map((u) => u.id));
    setConnection("online");
    startPing();
    renderInbox();
    renderHeader();
    afterConnect = true;
    syncing = false;
    syncAgain = false;
    requestSync();
    if (!syncing) finishConnect();
  }

  function onSyncResult(frame) {
    const messages = Array.isArray(frame.messages) ? frame.messages : [];
    applyMessages(messages, { live: false });
    for (const m of messages) seeSeq(m.seq);
    if (frame.more && messages.length) {
      syncing = false;
      requestSync();
      return;
    }
    syncing = false;
    if (syncAgain) {
      syncAgain = false;
      requestSync();
      return;
    }
    if (afterConnect) finishConnect();
  }

  function finishConnect() {
    afterConnect = false;
    refreshInbox();
    refreshBlocks();
    if (state.cur) refreshConversation(state.cur);
    flushOutbox();
    maybeSendRead(true);
  }

  function onPush(frame) {
    const m = frame.message;
    if (!m || typeof m.id !== "number") return;
    const gap = typeof frame.prev_seq === "number" && frame.prev_seq > state.maxSeq;
    applyMessages([m], { live: true, isNew: frame.type === "message.new" });
    if (gap) requestSync();
    else seeSeq(m.seq);
  }

  function onAck(frame) {
    const m = frame.message;
    if (m && typeof m.id === "number") {
      applyMessages([m], { live: true, ack: true });
    } else if (frame.client_id) {
      outboxRemove(frame.client_id);
    }
  }

  function onRead(frame) {
    const conv = state.convs.get(frame.conversation);
    const userId = frame.user && frame.user.id;
    const upTo = Number(frame.up_to) || 0;
    if (userId === me.id) {
      if (!conv) return;
      conv.last_read = Math.max(conv.last_read || 0, upTo);
      if (state.cur && state.cur.id === conv.id) {
        conv.unread = countUnread(state.cur, conv.last_read);
      } else if (conv.last_message && upTo >= conv.last_message.id) {
        conv.unread = 0;
      } else {
        scheduleInboxRefresh();
      }
      renderInbox();
      return;
    }
    if (state.cur && state.cur.id === frame.conversation) {
      const key = String(userId);
      state.cur.readPointers[key] = Math.max(state.cur.readPointers[key] || 0, upTo);
      updateSeen();
    }
  }

  function countUnread(cur, lastRead) {
    let n = 0;
    for (const m of cur.msgs.values()) {
      if (m.id > lastRead && !m.deleted && m.kind !== "system" && m.sender.id !== me.id) n++;
    }
    return n;
  }

  let typingSweep = null;

  function onTyping(frame) {
    if (!frame.user || frame.user.id === me.id) return;
    let map = state.typers.get(frame.conversation);
    if (!map) {
      map = new Map();
      state.typers.set(frame.conversation, map);
    }
    map.set(frame.user.id, { user: frame.user, until: Date.now() + TYPING_SHOW_FOR });
    renderTypingEverywhere(frame.conversation);
    if (typingSweep === null) typingSweep = setInterval(sweepTypers, 1000);
  }

  function clearTyper(convId, userId) {
    const map = state.typers.get(convId);
    if (map && map.delete(userId)) renderTypingEverywhere(convId);
  }

  function sweepTypers() {
    const now = Date.now();
    for (const [convId, map] of state.typers) {
      let changed = false;
      for (const [userId, entry] of map) {
        if (entry.until <= now) {
          map.delete(userId);
          changed = true;
        }
      }
      if (!map.size) state.typers.delete(convId);
      if (changed) renderTypingEverywhere(convId);
    }
    if (!state.typers.size) {
      clearInterval(typingSweep);
      typingSweep = null;
    }
  }

  function renderTypingEverywhere(convId) {
    const li = inboxEls.get(convId);
    const conv = state.convs.get(convId);
    if (li && conv) fillInboxItem(li, conv);
    if (state.cur && state.cur.id === convId) renderTyping();
  }

  function renderTyping() {
    if (!ui.typing) return;
    const conv = state.cur ? state.convs.get(state.cur.id) : null;
    const text = state.cur ? typingText(state.cur.id, conv) : "";
    ui.typing.textContent = text;
    ui.typing.classList.toggle("is-visible", Boolean(text));
  }

  function onPresence(frame) {
    if (!frame.user) return;
    if (frame.online) state.online.add(frame.user.id);
    else state.online.delete(frame.user.id);
    renderInbox();
    renderHeader();
  }

  /** A group changed: its title or members; someone removed or gone loses it at once. */
  function onConversationUpdated(frame) {
    const c = frame.conversation;
    const change = frame.change || {};
    if (!c || typeof c.id !== "number") return;
    const members = Array.isArray(c.members) ? c.members : [];
    if (!members.some((u) => u.id === me.id)) {
      const open = state.cur && state.cur.id === c.id && !state.cur.gone;
      if (!state.convs.has(c.id) && !open) return; // gone already (left from this tab)
      const by = change.by && change.by.id !== me.id ? change.by.username : null;
      const name = state.convs.has(c.id) ? convName(state.convs.get(c.id)) : c.title || "the group";
      const text =
        change.kind === "removed" && by
          ? by + " removed you from “" + name + "”. You’re no longer in this group."
          : "You left “" + name + "”. You’re no longer in this group.";
      dropConversation(c.id, text);
      return;
    }
    const conv = state.convs.get(c.id);
    if (!conv) {
      scheduleInboxRefresh(); // added to a group: fetch it whole
      return;
    }
    conv.kind = c.kind || conv.kind;
    conv.title = typeof c.title === "string" ? c.title : conv.title;
    conv.members = members;
    const typers = state.typers.get(c.id);
    if (typers) for (const id of Array.from(typers.keys())) if (!members.some((u) => u.id === id)) typers.delete(id);
    renderInbox();
    if (state.cur && state.cur.id === c.id) {
      renderHeader();
      renderTyping();
      updateSeen();
    }
    renderGroupDialog();
  }

  /** Forget a conversation the user is no longer in; if it is open, say so in its place. */
  function dropConversation(id, text) {
    const known = state.convs.get(id);
    state.convs.delete(id);
    state.order = state.order.filter((x) => x !== id);
    state.typers.delete(id);
    const items = outboxAll();
    const keep = items.filter((i) => i.conversation !== id);
    if (keep.length !== items.length) outboxSave(keep);
    store.remove(draftKey(id));
    renderInbox();
    if (ui.groupDialog && ui.groupDialog.open && groupDialogConv === id) ui.groupDialog.close();
    if (state.cur && state.cur.id === id) showGone(state.cur, text, known);
    announce(text);
  }

  function onError(frame) {
    if (frame.client_id) {
      const item = outboxGet(frame.client_id);
      if (!item) return;
      item.state = "failed";
      item.error = { code: frame.code, detail: frame.detail || "", retry_after: frame.retry_after };
      item.attempts = (item.attempts || 0) + 1;
      outboxPut(item);
      renderPending(item);
      scheduleAutoRetry(item);
      return;
    }
    if (syncing && (frame.code === "unavailable" || frame.code === "rate_limited")) {
      // The server could not answer the sync now: ask again once it can.
      syncing = false;
      const wait = frame.code === "rate_limited" ? Math.max(1, Number(frame.retry_after) || 1) : 3;
      setTimeout(requestSync, wait * 1000);
      return;
    }
    const cur = state.cur;
    if (cur && cur.pendingChange && Date.now() - cur.pendingChange.at < 15000) {
      const change = cur.pendingChange;
      cur.pendingChange = null;
      showChangeError(change, frame);
      return;
    }
    if (frame.code === "rate_limited") return; // typing or read throttled: nothing to tell
    if (frame.code === "not_found") return; // e.g. a read for a message that is gone
    showNotice(errorText(frame));
  }

  function scheduleAutoRetry(item) {
    cancelRetry(item.client_id);
    const code = item.error && item.error.code;
    if (!TRANSIENT.has(code)) return;
    if (code === "unavailable" && item.attempts > 4) return;
    const wait =
      code === "rate_limited"
        ? Math.max(1, Number(item.error.retry_after) || 1) * 1000 + 250
        : Math.min(30000, 2000 * Math.pow(2, item.attempts - 1));
    retryTimers.set(
      item.client_id,
      setTimeout(() => {
        retryTimers.delete(item.client_id);
        retryTransient();
      }, wait)
    );
  }

  /** Resend every send that failed for a passing reason, oldest first, to keep their order. */
  function retryTransient() {
    for (const item of outboxAll()) {
      const code = item.state === "failed" && item.error ? item.error.code : null;
      if (!TRANSIENT.has(code)) continue;
      if (code === "unavailable" && item.attempts > 4) continue;
      retrySend(item.client_id);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Applying messages (pushes, sync results, acks, history pages)
  // ---------------------------------------------------------------------------------------

  function applyMessages(list, opts) {
    const cur = state.cur;
    const forCur = [];
    let inboxChanged = false;
    let unknownConv = false;
    const announcements = [];
    for (const m of list) {
      if (!m || typeof m.id !== "number" || !m.sender) continue;
      const key = m.id + ":" + m.seq;
      if (state.seenChanges.has(key)) continue;
      state.seenChanges.add(key);

      if (m.sender.id === me.id && m.client_id) {
        if (outboxRemove(m.client_id)) cancelRetry(m.client_id);
      }
      const conv = state.convs.get(m.conversation);
      const fromOther = m.sender.id !== me.id && !m.deleted && !opts.ack && m.kind !== "system";
      if (fromOther && opts.live && opts.isNew && m.id > ((conv && conv.last_read) || 0)) {
        notifyMessage(conv, m);
        // Read while away: mark where the reader left off.
        if (cur && cur.id === m.conversation && !isViewing(cur.id) && cur.dividerAfter === null) {
          cur.dividerAfter = (conv && conv.last_read) || 0;
        }
      }
      if (!conv) {
        unknownConv = true;
        if (fromOther) {
          announcements.push("New message from " + m.sender.username + ": " + truncate(oneLine(m.body), 140));
        }
      } else if (updateConvWithMessage(conv, m, opts, announcements)) {
        inboxChanged = true;
      }
      if (cur && cur.id === m.conversation) forCur.push(m);
      if (m.sender.id !== me.id) clearTyperQuiet(m.conversation, m.sender.id);
    }
    if (forCur.length && state.cur === cur) upsertMessages(forCur, { live: opts.live });
    if (inboxChanged) {
      sortInbox();
      renderInbox();
    }
    if (unknownConv) scheduleInboxRefresh();
    if (opts.live && announcements.length) announce(announcements[announcements.length - 1]);
    if (cur && forCur.length) maybeSendRead();
  }

  function clearTyperQuiet(convId, userId) {
    const map = state.typers.get(convId);
    if (map && map.has(userId)) {
      map.delete(userId);
      if (state.cur && state.cur.id === convId) renderTyping();
    }
  }

  /** Fold a message into its conversation's inbox entry; answer whether anything changed. */
  function updateConvWithMessage(conv, m, opts, announcements) {
    const last = conv.last_message;
    if (!last || m.id > last.id) {
      conv.last_message = m;
      if (ms(m.created_at) > ms(conv.last_activity_at)) conv.last_activity_at = m.created_at;
      if (m.kind === "system") {
        if (!opts.ack && opts.live && state.cur && state.cur.id === conv.id) announcements.push(m.body);
        return true;
      }
      if (m.sender.id !== me.id && !m.deleted && m.id > (conv.last_read || 0)) {
        if (!isViewing(conv.id)) conv.unread = (conv.unread || 0) + 1;
        if (!opts.ack) {
          const body = truncate(oneLine(m.body), 140);
          announcements.push(
            state.cur && state.cur.id === conv.id
              ? m.sender.username + ": " + body
              : "New message from " + m.sender.username +
                  (conv.kind === "group" ? " in " + convName(conv) : "") + ": " + body
          );
        }
      }
      return true;
    }
    if (last.id === m.id) {
      if ((m.seq || 0) >= (last.seq || 0)) conv.last_message = m;
      if (m.deleted && !last.deleted) adjustUnreadForDeletion(conv, m);
      return true;
    }
    if (m.deleted) return adjustUnreadForDeletion(conv, m);
    return false;
  }

  function adjustUnreadForDeletion(conv, m) {
    if (m.sender.id === me.id || m.id <= (conv.last_read || 0) || !conv.unread) return false;
    if (state.cur && state.cur.id === conv.id) {
      const known = state.cur.msgs.get(m.id);
      if (known && known.deleted) return false;
    }
    conv.unread = Math.max(0, conv.unread - 1);
    return true;
  }

  function announce(text) {
    if (!ui.live) return;
    ui.live.appendChild(el("p", { text }));
    while (ui.live.childNodes.length > 3) ui.live.removeChild(ui.live.firstChild);
  }

  // ---------------------------------------------------------------------------------------
  // Browser notifications: when the browser allows them and this tab is hidden.
  // The two settings live in localStorage, per user: notifications on/off (on by default
  // once the browser grants permission) and previews (the message text) on/off.
  // ---------------------------------------------------------------------------------------

  const NOTIFY_KEY = "chat:" + me.id + ":notify";
  const PREVIEW_KEY = "chat:" + me.id + ":notify-previews";
  const shownNotes = new Map(); // conversation id -> Notification

  function notifyPermission() {
    return typeof window.Notification === "function" ? window.Notification.permission : "unsupported";
  }

  function notifyOn() {
    return notifyPermission() === "granted" && store.get(NOTIFY_KEY, true) !== false;
  }

  function previewsOn() {
    return store.get(PREVIEW_KEY, true) !== false;
  }

  function renderNotifySettings() {
    if (!ui.notifyToggle || !ui.previewToggle) return;
    const permission = notifyPermission();
    ui.notifyToggle.checked = notifyOn();
    ui.notifyToggle.disabled = permission === "unsupported";
    ui.previewToggle.checked = previewsOn();
    let status = "";
    if (permission === "unsupported") status = "This browser can’t show notifications.";
    else if (permission === "denied") {
      status = "Notifications are blocked for this site. Allow them in your browser’s site settings.";
    }
    if (ui.notifyStatus) ui.notifyStatus.textContent = status;
  }

  async function onNotifyToggle() {
    if (!ui.notifyToggle.checked) {
      store.set(NOTIFY_KEY, false);
      renderNotifySettings();
      return;
    }
    store.set(NOTIFY_KEY, true);
    if (notifyPermission() === "default") {
      try {
        await window.Notification.requestPermission();
      } catch (e) {
        /* an old browser or a refused prompt: the status line says what happened */
      }
    }
    renderNotifySettings();
  }

  function onPreviewToggle() {
    store.set(PREVIEW_KEY, ui.previewToggle.checked);
    renderNotifySettings();
  }

  function notifyMessage(conv, m) {
    if (document.visibilityState !== "hidden" || !notifyOn()) return;
    const title =
      conv && conv.kind === "group" ? m.sender.username + " in " + convName(conv) : m.sender.username;
    const body = previewsOn() ? truncate(oneLine(m.body), 160) : "New message";
    let note;
    try {
      // Text only: notifications never interpret markup.
      note = new window.Notification(title, { body, tag: "chat-conversation-" + m.conversation, renotify: true });
    } catch (e) {
      return; // e.g. Android Chrome, which only allows notifications from a service worker
    }
    shownNotes.set(m.conversation, note);
    note.onclick = () => {
      window.focus();
      openConversation(m.conversation, { push: true, focus: true });
      note.close();
    };
    note.onclose = () => {
      if (shownNotes.get(m.conversation) === note) shownNotes.delete(m.conversation);
    };
  }

  function closeNotes(convId) {
    const note = shownNotes.get(convId);
    if (!note) return;
    shownNotes.delete(convId);
    try {
      note.close();
    } catch (e) {
      /* already gone */
    }
  }

  // ---------------------------------------------------------------------------------------
  // Conversation view
  // ---------------------------------------------------------------------------------------

  function newCur(id) {
    return {
      id,
      msgs: new Map(), // id -> message
      els: new Map(), // id -> li
      pendingEls: new Map(), // client_id -> li
      hasMore: false,
      loadingOlder: false,
      loaded: false,
      readPointers: {},
      lastReadSent: 0,
      pendingChange: null, // {kind: "edit"|"delete", id, at}
      unseenBelow: 0,
      dividerAfter: null, // "New messages" goes before the first other's message above this id
      gone: false, // removed from the group, or left it
      goneName: "",
      detached: false, // showing an older stretch around a search hit, not the newest messages
      target: null, // a message to show once the history is in (from a search hit)
      olderPromise: null,
    };
  }

  function renderHeader() {
    const cur = state.cur;
    if (!cur || !ui.title) return;
    const conv = state.convs.get(cur.id);
    if (ui.menu) ui.menu.hidden = !conv || cur.gone;
    if (!conv) {
      ui.title.textContent = cur.goneName || "Conversation";
      ui.status.textContent = "";
      ui.status.classList.remove("is-online");
      if (ui.menu) ui.menu.open = false;
      return;
    }
    ui.title.textContent = convName(conv);
    fillAvatar(ui.headAvatar, conv);
    const peer = directPeer(conv);
    const isGroup = conv.kind === "group";
    ui.menuGroup.hidden = !isGroup;
    ui.menuLeave.hidden = !isGroup;
    ui.menuBlock.hidden = !peer;
    if (peer) ui.menuBlock.textContent = (state.blocked.has(peer.username) ? "Unblock " : "Block ") + peer.username;
    if (peer && state.blocked.has(peer.username)) {
      ui.status.textContent = "Blocked";
      ui.status.dataset.online = "false";
      ui.status.classList.remove("is-online");
    } else if (peer) {
      const online = state.online.has(peer.id);
      ui.status.textContent = !wsReady ? "" : online ? "Online" : "Offline";
      ui.status.dataset.online = online ? "true" : "false";
      ui.status.classList.toggle("is-online", online);
    } else {
      const names = (conv.members || []).map((u) => (u.id === me.id ? "you" : u.username));
      const n = (conv.members || []).length;
      ui.status.textContent = n + (n === 1 ? " member · " : " members · ") + names.join(", ");
      ui.status.classList.remove("is-online");
      delete ui.status.dataset.online;
    }
  }

  function renderHistoryTop() {
    const cur = state.cur;
    if (!cur) return;
    if (cur.gone) {
      ui.loadOlder.hidden = true;
      ui.historyStart.hidden = true;
      return;
    }
    ui.loadOlder.hidden = !cur.loaded || !cur.hasMore;
    ui.loadOlder.disabled = cur.loadingOlder;
    ui.loadOlder.textContent = cur.loadingOlder ? "Loading…" : "Load older messages";
    ui.historyStart.hidden = !cur.loaded || cur.hasMore;
    if (!cur.loaded) {
      ui.historyStart.hidden = false;
      ui.historyStart.textContent = "Loading messages…";
    } else {
      const conv = state.convs.get(cur.id);
      const peer = directPeer(conv);
      ui.historyStart.textContent = cur.msgs.size
        ? "This is the beginning of the conversation."
        : peer
          ? "No messages yet. Say hello to " + peer.username + "!"
          : "No messages yet. Say hello!";
    }
  }

  let stickToBottom = true;

  function isNearBottom() {
    const s = ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.scroller.scrollTop = ui.scroller.scrollHeight;
    stickToBottom = true;
    if (state.cur) state.cur.unseenBelow = 0;
    ui.jump.hidden = true;
  }

  /** Show the newest messages, or the "New messages" divider if it would be scrolled past. */
  function scrollToFirstUnread() {
    scrollToBottom();
    const sep = ui.messages.querySelector(".unread-sep");
    if (!sep) return;
    const above = sep.getBoundingClientRect().top - ui.scroller.getBoundingClientRect().top;
    if (above < 0) {
      ui.scroller.scrollTop += above - 8;
      stickToBottom = false;
    }
  }

  function linkify(parent, text) {
    const pattern = /\bhttps?:\/\/[^\s<>"']+/gi;
    let last = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      let url = match[0];
      const trail = url.match(/[.,!?;:)\]}'"]+$/);
      if (trail) url = url.slice(0, url.length - trail[0].length);
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      const a = document.createElement("a");
      a.href = url;
      a.textContent = url;
      a.target = "_blank";
      a.rel = "noopener noreferrer nofollow";
      parent.appendChild(a);
      last = match.index + url.length;
      pattern.lastIndex = last;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function isGroupCur() {
    const conv = state.cur ? state.convs.get(state.cur.id) : null;
    return Boolean(conv && conv.kind === "group");
  }

  function buildSystemEl(m) {
    const li = el("li", {
      class: "msg system",
      "data-testid": "system-message",
      "data-id": m.id,
      "data-kind": "system",
      "data-state": "sent",
      "data-sender-id": m.sender.id,
      "data-ts": ms(m.created_at),
    });
    const date = new Date(ms(m.created_at));
    li.appendChild(
      el("p", { class: "system-text" }, [
        el("span", { "data-testid": "system-text", text: m.body }),
        el("time", { class: "system-time", datetime: m.created_at, title: fmtFull.format(date), text: fmtTime.format(date) }),
      ])
    );
    return li;
  }

  function buildMessageEl(m) {
    if (m.kind === "system") return buildSystemEl(m);
    const mine = m.sender.id === me.id;
    const li = el("li", {
      class: "msg " + (mine ? "mine" : "theirs") + (m.deleted ? " is-deleted" : ""),
      "data-testid": "message",
      "data-id": m.id,
      "data-client-id": m.client_id || "",
      "data-state": "sent",
      "data-sender": m.sender.username,
      "data-sender-id": m.sender.id,
      "data-ts": ms(m.created_at),
      "data-deleted": m.deleted ? "true" : "false",
    });
    li.appendChild(el("span", { class: "visually-hidden", text: (mine ? "You" : m.sender.username) + ": " }));
    if (!mine && isGroupCur()) {
      li.appendChild(el("span", { class: "msg-sender", "aria-hidden": "true", text: m.sender.username }));
    }
    const body = el("p", { class: "msg-body", "data-testid": "message-body" });
    if (m.deleted) {
      body.classList.add("deleted-text");
      body.textContent = "This message was deleted";
    } else {
      linkify(body, m.body);
    }
    const foot = el("span", { class: "msg-foot" }, [timeEl(m.created_at, false, "message-time")]);
    if (m.edited_at && !m.deleted) {
      foot.appendChild(el("span", { class: "msg-edited", "data-testid": "message-edited", text: "(edited)" }));
    }
    const bubble = el("div", { class: "bubble" }, [body, foot]);
    li.appendChild(el("div", { class: "msg-row" }, [bubble, m.deleted ? null : buildActions(m, mine)]));
    if (!m.deleted) {
      // Touch screens have no hover: a tap on a bubble shows its actions.
      bubble.addEventListener("click", (event) => {
        if (event.target.closest("a") || !window.matchMedia("(pointer: coarse)").matches) return;
        const open = li.classList.contains("show-actions");
        for (const other of ui.messages.querySelectorAll(".show-actions")) other.classList.remove("show-actions");
        li.classList.toggle("show-actions", !open);
      });
    }
    return li;
  }

  function buildActions(m, mine) {
    if (!mine) {
      const report = el("button", {
        type: "button",
        class: "msg-action",
        "data-testid": "message-report",
        "aria-label": "Report message from " + m.sender.username,
        title: "Report to the moderators",
        text: "Report",
      });
      report.addEventListener("click", () => startReport(m.id));
      return el("div", { class: "msg-actions" }, [report]);
    }
    const edit = el("button", {
      type: "button",
      class: "msg-action",
      "data-testid": "message-edit",
      "aria-label": "Edit message",
      title: "Edit",
      text: "Edit",
    });
    const del = el("button", {
      type: "button",
      class: "msg-action",
      "data-testid": "message-delete",
      "aria-label": "Delete message",
      title: "Delete",
      text: "Delete",
    });
    edit.addEventListener("click", () => startEdit(m.id));
    del.addEventListener("click", () => askDelete(m.id));
    return el("div", { class: "msg-actions" }, [edit, del]);
  }

  function buildPendingEl(item) {
    const li = el("li", {
      class: "msg mine pending",
      "data-testid": "message",
      "data-client-id": item.client_id,
      "data-state": item.state === "failed" ? "failed" : "pending",
      "data-sender": me.username,
      "data-sender-id": me.id,
      "data-ts": ms(item.created_at) || Date.now(),
    });
    li.appendChild(el("span", { class: "visually-hidden", text: "You: " }));
    const body = el("p", { class: "msg-body", "data-testid": "message-body" });
    linkify(body, item.body);
    const status = el("span", {
      class: "msg-status",
      "data-testid": "message-status",
      text: item.state === "failed" ? "Not sent" : "Sending…",
    });
    const foot = el("span", { class: "msg-foot" }, [timeEl(item.created_at, false, "message-time"), status]);
    li.appendChild(el("div", { class: "msg-row" }, [el("div", { class: "bubble" }, [body, foot])]));
    if (item.state === "failed") {
      const retry = el("button", { type: "button", class: "link-button", "data-testid": "message-retry", text: "Retry" });
      const discard = el("button", {
        type: "button",
        class: "link-button",
        "data-testid": "message-discard",
        text: "Discard",
      });
      retry.addEventListener("click", () => retrySend(item.client_id, true));
      discard.addEventListener("click", () => discardSend(item.client_id));
      li.appendChild(
        el("div", { class: "msg-error", role: "alert", "data-testid": "message-error" }, [
          el("span", { class: "msg-error-text", text: errorText(item.error) }),
          el("span", { class: "msg-error-actions" }, [retry, discard]),
        ])
      );
    }
    return li;
  }

  /** Put a new or changed message into the open conversation, in id order. */
  function upsertMessages(list, opts) {
    const cur = state.cur;
    if (!cur || cur.gone) return;
    const wasAtBottom = isNearBottom();
    let addedAtEnd = false;
    let ownAdded = false;
    let changed = false;
    let newerHidden = false;
    for (const m of list) {
      const existing = cur.msgs.get(m.id);
      if (existing && (existing.seq || 0) >= (m.seq || 0)) continue;
      if (cur.detached && !existing && m.id > cur.detachedTop) {
        // Showing an older stretch: newer messages wait behind "Jump to the latest".
        if (opts && opts.live && m.kind !== "system" && m.sender.id !== me.id) cur.unseenBelow += 1;
        newerHidden = true;
        continue;
      }
      cur.msgs.set(m.id, m);
      changed = true;
      if (m.sender.id === me.id && m.client_id) {
        const pending = cur.pendingEls.get(m.client_id);
        if (pending) {
          pending.remove();
          cur.pendingEls.delete(m.client_id);
        }
      }
      const node = buildMessageEl(m);
      const old = cur.els.get(m.id);
      if (old) {
        if (cur.editing === m.id) cur.editing = null;
        if (cur.pendingChange && cur.pendingChange.id === m.id) cur.pendingChange = null;
        // A report being written (or its "thanks") stays with the message, unless it is gone.
        if (!m.deleted) for (const extra of old.querySelectorAll(":scope > .msg-extra")) node.appendChild(extra);
        if (old.classList.contains("is-found")) markFound(node);
        old.replaceWith(node);
      } else {
        insertInOrder(node, m.id);
        if (m.id === maxSentId(cur)) {
          addedAtEnd = true;
          if (m.sender.id === me.id) ownAdded = true;
          else if (opts && opts.live && !wasAtBottom) cur.unseenBelow += 1;
        }
      }
      cur.els.set(m.id, node);
    }
    if (newerHidden) showJump();
    if (!changed) return;
    decorate();
    updateSeen();
    renderHistoryTop();
    if (addedAtEnd) {
      if (wasAtBottom || ownAdded) scrollToBottom();
      else if (opts && opts.live) showJump();
    }
  }

  function maxSentId(cur) {
    let max = 0;
    for (const id of cur.msgs.keys()) if (id > max) max = id;
    return max;
  }

  function insertInOrder(node, id) {
    const children = ui.messages.children;
    for (let i = children.length - 1; i >= 0; i--) {
      const child = children[i];
      if (!child.classList.contains("msg") || child.dataset.state !== "sent") continue;
      if (Number(child.dataset.id) < id) {
        ui.messages.insertBefore(node, child.nextSibling);
        return;
      }
    }
    // Oldest so far: before the first message (skipping separators).
    const first = ui.messages.querySelector(".msg");
    ui.messages.insertBefore(node, first);
  }

  /** Day separators, the "New messages" divider, and grouping of one sender's run. */
  function decorate() {
    for (const sep of Array.from(ui.messages.querySelectorAll(".day-sep, .unread-sep"))) sep.remove();
    const dividerAfter = state.cur ? state.cur.dividerAfter : null;
    let dividerPlaced = dividerAfter === null;
    let prevDay = null;
    let prevSender = null;
    let prevTs = 0;
    for (const li of Array.from(ui.messages.children)) {
      const ts = Number(li.dataset.ts) || 0;
      const date = new Date(ts);
      const day = date.toDateString();
      if (day !== prevDay) {
        ui.messages.insertBefore(
          el("li", { class: "day-sep", role: "separator", "data-testid": "day-separator" }, [
            el("span", { text: dayLabel(date) }),
          ]),
          li
        );
        prevSender = null;
      }
      if (li.dataset.kind === "system") {
        li.classList.remove("grouped");
        prevDay = day;
        prevSender = null;
        continue;
      }
      if (
        !dividerPlaced &&
        li.dataset.state === "sent" &&
        li.dataset.deleted !== "true" &&
        li.dataset.senderId !== String(me.id) &&
        Number(li.dataset.id) > dividerAfter
      ) {
        ui.messages.insertBefore(
          el("li", {
            class: "unread-sep",
            role: "separator",
            "aria-label": "New messages",
            "data-testid": "new-messages-divider",
          }, [el("span", { text: "New messages" })]),
          li
        );
        dividerPlaced = true;
        prevSender = null;
      }
      const grouped = prevSender === li.dataset.senderId && ts - prevTs < 5 * 60 * 1000;
      li.classList.toggle("grouped", grouped);
      prevDay = day;
      prevSender = li.dataset.senderId;
      prevTs = ts;
    }
  }

  function showJump() {
    const cur = state.cur;
    if (cur && cur.detached) {
      ui.jump.textContent =
        cur.unseenBelow > 0
          ? "Jump to the latest (" + cur.unseenBelow + " new) ↓"
          : "Jump to the latest messages ↓";
    } else {
      ui.jump.textContent = cur && cur.unseenBelow > 1 ? cur.unseenBelow + " new messages ↓" : "New message ↓";
    }
    ui.jump.hidden = false;
  }

  function updateSeen() {
    for (const node of Array.from(ui.messages.querySelectorAll(".msg-seen"))) node.remove();
    const cur = state.cur;
    if (!cur || cur.detached) return;
    const conv = state.convs.get(cur.id);
    if (!conv) return;
    let lastMine = null;
    for (const m of cur.msgs.values()) {
      if (m.sender.id === me.id && !m.deleted && m.kind !== "system" && (!lastMine || m.id > lastMine.id)) lastMine = m;
    }
    if (!lastMine) return;
    const peers = others(conv);
    const readers = peers.filter((u) => (cur.readPointers[String(u.id)] || 0) >= lastMine.id);
    if (!readers.length) return;
    let text = "Seen";
    if (conv.kind === "group") {
      if (readers.length === peers.length && peers.length > 1) text = "Seen by everyone";
      else if (readers.length <= 3) text = "Seen by " + readers.map((u) => u.username).join(", ");
      else text = "Seen by " + readers.length + " of " + peers.length;
    }
    const li = cur.els.get(lastMine.id);
    if (li) li.appendChild(el("div", { class: "msg-seen", "data-testid": "seen-marker", text }));
  }

  function renderPending(item) {
    const cur = state.cur;
    if (!cur || cur.id !== item.conversation) return;
    if (cur.msgs.size && [...cur.msgs.values()].some((m) => m.client_id === item.client_id && m.sender.id === me.id)) {
      return;
    }
    const node = buildPendingEl(item);
    const old = cur.pendingEls.get(item.client_id);
    if (old) old.replaceWith(node);
    else ui.messages.appendChild(node);
    cur.pendingEls.set(item.client_id, node);
    decorate();
  }

  function renderOutboxFor(cur) {
    for (const item of outboxAll()) {
      if (item.conversation === cur.id) renderPending(item);
    }
  }

  /** Open a conversation view: from boot data or by fetching; `target` is a message to show. */
  function setupConversation(id, boot, target) {
    saveDraft();
    const cur = newCur(id);
    cur.target = typeof target === "number" && target > 0 ? target : null;
    const known = state.convs.get(id);
    if (known && known.unread > 0) cur.dividerAfter = known.last_read || 0;
    closeNotes(id);
    state.cur = cur;
    ui.messages.replaceChildren();
    ui.jump.hidden = true;
    hideNotice();
    ui.emptyState.hidden = true;
    ui.conversation.hidden = false;
    ui.conversation.dataset.conversationId = String(id);
    app.dataset.view = "conversation";
    if (ui.menu) ui.menu.open = false;
    renderHeader();
    renderTyping();
    renderInbox();
    restoreDraft();
    renderComposerState();
    if (boot) {
      cur.loaded = true;
      cur.hasMore = Boolean(boot.hasMore);
      upsertMessages(boot.history || [], { live: false });
    }
    renderOutboxFor(cur);
    renderHistoryTop();
    scrollToFirstUnread();
    if (boot && cur.target) revealMessage(cur, cur.target);
    refreshConversation(cur);
    return cur;
  }

  /** Fetch the conversation (read pointers, members) and its newest page, and merge. */
  async function refreshConversation(cur) {
    let detail;
    let page;
    try {
      [detail, page] = await Promise.all([
        api("/api/conversations/" + cur.id + "/"),
        api("/api/conversations/" + cur.id + "/messages/?limit=" + PAGE),
      ]);
    } catch (e) {
      if (state.cur !== cur || cur.gone) return;
      if (e.status === 404) {
        dropConversation(cur.id, "This conversation isn’t available. You’re not a member of it (any more).");
      } else if (!cur.loaded) {
        showNotice("Couldn’t load messages. They’ll appear when the connection is back.");
      }
      return;
    }
    if (state.cur !== cur || cur.gone) return;
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
      sortInbox();
    }
    for (const key of Object.keys(readPointers)) {
      cur.readPointers[key] = Math.max(cur.readPointers[key] || 0, Number(readPointers[key]) || 0);
    }
    const firstLoad = !cur.loaded;
    if (firstLoad) {
      cur.loaded = true;
      cur.hasMore = Boolean(page.has_more);
    }
    // Messages of my own that reached the server (the outbox may still hold them).
    for (const m of page.messages || []) {
      if (m.sender && m.sender.id === me.id && m.client_id && outboxRemove(m.client_id)) cancelRetry(m.client_id);
    }
    // An older stretch on screen takes only changes to what it shows.
    const fresh = cur.detached ? (page.messages || []).filter((m) => cur.msgs.has(m.id)) : page.messages || [];
    upsertMessages(fresh, { live: false });
    if (firstLoad) {
      renderOutboxFor(cur);
      if (cur.target) revealMessage(cur, cur.target);
      else scrollToFirstUnread();
    }
    renderComposerState();
    renderGroupDialog();
    if (isViewing(cur.id)) {
      const conv = state.convs.get(cur.id);
      if (conv) conv.unread = 0;
    }
    renderHeader();
    renderHistoryTop();
    renderInbox();
    updateSeen();
    maybeSendRead(true);
  }

  function oldestId(cur) {
    let oldest = Infinity;
    for (const id of cur.msgs.keys()) if (id < oldest) oldest = id;
    return oldest;
  }

  function loadOlder() {
    const cur = state.cur;
    if (!cur || !cur.loaded || !cur.hasMore || cur.loadingOlder || cur.gone) return null;
    return loadOlderPage(cur, PAGE);
  }

  /** Load the page before the oldest message shown; answer whether it worked. */
  async function loadOlderPage(cur, limit) {
    if (cur.olderPromise) await cur.olderPromise;
    if (state.cur !== cur || !cur.hasMore) return state.cur === cur;
    const oldest = oldestId(cur);
    if (!Number.isFinite(oldest)) return false;
    cur.loadingOlder = true;
    renderHistoryTop();
    const work = (async () => {
      let page;
      try {
        page = await api("/api/conversations/" + cur.id + "/messages/?before=" + oldest + "&limit=" + limit);
      } catch (e) {
        return false;
      }
      if (state.cur !== cur) return false;
      const before = ui.scroller.scrollHeight;
      const top = ui.scroller.scrollTop;
      cur.hasMore = Boolean(page.has_more);
      upsertMessages(page.messages || [], { live: false });
      // Keep what the reader was looking at in place.
      ui.scroller.scrollTop = top + (ui.scroller.scrollHeight - before);
      return true;
    })();
    cur.olderPromise = work;
    const ok = await work;
    if (cur.olderPromise === work) cur.olderPromise = null;
    cur.loadingOlder = false;
    if (state.cur === cur) renderHistoryTop();
    return ok;
  }

  // A search hit further back than this many messages opens on its own stretch of history.
  const BACKFILL_PAGES = 5;
  const BACKFILL_LIMIT = 200;

  function markFound(li) {
    li.classList.add("is-found");
    li.dataset.found = "true";
  }

  /** Bring a message into view with the messages around it, and highlight it. */
  async function revealMessage(cur, id) {
    cur.target = id;
    let pages = 0;
    while (!cur.msgs.has(id) && cur.hasMore && oldestId(cur) > id && pages < BACKFILL_PAGES) {
      const ok = await loadOlderPage(cur, BACKFILL_LIMIT);
      if (!ok || state.cur !== cur) return;
      pages += 1;
    }
    if (state.cur !== cur || cur.gone) return;
    if (!cur.msgs.has(id) && cur.hasMore && oldestId(cur) > id) {
      await showStretch(cur, id);
      if (state.cur !== cur) return;
    }
    cur.target = null;
    for (const old of Array.from(ui.messages.querySelectorAll(".is-found"))) {
      old.classList.remove("is-found");
      delete old.dataset.found;
    }
    const li = cur.els.get(id);
    const m = cur.msgs.get(id);
    if (!li || !m || m.deleted) {
      showNotice("That message isn’t in this conversation any more.");
      return;
    }
    markFound(li);
    li.tabIndex = -1;
    li.scrollIntoView({ block: "center" });
    stickToBottom = isNearBottom();
    li.focus({ preventScroll: true });
  }

  /** Show the stretch of history that ends at a message, apart from the newest messages. */
  async function showStretch(cur, id) {
    let page;
    try {
      page = await api("/api/conversations/" + cur.id + "/messages/?before=" + (id + 1) + "&limit=" + PAGE);
    } catch (e) {
      return;
    }
    if (state.cur !== cur) return;
    cur.detached = true;
    cur.detachedTop = id;
    cur.msgs.clear();
    cur.els.clear();
    cur.pendingEls.clear();
    cur.unseenBelow = 0;
    ui.messages.replaceChildren();
    cur.hasMore = Boolean(page.has_more);
    upsertMessages(page.messages || [], { live: false });
    renderHistoryTop();
    showJump();
  }

  /** Leave an older stretch for the newest messages. */
  function backToLatest() {
    const cur = state.cur;
    if (!cur) return;
    setupConversation(cur.id, null);
    ui.input.focus({ preventScroll: true });
  }

  function openConversation(id, opts) {
    opts = opts || {};
    const target = opts.target || null;
    if (state.cur && state.cur.id === id && !state.cur.gone) {
      if (opts.push && app.dataset.view === "inbox") {
        history.pushState({ conversation: id, fromInbox: true }, "", URLS.conversation(id));
      }
      app.dataset.view = "conversation";
      if (target) {
        if (state.cur.loaded) revealMessage(state.cur, target);
        else state.cur.target = target;
      } else if (opts.focus) ui.input.focus();
      return;
    }
    if (opts.push) history.pushState({ conversation: id, fromInbox: app.dataset.view === "inbox" }, "", URLS.conversation(id));
    setupConversation(id, null, target);
    if (target) return; // the found message takes the focus once it is shown
    const conv = state.convs.get(id);
    if (conv && conv.unread && document.visibilityState === "visible") {
      conv.unread = 0;
      renderInbox();
    }
    if (opts.focus) ui.input.focus({ preventScroll: true });
    // On a phone, no keyboard pops up: the conversation's name takes the focus instead of
    // the inbox row that has just been hidden, so screen readers say where they are.
    else if (opts.push) ui.title.focus({ preventScroll: true });
  }

  function showInbox(opts) {
    opts = opts || {};
    saveDraft();
    const leaving = state.cur ? state.cur.id : null;
    const focusInSidebar = document.activeElement && ui.inbox.closest("aside").contains(document.activeElement);
    if (opts.push) history.pushState({ conversation: null }, "", URLS.inbox);
    state.cur = null;
    app.dataset.view = "inbox";
    if (ui.menu) ui.menu.open = false;
    ui.conversation.hidden = true;
    delete ui.conversation.dataset.conversationId;
    ui.emptyState.hidden = false;
    ui.messages.replaceChildren();
    ui.jump.hidden = true;
    renderInbox();
    // Back in the inbox: focus the conversation just left, so the keyboard carries on there.
    if (leaving !== null && !focusInSidebar && !ui.searchPanel.hidden) {
      // Back to the search hits that were showing: the one just opened keeps the focus.
      const hit = ui.searchHits.querySelector('[data-conversation-id="' + leaving + '"]');
      if (hit) hit.focus();
      return;
    }
    const row = leaving !== null ? inboxEls.get(leaving) : null;
    if (row && !focusInSidebar) row._parts.a.focus();
  }

  // ---------------------------------------------------------------------------------------
  // Reading
  // ---------------------------------------------------------------------------------------

  const scheduleRead = debounce(() => maybeSendRead(true), 250);

  function maybeSendRead(now) {
    if (!now) {
      scheduleRead();
      return;
    }
    const cur = state.cur;
    if (!cur || cur.gone || document.visibilityState !== "visible") return;
    const conv = state.convs.get(cur.id);
    const newest = maxSentId(cur);
    if (conv && conv.unread) {
      conv.unread = 0;
      renderInbox();
    }
    if (!newest || newest <= cur.lastReadSent) return;
    if (conv && newest <= (conv.last_read || 0)) {
      cur.lastReadSent = newest;
      return;
    }
    if (send({ type: "read", conversation: cur.id, up_to: newest })) {
      cur.lastReadSent = newest;
      if (conv) conv.last_read = Math.max(conv.last_read || 0, newest);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Sending
  // ---------------------------------------------------------------------------------------

  function transmit(item) {
    return send({ type: "message.send", conversation: item.conversation, body: item.body, client_id: item.client_id });
  }

  function flushOutbox() {
    for (const item of outboxAll()) {
      if (item.state !== "failed") transmit(item);
    }
  }

  function sendFromComposer() {
    let cur = state.cur;
    if (!cur || cur.gone || !ui.blockedBar.hidden) return;
    const body = ui.input.value.replace(/^\s*\n/, "").replace(/\s+$/, "");
    if (!body.trim()) {
      ui.input.focus();
      return;
    }
    if (codePoints(body) > MAX_BODY) {
      updateCounter();
      showNotice(errorText({ code: "too_long" }));
      return;
    }
    const item = {
      client_id: newClientId(),
      conversation: cur.id,
      body,
      created_at: new Date().toISOString(),
      state: "pending",
      error: null,
      attempts: 0,
    };
    outboxPut(item);
    cur.dividerAfter = null; // answering means the new ones were read
    ui.input.value = "";
    store.remove(draftKey(cur.id));
    if (cur.detached) {
      cur = setupConversation(cur.id, null); // back to the newest messages, where this one goes
    }
    autosize();
    updateCounter();
    hideNotice();
    renderPending(item);
    scrollToBottom();
    lastTypingSent = 0;
    transmit(item);
    ui.input.focus();
  }

  function retrySend(clientId, manual) {
    cancelRetry(clientId);
    let item = outboxGet(clientId);
    if (!item) return;
    if (manual) item.attempts = 0;
    if (item.error && item.error.code === "conflict") {
      const fresh = Object.assign({}, item, { client_id: newClientId() });
      fresh.state = "pending";
      fresh.error = null;
      outboxReplace(clientId, fresh);
      const cur = state.cur;
      if (cur && cur.pendingEls.has(clientId)) {
        const old = cur.pendingEls.get(clientId);
        cur.pendingEls.delete(clientId);
        const node = buildPendingEl(fresh);
        old.replaceWith(node);
        cur.pendingEls.set(fresh.client_id, node);
      }
      item = fresh;
    } else {
      item.state = "pending";
      item.error = null;
      outboxPut(item);
      renderPending(item);
    }
    transmit(item);
  }

  function discardSend(clientId) {
    cancelRetry(clientId);
    outboxRemove(clientId);
    const cur = state.cur;
    if (cur && cur.pendingEls.has(clientId)) {
      cur.pendingEls.get(clientId).remove();
      cur.pendingEls.delete(clientId);
      decorate();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Editing and deleting
  // ---------------------------------------------------------------------------------------

  function startEdit(id) {
    const cur = state.cur;
    if (!cur) return;
    const m = cur.msgs.get(id);
    const li = cur.els.get(id);
    if (!m || !li || m.deleted || m.sender.id !== me.id) return;
    if (cur.editing && cur.editing !== id) cancelEdit(cur.editing);
    cur.editing = id;
    li.classList.add("is-editing");
    const row = li.querySelector(".msg-row");
    const input = el("textarea", {
      class: "edit-input",
      "data-testid": "edit-input",
      "aria-label": "Edit message",
      rows: "2",
    });
    input.value = m.body;
    const save = el("button", { type: "button", class: "btn btn-primary btn-small", "data-testid": "edit-save", text: "Save" });
    const cancel = el("button", { type: "button", class: "btn btn-ghost btn-small", "data-testid": "edit-cancel", text: "Cancel" });
    const error = el("p", { class: "edit-error", role: "alert", "data-testid": "edit-error", hidden: true });
    const hint = el("span", { class: "edit-hint", text: "Enter to save · Esc to cancel" });
    const form = el("div", { class: "edit-form" }, [input, el("div", { class: "edit-row" }, [hint, cancel, save]), error]);
    row.hidden = true;
    row.after(form);
    const submit = () => {
      const body = input.value.replace(/\s+$/, "");
      if (!body.trim()) {
        error.textContent = "A message can’t be empty. Delete it instead?";
        error.hidden = false;
        return;
      }
      if (codePoints(body) > MAX_BODY) {
        error.textContent = errorText({ code: "too_long" });
        error.hidden = false;
        return;
      }
      if (body === m.body) {
        cancelEdit(id);
        return;
      }
      if (!wsReady) {
        error.textContent = "You’re offline. Try again when the connection is back.";
        error.hidden = false;
        return;
      }
      if (send({ type: "message.edit", id, body })) {
        cur.pendingChange = { kind: "edit", id, at: Date.now() };
        save.disabled = true;
        save.textContent = "Saving…";
        error.hidden = true;
      }
    };
    save.addEventListener("click", submit);
    cancel.addEventListener("click", () => cancelEdit(id));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        cancelEdit(id);
      }
    });
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  function cancelEdit(id) {
    const cur = state.cur;
    if (!cur) return;
    const m = cur.msgs.get(id);
    const old = cur.els.get(id);
    if (cur.editing === id) cur.editing = null;
    if (!m || !old) return;
    const node = buildMessageEl(m);
    old.replaceWith(node);
    cur.els.set(id, node);
    decorate();
    updateSeen();
    const again = node.querySelector('[data-testid="message-edit"]');
    if (again) again.focus();
  }

  function askDelete(id) {
    const cur = state.cur;
    if (!cur) return;
    const li = cur.els.get(id);
    if (!li) return;
    const actions = li.querySelector(".msg-actions");
    if (!actions) return;
    const yes = el("button", {
      type: "button",
      class: "msg-action danger",
      "data-testid": "message-delete-confirm",
      text: "Delete",
    });
    const no = el("button", { type: "button", class: "msg-action", "data-testid": "message-delete-cancel", text: "Keep" });
    const question = el("span", { class: "confirm-text", text: "Delete for everyone?" });
    const original = Array.from(actions.childNodes);
    actions.replaceChildren(question, no, yes);
    actions.classList.add("confirming");
    no.addEventListener("click", () => {
      actions.replaceChildren(...original);
      actions.classList.remove("confirming");
      original[0].focus();
    });
    yes.addEventListener("click", () => {
      if (!wsReady) {
        showNotice("You’re offline. Try deleting again when the connection is back.");
        return;
      }
      if (send({ type: "message.delete", id })) {
        cur.pendingChange = { kind: "delete", id, at: Date.now() };
        yes.disabled = true;
        no.disabled = true;
        question.textContent = "Deleting…";
      }
    });
    yes.focus();
  }

  function showChangeError(change, frame) {
    const cur = state.cur;
    const li = cur && cur.els.get(change.id);
    const text =
      (change.kind === "edit" ? "Couldn’t save the edit: " : "Couldn’t delete: ") +
      (frame.code === "rate_limited"
        ? "too many changes at once. Wait a moment and try again."
        : errorText(frame));
    if (change.kind === "edit" && li) {
      const error = li.querySelector('[data-testid="edit-error"]');
      const save = li.querySelector('[data-testid="edit-save"]');
      if (error) {
        error.textContent = text;
        error.hidden = false;
        if (save) {
          save.disabled = false;
          save.textContent = "Save";
        }
        return;
      }
    }
    if (change.kind === "delete" && li) {
      const m = cur.msgs.get(change.id);
      if (m) {
        const node = buildMessageEl(m);
        li.replaceWith(node);
        cur.els.set(change.id, node);
        decorate();
        updateSeen();
      }
    }
    showNotice(text);
  }

  // ---------------------------------------------------------------------------------------
  // Notices
  // ---------------------------------------------------------------------------------------

  let noticeTimer = null;

  function showNotice(text) {
    if (!ui.notice) return;
    ui.notice.textContent = text;
    ui.notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(hideNotice, 8000);
  }

  function hideNotice() {
    if (!ui.notice) return;
    clearTimeout(noticeTimer);
    ui.notice.hidden = true;
    ui.notice.textContent = "";
  }

  // ---------------------------------------------------------------------------------------
  // Composer: drafts, typing, counter, autosize
  // ---------------------------------------------------------------------------------------

  let lastTypingSent = 0;

  function saveDraft() {
    const cur = state.cur;
    if (!cur) return;
    const value = ui.input.value;
    if (value.trim()) store.set(draftKey(cur.id), value);
    else store.remove(draftKey(cur.id));
  }

  const saveDraftSoon = debounce(saveDraft, 250);

  function restoreDraft() {
    const cur = state.cur;
    const value = cur ? store.get(draftKey(cur.id), "") : "";
    ui.input.value = typeof value === "string" ? value : "";
    autosize();
    updateCounter();
  }

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight, 240) + "px";
  }

  function updateCounter() {
    const length = codePoints(ui.input.value.replace(/\s+$/, ""));
    const over = length > MAX_BODY;
    if (length >= COUNTER_FROM) {
      ui.counter.hidden = false;
      ui.counter.textContent = over
        ? (length - MAX_BODY).toLocaleString() + " over the limit"
        : (MAX_BODY - length).toLocaleString() + " left";
      ui.counter.title = length.toLocaleString() + " / " + MAX_BODY.toLocaleString() + " characters";
    } else {
      ui.counter.hidden = true;
      ui.counter.textContent = "";
    }
    ui.counter.classList.toggle("is-over", over);
    ui.composer.classList.toggle("is-over", over);
    ui.send.disabled = over;
  }

  function onComposerInput() {
    autosize();
    updateCounter();
    saveDraftSoon();
    const cur = state.cur;
    if (!cur || !ui.input.value.trim()) return;
    const now = Date.now();
    if (now - lastTypingSent >= TYPING_SEND_EVERY && send({ type: "typing", conversation: cur.id })) {
      lastTypingSent = now;
    }
  }

  // ---------------------------------------------------------------------------------------
  // People search
  // ---------------------------------------------------------------------------------------

  let searchSeq = 0;

  /** The people whose names match q; null when the lookup failed or is no longer wanted (a newer one started). */
  async function findUsers(q, stillWanted) {
    let data;
    try {
      data = await api("/api/users/?q=" + encodeURIComponent(q));
    } catch (e) {
      return null;
    }
    if (!stillWanted()) return null;
    return (data && data.users) || [];
  }

  /** What a screen reader hears when a list of people comes back. */
  function foundStatus(count) {
    return count
      ? count + (count === 1 ? " person found." : " people found.") + " Press the down arrow to choose."
      : "No one found.";
  }

  /** Down and up arrows walk a list of results and back up to its input; true when the key was one of them. */
  function walkResults(event, items, input) {
    const at = items.indexOf(document.activeElement);
    if (event.key === "ArrowDown") {
      event.preventDefault();
      if (items.length) items[Math.min(items.length - 1, at + 1)].focus();
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      if (at <= 0) input.focus();
      else items[at - 1].focus();
    } else {
      return false;
    }
    return true;
  }

  function findDirectWith(username) {
    for (const conv of state.convs.values()) {
      const peer = directPeer(conv);
      if (peer && peer.username === username) return conv;
    }
    return null;
  }

  function searchStatus(text) {
    const node = document.getElementById("user-search-status");
    if (node) node.textContent = text;
  }

  function closeSearch() {
    ui.searchResults.hidden = true;
    ui.searchResults.replaceChildren();
    searchStatus("");
  }

  const runSearch = debounce(async () => {
    const q = ui.search.value.trim();
    const mySeq = ++searchSeq;
    if (!q) {
      closeSearch();
      return;
    }
    const users = await findUsers(q, () => mySeq === searchSeq);
    if (!users) return;
    ui.searchResults.replaceChildren();
    if (!users.length) {
      ui.searchResults.appendChild(el("li", { class: "search-none", text: "No one found named “" + q + "…”" }));
    }
    for (const user of users) {
      const a = el("a", {
        class: "search-result",
        href: URLS.direct(user.username),
        "data-testid": "user-search-result",
        "data-username": user.username,
      });
      a.append(userAvatar(user.username), el("span", { class: "search-name", text: user.username }));
      if (state.online.has(user.id)) a.appendChild(el("span", { class: "search-online", text: "online" }));
      a.addEventListener("click", (event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        const conv = findDirectWith(user.username);
        if (conv) {
          event.preventDefault();
          ui.search.value = "";
          closeSearch();
          openConversation(conv.id, { push: true, focus: true });
        } else {
          saveDraft();
        }
      });
      const li = el("li", { class: "search-item" }, [a]);
      li.appendChild(
        blockButton(user.username, "msg-action search-block", "user-block-toggle", (text) => {
          const error = el("li", { class: "search-none search-failed", role: "alert", text });
          li.after(error);
        })
      );
      ui.searchResults.appendChild(li);
    }
    ui.searchResults.hidden = false;
    searchStatus(foundStatus(users.length));
  }, 150);

  function searchKeys(event) {
    const links = Array.from(ui.searchResults.querySelectorAll("a"));
    if (walkResults(event, links, ui.search)) return;
    if (event.key === "Escape") {
      ui.search.value = "";
      closeSearch();
      ui.search.focus();
    } else if (event.key === "Enter" && document.activeElement === ui.search && links.length) {
      event.preventDefault();
      links[0].click();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Conversation states: blocked, gone
  // ---------------------------------------------------------------------------------------

  /** The composer, or in its place why one cannot write here. */
  function renderComposerState() {
    const cur = state.cur;
    const conv = cur ? state.convs.get(cur.id) : null;
    const gone = Boolean(cur && cur.gone);
    const peer = directPeer(conv);
    const blocked = Boolean(!gone && peer && state.blocked.has(peer.username));
    ui.goneBar.hidden = !gone;
    ui.blockedBar.hidden = !blocked;
    if (blocked) {
      ui.blockedText.textContent =
        "You blocked " + peer.username + ". Neither of you can message the other until you unblock them.";
      ui.blockedUnblock.dataset.username = peer.username;
      ui.blockedUnblock.setAttribute("aria-label", "Unblock " + peer.username);
    }
    ui.composer.hidden = gone || blocked;
    ui.conversation.classList.toggle("is-gone", gone);
  }

  function showGone(cur, text, known) {
    cur.gone = true;
    cur.detached = false;
    cur.goneName = known ? convName(known) : cur.goneName || ui.title.textContent;
    cur.msgs.clear();
    cur.els.clear();
    cur.pendingEls.clear();
    ui.messages.replaceChildren();
    ui.jump.hidden = true;
    ui.input.value = "";
    ui.goneText.textContent = text;
    hideNotice();
    renderHeader();
    renderHistoryTop();
    renderTyping();
    renderComposerState();
  }

  function renderBlockState() {
    renderInbox();
    renderHeader();
    renderComposerState();
    renderGroupDialog();
    for (const button of Array.from(document.querySelectorAll("[data-block-username]"))) {
      fillBlockButton(button, button.dataset.blockUsername);
    }
  }

  function fillBlockButton(button, username) {
    const blocked = state.blocked.has(username);
    button.textContent = blocked ? "Unblock" : "Block";
    button.setAttribute("aria-label", (blocked ? "Unblock " : "Block ") + username);
    button.dataset.blocked = blocked ? "true" : "false";
  }

  /** A Block/Unblock button for someone; `onError` shows what went wrong. */
  function blockButton(username, className, testid, onError) {
    const button = el("button", {
      type: "button",
      class: className,
      "data-testid": testid,
      "data-block-username": username,
    });
    fillBlockButton(button, username);
    button.addEventListener("click", async (event) => {
      event.preventDefault();
      event.stopPropagation();
      button.disabled = true;
      const error = await setBlocked(username, !state.blocked.has(username));
      button.disabled = false;
      if (error && onError) onError(error);
    });
    return button;
  }

  /** Block or unblock someone; answer null, or what went wrong in plain words. */
  async function setBlocked(username, block) {
    const res = block
      ? await request("POST", "/api/blocks/", { username })
      : await request("DELETE", "/api/blocks/" + encodeURIComponent(username) + "/");
    // Unblocking someone who was not blocked (in another tab, say) leaves them unblocked.
    if (!res.ok && !(res.status === 404 && !block)) {
      return httpErrorText(
        res,
        (block ? "block " : "unblock ") + username,
        block ? "There’s no one called " + username + "." : undefined
      );
    }
    if (block) state.blocked.add(username);
    else state.blocked.delete(username);
    renderBlockState();
    announce(block ? "You blocked " + username + "." : "You unblocked " + username + ".");
    return null;
  }

  // ---------------------------------------------------------------------------------------
  // Reports
  // ---------------------------------------------------------------------------------------

  function startReport(id) {
    const cur = state.cur;
    if (!cur) return;
    const li = cur.els.get(id);
    const m = cur.msgs.get(id);
    if (!li || !m || m.deleted) return;
    const open = li.querySelector(":scope > .report-form textarea");
    if (open) {
      open.focus();
      return;
    }
    for (const done of li.querySelectorAll(":scope > .report-done")) done.remove();
    const fieldId = "report-reason-" + id;
    const input = el("textarea", {
      id: fieldId,
      class: "edit-input report-input",
      rows: "2",
      maxlength: "1000",
      "data-testid": "report-reason",
      placeholder: "For example: spam, threats, harassment…",
    });
    const submit = el("button", { type: "submit", class: "btn btn-primary btn-small", "data-testid": "report-submit", text: "Send report" });
    const cancel = el("button", { type: "button", class: "btn btn-ghost btn-small", "data-testid": "report-cancel", text: "Cancel" });
    const error = el("p", { class: "edit-error", role: "alert", "data-testid": "report-error", hidden: true });
    const form = el(
      "form",
      { class: "msg-extra edit-form report-form", "data-testid": "report-form", "aria-label": "Report this message", novalidate: true },
      [
        el("label", {
          class: "report-label",
          for: fieldId,
          text: "Why are you reporting this message from " + m.sender.username + "? Only the moderators see your report.",
        }),
        input,
        el("div", { class: "edit-row" }, [el("span", { class: "edit-hint", text: "Enter to send · Esc to cancel" }), cancel, submit]),
        error,
      ]
    );
    const close = () => {
      form.remove();
      const again = li.isConnected ? li.querySelector('[data-testid="message-report"]') : null;
      if (again) again.focus();
    };
    const fail = (text) => {
      error.textContent = text;
      error.hidden = false;
      submit.disabled = false;
      submit.textContent = "Send report";
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      const reason = input.value.trim();
      if (!reason) {
        fail("Please say why you’re reporting this message.");
        input.focus();
        return;
      }
      if (codePoints(reason) > 1000) {
        fail("Please keep the reason under 1,000 characters.");
        return;
      }
      submit.disabled = true;
      submit.textContent = "Sending…";
      error.hidden = true;
      const res = await request("POST", "/api/messages/" + id + "/report/", { reason });
      if (res.status !== 201 && res.status !== 200) {
        fail(httpErrorText(res, "send the report", "This message isn’t available any more, so it can’t be reported."));
        return;
      }
      const thanks = el("p", {
        class: "msg-extra report-done",
        role: "status",
        tabindex: "-1",
        "data-testid": "report-done",
        text:
          res.status === 201
            ? "Reported — thanks. The moderators will take a look."
            : "Reported — thanks. You had already reported this message.",
      });
      form.replaceWith(thanks);
      thanks.focus({ preventScroll: true });
    });
    cancel.addEventListener("click", close);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
    li.appendChild(form);
    input.focus();
    form.scrollIntoView({ block: "nearest" });
  }

  // ---------------------------------------------------------------------------------------
  // Picking people by username (new group, add people)
  // ---------------------------------------------------------------------------------------

  function makePicker(root, exclude) {
    const base = root.id;
    const chips = el("ul", { class: "chips", "data-testid": "people-picked", "aria-label": "Chosen people" });
    const input = el("input", {
      id: base + "-input",
      class: "text-input",
      type: "text",
      autocomplete: "off",
      autocapitalize: "none",
      spellcheck: "false",
      placeholder: "Type a username…",
      "aria-controls": base + "-results",
      "aria-describedby": base + "-hint",
      "data-testid": "people-picker-input",
    });
    const results = el("ul", {
      id: base + "-results",
      class: "picker-results",
      "aria-label": "People found",
      "data-testid": "people-picker-results",
      hidden: true,
    });
    const status = el("span", { class: "visually-hidden", role: "status" });
    root.replaceChildren(
      el("label", { class: "field-label", for: base + "-input", text: root.dataset.label || "People" }),
      chips,
      el("div", { class: "picker-box" }, [input, results]),
      el("p", { class: "field-hint", id: base + "-hint", text: root.dataset.hint || "" }),
      status
    );
    const picked = [];
    let seq = 0;

    function renderChips() {
      chips.replaceChildren();
      for (const name of picked) {
        const remove = el("button", {
          type: "button",
          class: "chip-remove",
          "aria-label": "Remove " + name,
          title: "Remove",
          "data-testid": "people-picked-remove",
          text: "×",
        });
        remove.addEventListener("click", () => {
          const at = picked.indexOf(name);
          if (at >= 0) picked.splice(at, 1);
          renderChips();
          status.textContent = name + " removed.";
          input.focus();
        });
        chips.appendChild(
          el("li", { class: "chip", "data-testid": "people-picked-item", "data-username": name }, [
            el("span", { class: "chip-name", text: name }),
            remove,
          ])
        );
      }
      chips.hidden = picked.length === 0;
    }

    function hideResults() {
      seq += 1;
      results.hidden = true;
      results.replaceChildren();
    }

    function pick(name) {
      if (!picked.includes(name)) picked.push(name);
      renderChips();
      input.value = "";
      hideResults();
      status.textContent = name + " added. " + picked.length + (picked.length === 1 ? " person chosen." : " people chosen.");
      input.focus();
    }

    const lookUp = debounce(async () => {
      const q = input.value.trim();
      const mine = ++seq;
      if (!q) {
        hideResults();
        return;
      }
      const found = await findUsers(q, () => mine === seq);
      if (!found) return;
      const skip = exclude ? exclude() : new Set();
      const users = found.filter((u) => !picked.includes(u.username) && !skip.has(u.username));
      results.replaceChildren();
      if (!users.length) results.appendChild(el("li", { class: "search-none", text: "No one else found named “" + q + "…”" }));
      for (const user of users) {
        const button = el("button", {
          type: "button",
          class: "picker-result",
          "data-testid": "people-picker-result",
          "data-username": user.username,
        });
        button.append(userAvatar(user.username), el("span", { class: "search-name", text: user.username }));
        button.addEventListener("click", () => pick(user.username));
        results.appendChild(el("li", {}, [button]));
      }
      results.hidden = false;
      status.textContent = foundStatus(users.length);
    }, 150);

    input.addEventListener("input", lookUp);
    const keys = (event) => {
      const buttons = Array.from(results.querySelectorAll("button"));
      if (walkResults(event, buttons, input)) return;
      if (event.key === "Escape" && !results.hidden) {
        event.preventDefault(); // close the list, not the dialog
        input.value = "";
        hideResults();
        input.focus();
      } else if (event.key === "Enter" && document.activeElement === input) {
        // Enter picks the first match, and never submits the form half-way.
        event.preventDefault();
        if (buttons.length) buttons[0].click();
      }
    };
    input.addEventListener("keydown", keys);
    results.addEventListener("keydown", keys);
    renderChips();

    return {
      picked: () => picked.slice(),
      input,
      clear() {
        picked.length = 0;
        input.value = "";
        hideResults();
        renderChips();
        status.textContent = "";
      },
    };
  }

  // ---------------------------------------------------------------------------------------
  // Groups: create, rename, add, remove, leave
  // ---------------------------------------------------------------------------------------

  let createPicker = null;
  let addPicker = null;
  let groupDialogConv = null;

  function showError(node, text) {
    node.textContent = text || "";
    node.hidden = !text;
  }

  function busy(button, on, label) {
    button.disabled = on;
    button.textContent = label;
  }

  function addConversation(conv) {
    const known = state.convs.get(conv.id);
    delete conv.read_pointers;
    if (known) Object.assign(known, conv);
    else {
      state.convs.set(conv.id, conv);
      state.order.push(conv.id);
    }
    sortInbox();
    renderInbox();
  }

  function openGroupCreate() {
    ui.groupTitle.value = "";
    createPicker.clear();
    showError(ui.groupCreateError, "");
    busy(ui.groupCreateSubmit, false, "Create group");
    closeSearch();
    ui.groupCreate.showModal();
    ui.groupTitle.focus();
  }

  async function submitGroupCreate(event) {
    event.preventDefault();
    if (ui.groupCreateSubmit.disabled) return;
    const members = createPicker.picked();
    if (members.length < 2) {
      showError(
        ui.groupCreateError,
        members.length
          ? "Pick at least one more person: a group has three or more people. To talk with one person, search for them in “Start a conversation”."
          : "Pick at least two people: type a username and choose from the list."
      );
      createPicker.input.focus();
      return;
    }
    busy(ui.groupCreateSubmit, true, "Creating…");
    showError(ui.groupCreateError, "");
    const res = await request("POST", "/api/conversations/", { members, title: ui.groupTitle.value.trim() });
    busy(ui.groupCreateSubmit, false, "Create group");
    if (!res.ok || !res.data || typeof res.data.id !== "number") {
      showError(ui.groupCreateError, httpErrorText(res, "create the group"));
      return;
    }
    addConversation(res.data);
    ui.groupCreate.close();
    announce("Group “" + convName(state.convs.get(res.data.id)) + "” created.");
    openConversation(res.data.id, { push: true, focus: true });
  }

  function openGroupDialog(leaving) {
    const cur = state.cur;
    const conv = cur ? state.convs.get(cur.id) : null;
    if (!conv || conv.kind !== "group") return;
    if (ui.menu) ui.menu.open = false;
    groupDialogConv = conv.id;
    ui.renameInput.value = conv.title || "";
    ui.renameInput.dataset.dirty = "";
    ui.renameStatus.textContent = "";
    ui.renameStatus.classList.remove("is-error");
    busy(ui.renameSave, false, "Save");
    busy(ui.addSubmit, false, "Add to group");
    busy(ui.leaveConfirm, false, "Leave");
    showError(ui.membersError, "");
    showError(ui.addError, "");
    showError(ui.leaveError, "");
    addPicker.clear();
    ui.leaveBox.hidden = true;
    ui.leave.hidden = false;
    ui.groupDialog.showModal();
    renderGroupDialog();
    if (leaving) askLeave();
    else ui.renameInput.focus();
  }

  function renderGroupDialog() {
    if (!ui.groupDialog || !ui.groupDialog.open || groupDialogConv === null) return;
    const conv = state.convs.get(groupDialogConv);
    if (!conv) {
      ui.groupDialog.close();
      return;
    }
    if (!ui.renameInput.dataset.dirty && document.activeElement !== ui.renameInput) ui.renameInput.value = conv.title || "";
    ui.leaveText.textContent = "Leave “" + convName(conv) + "”? You won’t see its messages any more, unless someone adds you again.";
    const focused = document.activeElement;
    const refocus =
      focused && ui.members.contains(focused)
        ? { name: focused.closest("[data-username]").dataset.username, testid: focused.dataset.testid }
        : null;
    ui.members.replaceChildren();
    const members = (conv.members || []).slice().sort((a, b) => (a.id === me.id ? -1 : b.id === me.id ? 1 : 0));
    for (const user of members) ui.members.appendChild(buildMemberRow(conv, user));
    document.getElementById("group-members-heading").textContent = "Members (" + members.length + ")";
    if (refocus) {
      const row = ui.members.querySelector('[data-username="' + CSS.escape(refocus.name) + '"]');
      const again = row && (row.querySelector('[data-testid="' + refocus.testid + '"]') || row.querySelector("button"));
      if (again) again.focus();
    }
  }

  function buildMemberRow(conv, user) {
    const mine = user.id === me.id;
    const li = el("li", { class: "member", "data-testid": "group-member", "data-username": user.username });
    const avatar = userAvatar(user.username);
    const name = el("span", { class: "member-name" }, [el("span", { "data-testid": "group-member-name", text: user.username })]);
    if (mine) name.appendChild(el("span", { class: "member-you", text: " (you)" }));
    else if (state.blocked.has(user.username)) name.appendChild(el("span", { class: "inbox-tag", text: "Blocked" }));
    const actions = el("span", { class: "member-actions" });
    li.append(avatar, name, actions);
    if (mine) return li;
    const remove = el("button", {
      type: "button",
      class: "msg-action danger",
      "data-testid": "group-member-remove",
      "aria-label": "Remove " + user.username + " from the group",
      text: "Remove",
    });
    actions.append(blockButton(user.username, "msg-action", "member-block-toggle", (text) => showError(ui.membersError, text)), remove);
    remove.addEventListener("click", () => {
      const question = el("span", { class: "confirm-text", text: "Remove " + user.username + "?" });
      const keep = el("button", { type: "button", class: "msg-action", "data-testid": "group-member-remove-cancel", text: "Keep" });
      const yes = el("button", {
        type: "button",
        class: "msg-action danger",
        "data-testid": "group-member-remove-confirm",
        text: "Remove",
      });
      const original = Array.from(actions.childNodes);
      actions.replaceChildren(question, keep, yes);
      keep.addEventListener("click", () => {
        actions.replaceChildren(...original);
        remove.focus();
      });
      yes.addEventListener("click", async () => {
        yes.disabled = keep.disabled = true;
        question.textContent = "Removing…";
        showError(ui.membersError, "");
        const res = await request(
          "DELETE",
          "/api/conversations/" + conv.id + "/members/" + encodeURIComponent(user.username) + "/"
        );
        if (res.status === 204 || res.status === 404) {
          // Gone already (404: someone else was quicker); the live update redraws the list too.
          const known = state.convs.get(conv.id);
          if (known) known.members = (known.members || []).filter((u) => u.id !== user.id);
          renderInbox();
          if (state.cur && state.cur.id === conv.id) renderHeader();
          renderGroupDialog();
          announce(user.username + " was removed from the group.");
          return;
        }
        actions.replaceChildren(...original);
        showError(ui.membersError, httpErrorText(res, "remove " + user.username));
        remove.focus();
      });
      keep.focus();
    });
    return li;
  }

  async function submitRename(event) {
    event.preventDefault();
    const conv = state.convs.get(groupDialogConv);
    if (!conv || ui.renameSave.disabled) return;
    const title = ui.renameInput.value.trim();
    if (title === (conv.title || "")) {
      ui.renameStatus.classList.remove("is-error");
      ui.renameStatus.textContent = "That’s the name already.";
      return;
    }
    busy(ui.renameSave, true, "Saving…");
    const res = await request("PATCH", "/api/conversations/" + conv.id + "/", { title });
    busy(ui.renameSave, false, "Save");
    if (!res.ok) {
      ui.renameStatus.classList.add("is-error");
      ui.renameStatus.textContent = httpErrorText(res, "rename the group", "You’re no longer in this group.");
      return;
    }
    ui.renameInput.dataset.dirty = "";
    const known = state.convs.get(conv.id);
    if (known && res.data) {
      known.title = res.data.title;
      known.members = res.data.members || known.members;
    }
    renderInbox();
    if (state.cur && state.cur.id === conv.id) renderHeader();
    ui.renameStatus.classList.remove("is-error");
    ui.renameStatus.textContent = title ? "Renamed to “" + title + "”." : "Name removed: the group shows its members’ names.";
  }

  async function submitAdd(event) {
    event.preventDefault();
    const conv = state.convs.get(groupDialogConv);
    if (!conv || ui.addSubmit.disabled) return;
    const names = addPicker.picked();
    if (!names.length) {
      showError(ui.addError, "Choose someone to add: type a username and pick from the list.");
      addPicker.input.focus();
      return;
    }
    busy(ui.addSubmit, true, "Adding…");
    showError(ui.addError, "");
    const res = await request("POST", "/api/conversations/" + conv.id + "/members/", { members: names });
    busy(ui.addSubmit, false, "Add to group");
    if (!res.ok) {
      showError(ui.addError, httpErrorText(res, "add " + names.join(", "), "You’re no longer in this group."));
      return;
    }
    if (res.data) addConversation(res.data);
    addPicker.clear();
    if (state.cur && state.cur.id === conv.id) renderHeader();
    renderGroupDialog();
    announce("Added " + names.join(", ") + " to the group.");
  }

  function askLeave() {
    ui.leave.hidden = true;
    ui.leaveBox.hidden = false;
    showError(ui.leaveError, "");
    ui.leaveCancel.focus();
  }

  async function confirmLeave() {
    const conv = state.convs.get(groupDialogConv);
    if (!conv || ui.leaveConfirm.disabled) return;
    busy(ui.leaveConfirm, true, "Leaving…");
    const res = await request("DELETE", "/api/conversations/" + conv.id + "/members/" + encodeURIComponent(me.username) + "/");
    busy(ui.leaveConfirm, false, "Leave");
    if (res.status !== 204 && res.status !== 404) {
      showError(ui.leaveError, httpErrorText(res, "leave the group"));
      return;
    }
    ui.groupDialog.close();
    if (state.convs.has(conv.id)) dropConversation(conv.id, "You left “" + convName(conv) + "”. You’re no longer in this group.");
    ui.goneBack.focus();
  }

  // ---------------------------------------------------------------------------------------
  // Message search
  // ---------------------------------------------------------------------------------------

  const SEARCH_PAGE = 20;
  const finder = { q: "", hits: [], hasMore: false, seq: 0, loading: false };

  function hitName(hit) {
    const conv = state.convs.get(hit.conversation);
    if (conv) return convName(conv);
    return hit.conversation_title || "A conversation";
  }

  /** The snippet as text, its [start, end) code point ranges wrapped in <mark>. */
  function fillSnippet(node, snippet, ranges) {
    const chars = Array.from(String(snippet || ""));
    const spans = (Array.isArray(ranges) ? ranges : [])
      .filter((r) => Array.isArray(r) && Number.isInteger(r[0]) && Number.isInteger(r[1]) && r[0] < r[1])
      .map((r) => [Math.max(0, r[0]), Math.min(chars.length, r[1])])
      .sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [start, end] of spans) {
      if (start < at || start >= chars.length) continue;
      if (start > at) node.appendChild(document.createTextNode(chars.slice(at, start).join("")));
      node.appendChild(el("mark", { text: chars.slice(start, end).join("") }));
      at = end;
    }
    if (at < chars.length) node.appendChild(document.createTextNode(chars.slice(at).join("")));
  }

  function buildHit(hit) {
    const conv = state.convs.get(hit.conversation);
    const a = el("a", {
      class: "search-hit",
      href: URLS.conversation(hit.conversation) + "?m=" + encodeURIComponent(hit.id),
      "data-testid": "search-hit",
      "data-conversation-id": hit.conversation,
      "data-message-id": hit.id,
    });
    const who = hit.sender.id === me.id ? "You: " : conv && conv.kind === "direct" ? "" : hit.sender.username + ": ";
    const snippet = el("span", { class: "search-hit-snippet", "data-testid": "search-hit-snippet" });
    fillSnippet(snippet, hit.snippet, hit.highlights);
    a.append(
      el("span", { class: "search-hit-top" }, [
        el("span", { class: "search-hit-conv", "data-testid": "search-hit-conversation", text: hitName(hit) }),
        timeEl(hit.created_at, true, null),
      ]),
      el("span", { class: "search-hit-text" }, [who ? el("span", { class: "search-hit-sender", text: who }) : null, snippet])
    );
    a.addEventListener("click", (event) => {
      if (!plainClick(event)) return;
      event.preventDefault();
      openConversation(hit.conversation, { push: true, target: hit.id });
    });
    return el("li", {}, [a]);
  }

  function renderSearchSummary() {
    const n = finder.hits.length;
    const q = "“" + finder.q + "”";
    ui.searchSummary.textContent = finder.loading && !n
      ? "Searching for " + q + "…"
      : n === 0
        ? "No messages match " + q + "."
        : (finder.hasMore ? "The newest " + n : n) + (n === 1 ? " message matches " : " messages match ") + q + ".";
    ui.searchMore.hidden = !finder.hasMore;
    ui.searchMore.disabled = finder.loading;
    ui.searchMore.textContent = finder.loading && n ? "Loading…" : "More results";
  }

  function openSearchPanel() {
    ui.searchPanel.hidden = false;
    ui.inboxWrap.hidden = true;
    app.dataset.searching = "true";
  }

  function closeSearchPanel(focusInput) {
    finder.seq += 1;
    finder.loading = false;
    runMessageSearch.cancel();
    ui.searchPanel.hidden = true;
    ui.inboxWrap.hidden = false;
    ui.searchHits.replaceChildren();
    delete app.dataset.searching;
    if (focusInput) {
      ui.msearch.value = "";
      ui.msearch.focus();
    }
  }

  async function searchPage(before) {
    const mine = ++finder.seq;
    finder.loading = true;
    renderSearchSummary();
    let path = "/api/search/?q=" + encodeURIComponent(finder.q) + "&limit=" + SEARCH_PAGE;
    if (before) path += "&before=" + before;
    const res = await request("GET", path);
    if (mine !== finder.seq) return;
    finder.loading = false;
    if (!res.ok || !res.data || !Array.isArray(res.data.messages)) {
      showError(ui.searchError, httpErrorText(res, "search"));
      ui.searchSummary.textContent = "";
      ui.searchMore.hidden = true;
      return;
    }
    showError(ui.searchError, "");
    const hits = res.data.messages.filter((h) => h && typeof h.id === "number" && h.sender);
    finder.hits.push(...hits);
    finder.hasMore = Boolean(res.data.has_more) && hits.length > 0;
    for (const hit of hits) ui.searchHits.appendChild(buildHit(hit));
    renderSearchSummary();
  }

  function startMessageSearch() {
    runMessageSearch.cancel();
    const q = ui.msearch.value.trim();
    if (!q) {
      closeSearchPanel(false);
      return;
    }
    if (q === finder.q && !ui.searchPanel.hidden && (finder.loading || finder.hits.length)) return;
    finder.q = q;
    finder.hits = [];
    finder.hasMore = false;
    ui.searchHits.replaceChildren();
    showError(ui.searchError, "");
    openSearchPanel();
    searchPage(null);
  }

  const runMessageSearch = debounce(startMessageSearch, 350);

  function moreResults() {
    if (finder.loading || !finder.hasMore || !finder.hits.length) return;
    const oldest = finder.hits[finder.hits.length - 1].id;
    const focusAt = finder.hits.length;
    searchPage(oldest).then(() => {
      const links = ui.searchHits.querySelectorAll("a");
      if (links[focusAt]) links[focusAt].focus();
    });
  }

  function searchHitKeys(event) {
    const links = Array.from(ui.searchHits.querySelectorAll("a"));
    const at = links.indexOf(document.activeElement);
    if (event.key === "ArrowDown") {
      if (!links.length) return;
      event.preventDefault();
      links[Math.min(links.length - 1, at + 1)].focus();
    } else if (event.key === "ArrowUp" && at >= 0) {
      event.preventDefault();
      if (at === 0) ui.msearch.focus();
      else links[at - 1].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      closeSearchPanel(true);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Events
  // ---------------------------------------------------------------------------------------

  function plainClick(event) {
    return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
  }

  function bind() {
    const logoutForm = document.querySelector(".logout-form");
    if (logoutForm) logoutForm.addEventListener("submit", forgetEverything);

    ui.inbox.addEventListener("click", (event) => {
      const a = event.target.closest("a[data-conversation-id]");
      if (!a || !plainClick(event)) return;
      event.preventDefault();
      openConversation(Number(a.dataset.conversationId), { push: true, focus: window.innerWidth > 700 });
    });

    ui.back.addEventListener("click", (event) => {
      if (!plainClick(event)) return;
      event.preventDefault();
      if (history.state && history.state.fromInbox) history.back();
      else showInbox({ push: true });
    });

    window.addEventListener("popstate", () => {
      const match = location.pathname.match(/\/c\/(\d+)\/$/);
      if (match) openConversation(Number(match[1]), { push: false, target: targetFromUrl() });
      else if (location.pathname === URLS.inbox) showInbox({ push: false });
      else location.reload();
    });

    ui.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      sendFromComposer();
    });
    ui.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        sendFromComposer();
      }
    });
    ui.input.addEventListener("input", onComposerInput);

    // Stay pinned to the newest message while the content or the viewport changes size
    // (a "Seen" marker, an edit, the composer growing), unless the reader scrolled up.
    if (typeof ResizeObserver === "function") {
      const pin = new ResizeObserver(() => {
        if (stickToBottom && state.cur) ui.scroller.scrollTop = ui.scroller.scrollHeight;
      });
      pin.observe(ui.messages);
      pin.observe(ui.scroller);
    }
    ui.scroller.addEventListener(
      "scroll",
      () => {
        stickToBottom = isNearBottom();
        if (ui.scroller.scrollTop < 200) loadOlder();
        if (isNearBottom() && !(state.cur && state.cur.detached)) {
          if (state.cur) state.cur.unseenBelow = 0;
          ui.jump.hidden = true;
        }
      },
      { passive: true }
    );
    ui.loadOlder.addEventListener("click", loadOlder);
    ui.jump.addEventListener("click", () => {
      if (state.cur && state.cur.detached) {
        backToLatest();
        return;
      }
      scrollToBottom();
      ui.input.focus({ preventScroll: true });
    });

    if (ui.notifyToggle) ui.notifyToggle.addEventListener("change", onNotifyToggle);
    if (ui.previewToggle) ui.previewToggle.addEventListener("change", onPreviewToggle);
    // Menus (settings, conversation options) close on Escape and on a click elsewhere.
    const closesOnEscapeAndClickAway = (menu) => {
      menu.addEventListener("keydown", (event) => {
        if (event.key === "Escape" && menu.open) {
          menu.open = false;
          menu.querySelector("summary").focus();
        }
      });
      document.addEventListener("click", (event) => {
        if (menu.open && !menu.contains(event.target)) menu.open = false;
      });
    };
    if (ui.settings) {
      ui.settings.addEventListener("toggle", renderNotifySettings);
      closesOnEscapeAndClickAway(ui.settings);
    }
    if (ui.menu) closesOnEscapeAndClickAway(ui.menu);
    ui.menuBlock.addEventListener("click", async () => {
      const conv = state.cur ? state.convs.get(state.cur.id) : null;
      const peer = directPeer(conv);
      ui.menu.open = false;
      if (!peer) return;
      const blocking = !state.blocked.has(peer.username);
      const error = await setBlocked(peer.username, blocking);
      if (error) showNotice(error);
      else if (blocking) ui.blockedUnblock.focus();
      else ui.input.focus();
    });
    ui.menuGroup.addEventListener("click", () => openGroupDialog(false));
    ui.menuLeave.addEventListener("click", () => openGroupDialog(true));
    ui.blockedUnblock.addEventListener("click", async () => {
      const name = ui.blockedUnblock.dataset.username;
      if (!name) return;
      ui.blockedUnblock.disabled = true;
      const error = await setBlocked(name, false);
      ui.blockedUnblock.disabled = false;
      if (error) showNotice(error);
      else ui.input.focus();
    });
    ui.goneBack.addEventListener("click", (event) => {
      if (!plainClick(event)) return;
      event.preventDefault();
      showInbox({ push: true });
    });

    // Groups
    createPicker = makePicker(document.getElementById("group-create-picker"), null);
    addPicker = makePicker(document.getElementById("group-add-picker"), () => {
      const conv = state.convs.get(groupDialogConv);
      return new Set(((conv && conv.members) || []).map((u) => u.username));
    });
    ui.newGroup.addEventListener("click", openGroupCreate);
    ui.groupCreateForm.addEventListener("submit", submitGroupCreate);
    ui.renameForm.addEventListener("submit", submitRename);
    ui.renameInput.addEventListener("input", () => {
      ui.renameInput.dataset.dirty = "true";
      ui.renameStatus.textContent = "";
    });
    ui.addForm.addEventListener("submit", submitAdd);
    ui.leave.addEventListener("click", askLeave);
    ui.leaveCancel.addEventListener("click", () => {
      ui.leaveBox.hidden = true;
      ui.leave.hidden = false;
      ui.leave.focus();
    });
    ui.leaveConfirm.addEventListener("click", confirmLeave);
    for (const dialog of [ui.groupCreate, ui.groupDialog]) {
      for (const button of dialog.querySelectorAll("[data-close]")) {
        button.addEventListener("click", () => dialog.close());
      }
      // A click on the backdrop (the dialog itself, outside its body) closes it.
      dialog.addEventListener("click", (event) => {
        if (event.target === dialog) dialog.close();
      });
    }
    ui.groupDialog.addEventListener("close", () => {
      groupDialogConv = null;
      if (state.cur && !state.cur.gone && ui.menu && !ui.menu.hidden) ui.menu.querySelector("summary").focus();
    });
    ui.groupCreate.addEventListener("close", () => {
      if (!state.cur || app.dataset.view === "inbox") ui.newGroup.focus();
    });

    // Message search
    ui.msearchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      startMessageSearch();
    });
    ui.msearch.addEventListener("input", () => {
      if (!ui.msearch.value.trim()) closeSearchPanel(false);
      else runMessageSearch();
    });
    ui.msearch.addEventListener("keydown", searchHitKeys);
    ui.searchHits.addEventListener("keydown", searchHitKeys);
    ui.searchMore.addEventListener("click", moreResults);
    ui.searchClose.addEventListener("click", () => closeSearchPanel(true));

    ui.search.addEventListener("input", runSearch);
    ui.search.addEventListener("keydown", searchKeys);
    ui.searchResults.addEventListener("keydown", searchKeys);
    document.addEventListener("click", (event) => {
      if (!event.target.closest(".search")) closeSearch();
    });

    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        if (state.cur) closeNotes(state.cur.id);
        maybeSendRead(true);
        if (!ws) reconnectSoon();
      } else {
        saveDraft();
      }
    });
    window.addEventListener("online", reconnectSoon);
    window.addEventListener("offline", () => {
      if (!wsReady) setConnection("offline", offlineMessage(), true);
    });
    window.addEventListener("pagehide", saveDraft);
    window.addEventListener("beforeunload", saveDraft);

    // Keep relative times ("Yesterday") honest.
    setInterval(renderInbox, 60000);
  }

  // ---------------------------------------------------------------------------------------
  // Boot
  // ---------------------------------------------------------------------------------------

  /** `?m=<id>` in a conversation's address: a message to show (a search hit opened in a new tab). */
  function targetFromUrl() {
    const raw = new URLSearchParams(location.search).get("m");
    return raw && /^\d{1,18}$/.test(raw) ? Number(raw) : null;
  }

  function boot() {
    setConversations(readJSON("chat-conversations", []));
    const active = readJSON("chat-active", null);
    if (active && typeof active.id === "number" && !state.convs.has(active.id)) {
      state.convs.set(active.id, active);
      state.order.push(active.id);
      sortInbox();
    }
    // Start the sync cursor at the newest change this page already shows.
    for (const conv of state.convs.values()) if (conv.last_message) seeSeq(conv.last_message.seq);
    for (const m of config.history || []) seeSeq(m.seq);

    bind();
    renderNotifySettings();
    renderInbox();
    const id = config.conversation;
    if (typeof id === "number") {
      history.replaceState({ conversation: id, fromInbox: false }, "");
      setupConversation(id, { history: config.history || [], hasMore: config.hasMore }, targetFromUrl());
      for (const m of config.history || []) state.seenChanges.add(m.id + ":" + m.seq);
      if (window.innerWidth > 700 && !targetFromUrl()) ui.input.focus({ preventScroll: true });
    } else {
      history.replaceState({ conversation: null }, "");
      showInbox({ push: false });
    }
    app.classList.add("is-ready");
    refreshBlocks();
    setConnection("connecting", "Connecting…", false);
    connect();
  }

  boot();
})();
