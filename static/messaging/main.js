/*
 * The chat page: one WebSocket for all conversations, an inbox beside the open
 * conversation, optimistic sends with a persistent outbox, drafts, typing, read receipts,
 * edit and delete, replies, reactions, mentions, photos and files, reports, blocks, groups
 * and message search. This module only wires the parts together:
 *
 *   net/      the socket (reconnecting, pinging) and the JSON API
 *   state/    the client's state and how frames change it, the outbox, browser storage
 *   text/     times and failures in words
 *   ui/       the views, each drawing one thing
 *
 * The page's HTML is the shell; it hands over its data as JSON (chat-config,
 * chat-conversations, chat-active) and this code draws the inbox rows and the messages:
 * one renderer for each, so that what a page load shows and what a live update shows
 * cannot drift apart.
 */

import * as api from "./net/api.js";
import { createSocket } from "./net/socket.js";
import * as chat from "./state/chat.js";
import { directPeer } from "./state/conversations.js";
import { createOfflineCopy, forgetOffline, loadRecords, offlineBoot } from "./state/offline.js";
import { createOutbox } from "./state/outbox.js";
import {
  browserAreas,
  createStore,
  draftKey,
  forgetOtherPeople,
  outboxKey,
  wipeAreas,
  writtenKey,
} from "./state/storage.js";
import { createWrittenTimes, writtenAtFor } from "./state/written.js";
import { errorText, offlineText, silentText } from "./text/errors.js";
import { debounce } from "./lib/debounce.js";
import { plainClick } from "./ui/dom.js";
import { createBlocks } from "./ui/blocks.js";
import { createAttachments } from "./ui/attachments.js";
import { createComposer } from "./ui/composer.js";
import { createConversationPane } from "./ui/conversation.js";
import { createGroups } from "./ui/groups.js";
import { createInbox } from "./ui/inbox.js";
import { createArrowKeys } from "./ui/keys.js";
import { createMessageActions } from "./ui/message-actions.js";
import { createMentions } from "./ui/mentions.js";
import { createMessageSearch } from "./ui/message-search.js";
import { createMute } from "./ui/mute.js";
import { createNotices } from "./ui/notices.js";
import { createNotifications } from "./ui/notifications.js";
import { createPeopleSearch } from "./ui/people.js";
import { createReactions } from "./ui/reactions.js";
import { createReplies } from "./ui/reply.js";
import { gettext } from "./text/i18n.js";

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

function findElements() {
  const byId = (id) => document.getElementById(id);
  return {
    app: byId("app"),
    skipLink: document.querySelector('[data-testid="skip-link"]'),
    inbox: byId("inbox"),
    inboxEmpty: document.querySelector('[data-testid="inbox-empty"]'),
    search: byId("user-search"),
    searchResults: byId("user-search-results"),
    banner: byId("banner"),
    emptyState: byId("empty-state"),
    conversation: byId("conversation"),
    title: byId("conversation-title"),
    status: byId("conversation-status"),
    headAvatar: byId("conversation-avatar"),
    back: document.querySelector('[data-testid="back-button"]'),
    scroller: byId("scroller"),
    loadOlder: byId("load-older"),
    historyStart: byId("history-start"),
    messages: byId("messages"),
    jump: byId("jump-latest"),
    typing: byId("typing"),
    notice: byId("notice"),
    composer: byId("composer"),
    input: byId("composer-input"),
    counter: byId("composer-counter"),
    send: byId("send-button"),
    live: byId("live-region"),
    statusRegion: byId("status-region"),
    settings: byId("settings"),
    notifyToggle: byId("notify-toggle"),
    previewToggle: byId("preview-toggle"),
    notifyStatus: byId("notify-status"),
    newGroup: byId("new-group-button"),
    msearchForm: byId("message-search-form"),
    msearch: byId("message-search"),
    searchPanel: byId("search-panel"),
    searchSummary: byId("search-summary"),
    searchError: byId("search-error"),
    searchHits: byId("search-hits"),
    searchMore: byId("search-more"),
    searchClose: byId("search-close"),
    inboxWrap: document.querySelector(".inbox-wrap"),
    menu: byId("conv-menu"),
    menuGroup: byId("menu-group"),
    menuBlock: byId("menu-block"),
    menuLeave: byId("menu-leave"),
    menuMute: byId("menu-mute"),
    blockedBar: byId("blocked-bar"),
    blockedText: byId("blocked-text"),
    blockedUnblock: byId("blocked-unblock"),
    goneBar: byId("gone-bar"),
    goneText: byId("gone-text"),
    goneBack: byId("gone-back"),
    groupCreate: byId("group-create"),
    groupCreateForm: byId("group-create-form"),
    groupTitle: byId("group-title-input"),
    groupCreateError: byId("group-create-error"),
    groupCreateSubmit: byId("group-create-submit"),
    groupDialog: byId("group-dialog"),
    renameForm: byId("group-rename-form"),
    renameInput: byId("group-rename-input"),
    renameSave: byId("group-rename-save"),
    renameStatus: byId("group-rename-status"),
    members: byId("group-members"),
    membersError: byId("group-members-error"),
    addForm: byId("group-add-form"),
    addError: byId("group-add-error"),
    addSubmit: byId("group-add-submit"),
    leave: byId("group-leave"),
    leaveBox: byId("group-leave-box"),
    leaveText: byId("group-leave-text"),
    leaveCancel: byId("group-leave-cancel"),
    leaveConfirm: byId("group-leave-confirm"),
    leaveError: byId("group-leave-error"),
  };
}

function pageUrls(root) {
  return {
    login: root.dataset.loginUrl || "/accounts/login/",
    inbox: root.dataset.inboxUrl || "/",
    conversation(id) {
      const pattern = root.dataset.conversationUrl || "/c/0/";
      return pattern.replace(/\/0\/$/, "/" + encodeURIComponent(id) + "/");
    },
    direct(username) {
      const pattern = root.dataset.directUrl || "/dm/__username__/";
      return pattern.replace("__username__", encodeURIComponent(username));
    },
    /** A new conversation with someone, in this page: nothing is made until written in. */
    newDirect(username) {
      return (root.dataset.inboxUrl || "/") + "?to=" + encodeURIComponent(username);
    },
  };
}

/** `?to=<username>` in the inbox's address: a person to write to for the first time. */
function personFromUrl() {
  const name = new URLSearchParams(location.search).get("to");
  return name && name.length <= 150 ? name : null;
}

/** `?m=<id>` in a conversation's address: a message to show (a search hit opened in a new tab). */
function targetFromUrl() {
  const raw = new URLSearchParams(location.search).get("m");
  return raw && /^\d{1,18}$/.test(raw) ? Number(raw) : null;
}

/**
 * Start the page: `offline` is null, or what this browser kept (state/offline.js) when the
 * page is the service worker's shell, served because the network could not be reached.
 */
function start(config, ui, offline) {
  const me = config.user;
  const areas = browserAreas();
  forgetOtherPeople(areas, me.id);
  const store = createStore(areas.length ? areas[0] : null);
  const urls = pageUrls(ui.app);
  api.setLoginUrl(urls.login);

  // Everything the views share; each view adds itself below and reaches the others here.
  const app = {
    me,
    ui,
    urls,
    store,
    maxBody: config.maxBody || 4000,
    page: config.historyPage || 50,
    state: chat.createChatState({ me, isVisible: () => document.visibilityState === "visible" }),
  };
  const { state } = app;
  app.written = createWrittenTimes({ store, key: writtenKey(me.id) });
  app.settle = settle;
  app.offline = createOfflineCopy({ state });
  // Drawn from the kept copy until the server is reached (then as always).
  app.offlineStart = offline;
  app.outbox = createOutbox({ store, key: outboxKey(me.id), onRetryDue: () => app.composer.retryDue() });
  app.socket = createSocket({
    url: () => (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + (config.wsPath || "/ws/chat/"),
    onFrame: handleFrame,
    onClose: onSocketClosed,
    onConnecting() {
      if (ui.app.dataset.connection !== "offline") ui.app.dataset.connection = "connecting";
    },
  });
  app.notices = createNotices(app);
  app.reply = createReplies(app);
  app.reactions = createReactions(app);
  app.mentions = createMentions(app);
  app.attachments = createAttachments(app);
  app.inbox = createInbox(app);
  app.pane = createConversationPane(app);
  app.composer = createComposer(app);
  app.actions = createMessageActions(app);
  app.blocks = createBlocks(app);
  app.people = createPeopleSearch(app);
  app.groups = createGroups(app);
  app.search = createMessageSearch(app);
  app.notifications = createNotifications(app);
  app.mute = createMute(app);
  app.sendRead = sendRead;
  app.dropConversation = dropConversation;

  const scheduleInboxRefresh = debounce(() => refreshInbox(), 400);
  const scheduleRead = debounce(() => sendRead(true), 250);
  let typingSweep = null;

  /** Wipe everything this page keeps in the browser: the session is over. */
  function forgetEverything() {
    store.seal();
    wipeAreas(areas);
    app.attachments.forget();
    app.offline.seal();
    forgetOffline();
  }

  // -- the connection -----------------------------------------------------------------------

  function syncNow() {
    const frame = chat.requestSync(state);
    if (frame && !app.socket.send(frame)) chat.syncNotSent(state);
  }

  function onSocketClosed({ code, hadReady, attempt, silent, busy }) {
    // Presence is unknown while disconnected; `ready` tells it again.
    if (chat.onSocketClosed(state)) {
      app.inbox.render();
      app.pane.renderHeader();
    }
    if (code === 4401) {
      app.notices.setConnection("offline", gettext("Your session has ended. Taking you to the login page…"), true);
      forgetEverything();
      api.goLogin();
      return;
    }
    if (code === 1008) {
      app.notices.setConnection(
        "offline",
        gettext("The server paused this connection because of too many requests. Reconnecting shortly…"),
        true
      );
      return;
    }
    if (busy) {
      // Many clients reconnect at once (a server restarted): this one was given a later turn.
      app.notices.setConnection(
        "offline",
        gettext("The server is busy with many reconnections. Trying again shortly…"),
        false
      );
      return;
    }
    if (app.offlineStart) {
      app.notices.setConnection("offline", offlineStartText(), true);
      return;
    }
    if (silent && navigator.onLine !== false) {
      // A hung server shows nothing else: say so at once, a send may be waiting on it.
      app.notices.setConnection("offline", silentText(), true);
      return;
    }
    app.notices.setConnection("offline", offlineText(navigator.onLine), false);
    if (!hadReady && attempt >= 1) api.checkSignedIn();
  }

  /** Caught up after a (re)connection: fetch what HTTP knows, send what waited. */
  function caughtUp() {
    chat.onCaughtUp(state);
    refreshInbox();
    app.blocks.refresh();
    if (state.cur) app.pane.refreshConversation(state.cur);
    app.composer.flush();
    sendRead(true);
  }

  async function refreshInbox() {
    let data;
    try {
      data = await api.listConversations();
    } catch (e) {
      return;
    }
    if (!data || !Array.isArray(data.conversations)) return;
    const partial = Boolean(data.has_more);
    chat.setConversations(state, data.conversations, { partial });
    // Past the first page already: its cursor still says where the next one begins.
    if (!partial) state.inboxCursor = null;
    else if (!state.inboxPaged) state.inboxCursor = data.next_cursor;
    if (state.cur && state.cur.to) {
      // Written to from elsewhere (by them, or in another tab): the new pane is that one.
      const known = chat.findDirectWith(state, state.cur.to.username);
      if (known) app.pane.adopt(known.id, { fetch: true });
    }
    if (state.cur) {
      const conv = state.convs.get(state.cur.id);
      if (conv && chat.isViewing(state, conv.id) && (conv.unread || conv.mentions)) {
        chat.markRead(conv);
        sendRead(true);
      }
    }
    app.inbox.render();
    app.pane.renderHeader();
    app.pane.updateSeen();
  }

  let inboxLoading = false;
  const inboxScroller = () => ui.inbox.closest(".inbox-wrap") || ui.inbox;

  /** Fetch the inbox's next page when its list is scrolled to the end, or does not fill it. */
  function nearInboxEnd() {
    const box = inboxScroller();
    if (box.scrollHeight - box.scrollTop - box.clientHeight < 300) loadMoreInbox();
  }

  async function loadMoreInbox() {
    if (!state.inboxCursor || inboxLoading) return;
    inboxLoading = true;
    try {
      const data = await api.listConversations(state.inboxCursor);
      if (data && Array.isArray(data.conversations)) {
        chat.addInboxPage(state, data.conversations);
        state.inboxCursor = data.has_more ? data.next_cursor : null;
        state.inboxPaged = true;
        app.inbox.render();
        inboxLoading = false;
        nearInboxEnd();
      }
    } catch (e) {
      // Kept as it was: the next scroll to the end asks again.
    } finally {
      inboxLoading = false;
    }
  }

  // -- frames from the server -----------------------------------------------------------------

  function handleFrame(frame) {
    switch (frame.type) {
      case "ready":
        endOfflineStart();
        const missed = chat.onReady(state, frame);
        app.notices.setConnection("online");
        app.inbox.render();
        app.pane.renderHeader();
        // Nothing changed since what this page saw: no sync (after a storm, most sockets).
        if (missed) syncNow();
        if (state.sync === "idle") caughtUp();
        return;
      case "sync.result": {
        adoptOpened(frame.messages);
        const { applied, next } = chat.onSyncResult(state, frame);
        showApplied(applied, { live: false });
        if (next === "sync") syncNow();
        else if (next === "caught-up") caughtUp();
        return;
      }
      case "message.new":
      case "message.updated": {
        adoptOpened([frame.message]);
        const pushed = chat.onPush(state, frame);
        if (!pushed) return;
        showApplied(pushed.applied, { live: true });
        if (pushed.needSync) syncNow();
        return;
      }
      case "message.ack":
        adoptOpened([frame.message]);
        showApplied(chat.onAck(state, frame), { live: true });
        return;
      case "read":
        return onRead(frame);
      case "typing":
        return onTyping(frame);
      case "presence":
        if (chat.onPresence(state, frame)) {
          app.inbox.render();
          app.pane.renderHeader();
        }
        return;
      case "conversation.updated":
        return onConversationUpdated(frame);
      case "pong":
        if (chat.onPong(state, frame)) syncNow();
        return;
      case "error":
        return onError(frame);
      default:
        return;
    }
  }

  /** A first message to the person of the open new pane is stored: the pane becomes its conversation. */
  function adoptOpened(messages) {
    if (!state.cur || !state.cur.to || !Array.isArray(messages)) return;
    for (const m of messages) {
      const item = m && m.client_id ? app.outbox.get(m.client_id) : null;
      const id = chat.conversationOpenedBy(state, m, item);
      if (id !== null) {
        app.pane.adopt(id, { at: m.created_at });
        return;
      }
    }
  }

  /**
   * One of my messages is stored: out of the outbox. `storedAt`, when the server has just
   * stored it (a live ack or push), tells whether it waited past its minute; if so the
   * time it was written is kept and shown (state/written.js).
   */
  function settle(clientId, storedAt) {
    const item = app.outbox.ack(clientId);
    if (item) app.notices.status(gettext("Message sent."));
    if (!item || !storedAt) return;
    app.written.remember(clientId, writtenAtFor({ writtenLocal: item.created_at, ackedLocal: Date.now(), storedAt }));
  }

  /** Show what applying messages changed. */
  function showApplied(result, { live }) {
    for (const clientId of result.acked) settle(clientId, result.stored[clientId]);
    for (const { conv, message } of result.notify) app.notifications.show(conv, message);
    if (result.typingChanged) app.pane.renderTyping();
    if (result.forCur.length) app.pane.upsertMessages(result.forCur, { live });
    if (result.inboxChanged) app.inbox.render();
    if (result.unknownConv) scheduleInboxRefresh();
    if (live && result.announcements.length) app.notices.incoming(result.announcements);
    if (state.cur && result.forCur.length) sendRead(false);
  }

  function onRead(frame) {
    const changed = chat.onRead(state, frame);
    if (!changed) return;
    if (changed.seen) app.pane.updateSeen();
    if (changed.refresh) scheduleInboxRefresh();
    else if (changed.inbox) app.inbox.render();
  }

  function renderTypingOf(convId) {
    app.inbox.renderRow(convId);
    if (state.cur && state.cur.id === convId) app.pane.renderTyping();
  }

  function onTyping(frame) {
    const convId = chat.onTyping(state, frame);
    if (convId === null) return;
    renderTypingOf(convId);
    if (typingSweep === null) {
      typingSweep = setInterval(() => {
        for (const id of chat.sweepTypers(state)) renderTypingOf(id);
        if (!state.typers.size) {
          clearInterval(typingSweep);
          typingSweep = null;
        }
      }, 1000);
    }
  }

  function onConversationUpdated(frame) {
    const change = chat.onConversationUpdated(state, frame);
    if (!change) return;
    if (change.gone !== undefined) {
      // Removed by someone else: what was already on screen stays, read-only.
      dropConversation(change.gone, change.text, { keepShown: change.removed });
      return;
    }
    if (change.rejoined !== undefined) {
      const focusWasOnNotice = ui.goneBar.contains(document.activeElement);
      refreshInbox();
      app.pane.setupConversation(change.rejoined, null);
      if (focusWasOnNotice) ui.input.focus({ preventScroll: true });
      app.notices.announce(change.text);
      return;
    }
    if (change.refresh) {
      scheduleInboxRefresh(); // added to a group: fetch it whole
      return;
    }
    app.inbox.render();
    if (state.cur && state.cur.id === change.changed) {
      app.pane.renderHeader();
      app.pane.renderTyping();
      app.pane.updateSeen();
    }
    app.groups.render();
  }

  function onError(frame) {
    if (frame.client_id) {
      app.composer.failed(frame);
      return;
    }
    const wait = chat.syncRefused(state, frame);
    if (wait !== null) {
      // The server could not answer the sync now: ask again once it can.
      setTimeout(syncNow, wait);
      return;
    }
    const cur = state.cur;
    if (cur && cur.pendingChange && Date.now() - cur.pendingChange.at < 15000) {
      const change = cur.pendingChange;
      cur.pendingChange = null;
      app.actions.showChangeError(change, frame);
      return;
    }
    if (frame.code === "rate_limited") return; // typing or read throttled: nothing to tell
    if (frame.code === "not_found") return; // e.g. a read for a message that is gone
    app.notices.showNotice(errorText(frame, app.maxBody));
  }

  /** Tell the server what the person has read in the open conversation (soon, or `now`). */
  function sendRead(now) {
    if (!now) {
      scheduleRead();
      return;
    }
    const { unreadCleared, frame } = chat.readToSend(state);
    if (unreadCleared) app.inbox.render();
    if (frame && app.socket.send(frame)) chat.readSent(state, frame);
  }

  /** Forget a conversation the person is no longer in; if it is open, say so in its place. */
  function dropConversation(id, text, { keepShown = false } = {}) {
    const known = chat.dropConversation(state, id);
    app.outbox.dropConversation(id);
    store.remove(draftKey(me.id, id));
    app.inbox.render();
    app.groups.closeFor(id);
    if (state.cur && state.cur.id === id) app.pane.showGone(state.cur, text, known, keepShown);
    app.notices.announce(text);
  }

  // -- the offline start ----------------------------------------------------------------------

  function offlineStartText() {
    return gettext(
      "You’re offline. Showing the conversations and messages kept on this device; what you write is sent once you’re back online."
    );
  }

  /** The server answers: what the kept copy showed is brought up to date as after any outage. */
  function endOfflineStart() {
    if (!app.offlineStart) return;
    app.offlineStart = null;
    delete ui.app.dataset.offlineStart;
  }

  /** Keep what the page shows for an offline start, whenever the inbox or the messages change. */
  function keepForOffline() {
    const changed = new MutationObserver(() => app.offline.save());
    changed.observe(ui.inbox, { childList: true, subtree: true, characterData: true });
    changed.observe(ui.messages, { childList: true, subtree: true, characterData: true });
    app.offline.save();
  }

  // -- events ---------------------------------------------------------------------------------

  function bind() {
    const logoutForm = document.querySelector(".logout-form");
    if (logoutForm) logoutForm.addEventListener("submit", forgetEverything);

    ui.inbox.addEventListener("click", (event) => {
      const a = event.target.closest("a[data-conversation-id]");
      if (!a || !plainClick(event)) return;
      event.preventDefault();
      app.pane.openConversation(Number(a.dataset.conversationId), { push: true, focus: window.innerWidth > 700 });
    });
    inboxScroller().addEventListener("scroll", nearInboxEnd);

    ui.back.addEventListener("click", (event) => {
      if (!plainClick(event)) return;
      event.preventDefault();
      if (history.state && history.state.fromInbox) history.back();
      else app.pane.showInbox({ push: true });
    });

    window.addEventListener("popstate", () => {
      const match = location.pathname.match(/\/c\/(\d+)\/$/);
      if (match) app.pane.openConversation(Number(match[1]), { push: false, target: targetFromUrl() });
      else if (location.pathname === urls.inbox && personFromUrl()) openPersonFromUrl();
      else if (location.pathname === urls.inbox) app.pane.showInbox({ push: false });
      else location.reload();
    });

    app.pane.bind();
    app.mentions.bind(); // takes the composer's keys first (capture) while its list is open
    app.composer.bind();
    app.reply.bind();
    app.reactions.bind();
    app.attachments.bind();
    app.notifications.bind();
    app.mute.bind();
    app.groups.bind();
    app.search.bind();
    app.people.bind();
    createArrowKeys(app).bind();

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
    if (ui.settings) closesOnEscapeAndClickAway(ui.settings);
    if (ui.menu) closesOnEscapeAndClickAway(ui.menu);
    ui.menuBlock.addEventListener("click", async () => {
      const peer = directPeer(me, chat.currentConv(state));
      ui.menu.open = false;
      if (!peer) return;
      const blocking = !state.blocked.has(peer.username);
      const error = await app.blocks.setBlocked(peer.username, blocking);
      if (error) app.notices.showNotice(error);
      else if (blocking) ui.blockedUnblock.focus();
      else ui.input.focus();
    });
    ui.menuGroup.addEventListener("click", () => app.groups.openDetails(false));
    ui.menuLeave.addEventListener("click", () => app.groups.openDetails(true));
    ui.blockedUnblock.addEventListener("click", async () => {
      const name = ui.blockedUnblock.dataset.username;
      if (!name) return;
      ui.blockedUnblock.disabled = true;
      const error = await app.blocks.setBlocked(name, false);
      ui.blockedUnblock.disabled = false;
      if (error) app.notices.showNotice(error);
      else ui.input.focus();
    });
    ui.goneBack.addEventListener("click", (event) => {
      if (!plainClick(event)) return;
      event.preventDefault();
      app.pane.showInbox({ push: true });
    });

    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        if (state.cur) app.notifications.close(state.cur.id);
        sendRead(true);
        // Back in view: a closed socket tries at once, an open one is checked.
        app.socket.reconnectSoon();
      } else {
        app.composer.saveDraft();
      }
    });
    window.addEventListener("online", () => app.socket.reconnectSoon());
    window.addEventListener("offline", () => {
      if (state.link === "offline") app.notices.setConnection("offline", offlineText(navigator.onLine), true);
    });
    window.addEventListener("pagehide", () => app.composer.saveDraft());
    window.addEventListener("beforeunload", () => app.composer.saveDraft());

    // Keep relative times ("Yesterday") honest.
    setInterval(() => app.inbox.render(), 60000);
  }

  /** Open the new pane the address names, and look its person up to know their presence. */
  async function openPersonFromUrl() {
    const username = personFromUrl();
    app.pane.openPerson({ username }, { push: false, focus: window.innerWidth > 700 });
    let data;
    try {
      data = await api.findUsers(username);
    } catch (e) {
      return;
    }
    const user = ((data && data.users) || []).find((u) => u.username === username);
    if (user) app.pane.personFound(user);
  }

  // -- boot -----------------------------------------------------------------------------------

  chat.setConversations(state, offline ? offline.conversations : readJSON("chat-conversations", []));
  state.inboxCursor = offline ? null : config.inboxCursor || null;
  const active = offline ? null : readJSON("chat-active", null);
  if (active && typeof active.id === "number" && !state.convs.has(active.id)) {
    state.convs.set(active.id, active);
    state.order.push(active.id);
    chat.sortInbox(state);
  }
  // Start the sync cursor at the newest change this page already shows.
  for (const conv of state.convs.values()) if (conv.last_message) chat.seeSeq(state, conv.last_message.seq);
  for (const m of config.history || []) chat.seeSeq(state, m.seq);
  const kept = offline && offline.conversation !== null ? offline.histories.get(offline.conversation) : null;
  for (const m of kept ? kept.history : []) chat.seeSeq(state, m.seq);

  bind();
  app.notifications.renderSettings();
  app.inbox.render();
  nearInboxEnd();
  const id = offline ? offline.conversation : config.conversation;
  if (offline && typeof id === "number") {
    history.replaceState({ conversation: id, fromInbox: false }, "");
    app.pane.setupConversation(id, kept, targetFromUrl());
    for (const m of kept ? kept.history : []) state.seenChanges.add(m.id + ":" + m.seq);
  } else if (typeof id === "number") {
    history.replaceState({ conversation: id, fromInbox: false }, "");
    app.pane.setupConversation(id, { history: config.history || [], hasMore: config.hasMore }, targetFromUrl());
    for (const m of config.history || []) state.seenChanges.add(m.id + ":" + m.seq);
    if (window.innerWidth > 700 && !targetFromUrl()) ui.input.focus({ preventScroll: true });
  } else if (personFromUrl()) {
    history.replaceState({ to: personFromUrl(), fromInbox: false }, "");
    openPersonFromUrl();
  } else {
    // The shell opened at its own address shows the inbox: that is the address it gets.
    history.replaceState({ conversation: null }, "", offline ? urls.inbox : undefined);
    app.pane.showInbox({ push: false });
  }
  app.attachments.boot();
  ui.app.classList.add("is-ready");
  app.blocks.refresh();
  if (offline) {
    ui.app.dataset.offlineStart = "true";
    app.notices.setConnection("offline", offlineStartText(), true);
  } else {
    app.notices.setConnection("connecting", gettext("Connecting…"), false);
  }
  keepForOffline();
  app.socket.connect();
}

const config = readJSON("chat-config", null);
const elements = findElements();
if (elements.app && config && config.user) {
  // The shell: the chat as this browser kept it (top-level await: nothing is drawn before).
  const offline = config.shell ? offlineBoot(await loadRecords(), config.user.id, location.pathname) : null;
  start(config, elements, offline);
}
