/*
 * The conversation pane: its header, the messages (the only place they are drawn), day
 * separators, the "New messages" divider, "Seen" markers, sends still in the outbox, older
 * pages, and the stretch of history around a search hit. Also opening a conversation and
 * going back to the inbox, which is what the pane shows on a phone.
 */

import {
  adoptConversation,
  applyConversationPage,
  currentConv,
  findDirectWith,
  newestId,
  isViewing,
  oldestId,
  openCurrent,
  openNewDirect,
  seenMarker,
  typingText,
} from "../state/chat.js";
import { convName, directPeer } from "../state/conversations.js";
import { errorText, isGone, NO_LONGER_HERE } from "../text/errors.js";
import { clockTime, dayLabel, fullTime, ms } from "../text/time.js";
import * as api from "../net/api.js";
import { isLongMessage } from "../text/words.js";
import { draftKey } from "../state/storage.js";
import { messageTimes } from "../state/written.js";
import { el, fillAvatar, linkify, timeEl } from "./dom.js";

// A search hit further back than this many messages opens on its own stretch of history.
const BACKFILL_PAGES = 5;
const BACKFILL_LIMIT = 200;

export function createConversationPane(app) {
  const { ui, state, me, urls } = app;
  const els = new Map(); // message id -> li
  const pendingEls = new Map(); // client_id -> li of a send in the outbox
  const unfolded = new Set(); // ids (or client_ids) of long messages the reader opened
  let stickToBottom = true;

  // -- header and the top of the history -------------------------------------------------

  function renderHeader() {
    const cur = state.cur;
    if (!cur || !ui.title) return;
    const conv = currentConv(state);
    if (ui.menu) ui.menu.hidden = !conv || cur.gone;
    if (!conv) {
      ui.title.textContent = cur.goneName || "Conversation";
      ui.status.textContent = "";
      ui.status.classList.remove("is-online");
      if (ui.menu) ui.menu.open = false;
      return;
    }
    ui.title.textContent = convName(me, conv);
    fillAvatar(ui.headAvatar, state, conv);
    const peer = directPeer(me, conv);
    const isGroup = conv.kind === "group";
    ui.menuGroup.hidden = !isGroup;
    ui.menuLeave.hidden = !isGroup;
    ui.menuBlock.hidden = !peer;
    if (peer) ui.menuBlock.textContent = (state.blocked.has(peer.username) ? "Unblock " : "Block ") + peer.username;
    if (peer && state.blocked.has(peer.username)) {
      ui.status.textContent = "Blocked";
      ui.status.dataset.online = "false";
      ui.status.classList.remove("is-online");
    } else if (isGone(peer)) {
      ui.status.textContent = NO_LONGER_HERE;
      ui.status.dataset.online = "false";
      ui.status.classList.remove("is-online");
    } else if (peer) {
      const online = state.online.has(peer.id);
      ui.status.textContent = state.link === "offline" ? "" : online ? "Online" : "Offline";
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
      const peer = directPeer(me, currentConv(state));
      ui.historyStart.textContent = cur.msgs.size
        ? "This is the beginning of the conversation."
        : peer
          ? "No messages yet. Say hello to " + peer.username + "!"
          : "No messages yet. Say hello!";
    }
  }

  function renderTyping() {
    if (!ui.typing) return;
    const text = state.cur ? typingText(state, state.cur.id) : "";
    ui.typing.textContent = text;
    ui.typing.classList.toggle("is-visible", Boolean(text));
  }

  // -- scrolling ----------------------------------------------------------------------------

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

  /** Scroll as little as shows a message whole, or from its top when it is too tall. */
  function bringIntoView(li) {
    const view = ui.scroller.getBoundingClientRect();
    const box = li.getBoundingClientRect();
    const margin = 8;
    if (box.top < view.top + margin || box.height > view.height - 2 * margin) {
      ui.scroller.scrollTop += box.top - view.top - margin;
    } else if (box.bottom > view.bottom - margin) {
      ui.scroller.scrollTop += box.bottom - view.bottom + margin;
    }
    stickToBottom = isNearBottom();
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

  function showJump() {
    const cur = state.cur;
    if (cur && cur.detached) {
      ui.jump.textContent =
        cur.unseenBelow > 0 ? "Jump to the latest (" + cur.unseenBelow + " new) ↓" : "Jump to the latest messages ↓";
    } else {
      ui.jump.textContent = cur && cur.unseenBelow > 1 ? cur.unseenBelow + " new messages ↓" : "New message ↓";
    }
    ui.jump.hidden = false;
  }

  // -- messages -----------------------------------------------------------------------------

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
        el("time", { class: "system-time", datetime: m.created_at, title: fullTime(date), text: clockTime(date) }),
      ])
    );
    return li;
  }

  /**
   * A long body shows folded, with a button to show it all (and fold it again); answers
   * the button, or null for a body short enough to show whole.
   */
  function foldIfLong(body, key, text) {
    if (!isLongMessage(text)) return null;
    const open = unfolded.has(key);
    body.classList.toggle("is-folded", !open);
    body.id = "msg-body-" + key;
    const toggle = el("button", {
      type: "button",
      class: "link-button msg-more",
      "data-testid": "message-more",
      "aria-controls": body.id,
      "aria-expanded": open ? "true" : "false",
      text: open ? "Show less" : "Show more",
    });
    toggle.addEventListener("click", (event) => {
      event.stopPropagation();
      const opening = body.classList.contains("is-folded");
      body.classList.toggle("is-folded", !opening);
      if (opening) unfolded.add(key);
      else unfolded.delete(key);
      toggle.setAttribute("aria-expanded", opening ? "true" : "false");
      toggle.textContent = opening ? "Show less" : "Show more";
    });
    return toggle;
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
      report.addEventListener("click", () => app.actions.startReport(m.id));
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
    edit.addEventListener("click", () => app.actions.startEdit(m.id));
    del.addEventListener("click", () => app.actions.askDelete(m.id));
    return el("div", { class: "msg-actions" }, [edit, del]);
  }

  function buildMessageEl(m) {
    if (m.kind === "system") return buildSystemEl(m);
    const mine = m.sender.id === me.id;
    const times = messageTimes(m.created_at, mine ? app.written.get(m.client_id) : null);
    const li = el("li", {
      class: "msg " + (mine ? "mine" : "theirs") + (m.deleted ? " is-deleted" : ""),
      "data-testid": "message",
      "data-id": m.id,
      "data-client-id": m.client_id || "",
      "data-state": "sent",
      "data-sender": m.sender.username,
      "data-sender-id": m.sender.id,
      "data-ts": ms(times.shown),
      "data-deleted": m.deleted ? "true" : "false",
    });
    li.appendChild(el("span", { class: "visually-hidden", text: (mine ? "You" : m.sender.username) + ": " }));
    if (!mine && isGroupCur()) {
      li.appendChild(el("span", { class: "msg-sender", "aria-hidden": "true", text: m.sender.username }));
    }
    const body = el("p", { class: "msg-body", "data-testid": "message-body" });
    if (m.deleted) {
      body.classList.add("deleted-text");
      // A moderator's removal is not the sender's delete: the author above all must know.
      body.textContent =
        m.removed_by === "moderator" ? "This message was removed by a moderator" : "This message was deleted";
      if (m.removed_by === "moderator") li.dataset.removedBy = "moderator";
    } else {
      linkify(body, m.body);
    }
    const more = m.deleted ? null : foldIfLong(body, String(m.id), m.body);
    const foot = el("span", { class: "msg-foot" }, [timeEl(times.shown, false, "message-time")]);
    if (times.sent) {
      // It waited to go out: the time it was written stays, and when it went is added.
      const sent = new Date(ms(times.sent));
      foot.appendChild(
        el("span", { class: "msg-sent", "data-testid": "message-sent-time", title: "Sent " + fullTime(sent) }, [
          "sent ",
          el("time", { datetime: times.sent, text: clockTime(sent) }),
        ])
      );
    }
    if (m.edited_at && !m.deleted) {
      foot.appendChild(el("span", { class: "msg-edited", "data-testid": "message-edited", text: "(edited)" }));
    }
    const bubble = el("div", { class: "bubble" }, [body, more, foot]);
    const readOnly = m.deleted || Boolean(state.cur && state.cur.gone);
    li.appendChild(el("div", { class: "msg-row" }, [bubble, readOnly ? null : buildActions(m, mine)]));
    if (!readOnly) {
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
    const more = foldIfLong(body, "pending-" + item.client_id, item.body);
    const status = el("span", {
      class: "msg-status",
      "data-testid": "message-status",
      text: item.state === "failed" ? "Not sent" : "Sending…",
    });
    const foot = el("span", { class: "msg-foot" }, [timeEl(item.created_at, false, "message-time"), status]);
    li.appendChild(el("div", { class: "msg-row" }, [el("div", { class: "bubble" }, [body, more, foot])]));
    if (item.state === "failed") {
      const retry = el("button", { type: "button", class: "link-button", "data-testid": "message-retry", text: "Retry" });
      const discard = el("button", {
        type: "button",
        class: "link-button",
        "data-testid": "message-discard",
        text: "Discard",
      });
      retry.addEventListener("click", () => app.composer.retrySend(item.client_id, true));
      discard.addEventListener("click", () => app.composer.discardSend(item.client_id));
      li.appendChild(
        el("div", { class: "msg-error", role: "alert", "data-testid": "message-error" }, [
          el("span", { class: "msg-error-text", text: errorText(item.error, app.maxBody, directPeer(me, state.convs.get(item.conversation))) }),
          el("span", { class: "msg-error-actions" }, [retry, discard]),
        ])
      );
    }
    return li;
  }

  /** Take the highlight off a search hit (the search is closed, or another hit shown). */
  function clearFound() {
    for (const old of Array.from(ui.messages.querySelectorAll(".is-found"))) {
      old.classList.remove("is-found");
      delete old.dataset.found;
    }
  }

  function markFound(li) {
    li.classList.add("is-found");
    li.dataset.found = "true";
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
    ui.messages.insertBefore(node, ui.messages.querySelector(".msg"));
  }

  /** Put new or changed messages into the open conversation, in id order. */
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
        const pending = pendingEls.get(m.client_id);
        if (pending) {
          pending.remove();
          pendingEls.delete(m.client_id);
        }
      }
      const node = buildMessageEl(m);
      const old = els.get(m.id);
      if (old) {
        if (cur.editing === m.id) cur.editing = null;
        if (cur.pendingChange && cur.pendingChange.id === m.id) cur.pendingChange = null;
        // A report being written (or its "thanks") stays with the message, unless it is gone.
        if (!m.deleted) for (const extra of old.querySelectorAll(":scope > .msg-extra")) node.appendChild(extra);
        if (old.classList.contains("is-found")) markFound(node);
        const hadFocus = old.contains(document.activeElement) && !node.contains(document.activeElement);
        old.replaceWith(node);
        if (hadFocus) focusWithin(node);
      } else {
        insertInOrder(node, m.id);
        if (m.id === newestId(cur)) {
          addedAtEnd = true;
          if (m.sender.id === me.id) ownAdded = true;
          else if (opts && opts.live && !wasAtBottom) cur.unseenBelow += 1;
        }
      }
      els.set(m.id, node);
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

  /**
   * Keep the keyboard on a message that was drawn again while it had the focus (an edit
   * saved, a delete confirmed): on its first action, or on the message itself.
   */
  function focusWithin(node) {
    const action = node.querySelector(".msg-actions button");
    if (action) action.focus({ preventScroll: true });
    // On a touch screen the actions are hidden until tapped, and take no focus.
    if (action && document.activeElement === action) return;
    node.tabIndex = -1;
    node.focus({ preventScroll: true });
  }

  /** Draw a message again as it is now (an edit was cancelled, a delete failed). */
  function redraw(id) {
    const cur = state.cur;
    const m = cur && cur.msgs.get(id);
    const old = els.get(id);
    if (!m || !old) return null;
    const node = buildMessageEl(m);
    old.replaceWith(node);
    els.set(id, node);
    decorate();
    updateSeen();
    return node;
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
          el("li", { class: "day-sep", "data-testid": "day-separator" }, [
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
          el(
            "li",
            {
              class: "unread-sep",
              "aria-label": "New messages",
              "data-testid": "new-messages-divider",
            },
            [el("span", { text: "New messages" })]
          ),
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

  function updateSeen() {
    for (const node of Array.from(ui.messages.querySelectorAll(".msg-seen"))) node.remove();
    const marker = seenMarker(state);
    if (!marker) return;
    const li = els.get(marker.id);
    if (li) li.appendChild(el("div", { class: "msg-seen", "data-testid": "seen-marker", text: marker.text }));
  }

  /** Whether an outbox item shows in the open pane (a first message: in its person's new one). */
  function shownHere(cur, item) {
    if (cur.to) return item.conversation === null && item.to === cur.to.username;
    return cur.id === item.conversation;
  }

  /** Show (or update) a send that waits in the outbox. */
  function renderPending(item) {
    const cur = state.cur;
    if (!cur || !shownHere(cur, item)) return;
    if (cur.msgs.size && [...cur.msgs.values()].some((m) => m.client_id === item.client_id && m.sender.id === me.id)) {
      return;
    }
    const node = buildPendingEl(item);
    const old = pendingEls.get(item.client_id);
    if (old) old.replaceWith(node);
    else ui.messages.appendChild(node);
    pendingEls.set(item.client_id, node);
    decorate();
  }

  /** A send took a new client_id (a retry after a conflict): its element follows. */
  function renamePending(oldId, item) {
    const old = pendingEls.get(oldId);
    if (!old) return;
    pendingEls.delete(oldId);
    const node = buildPendingEl(item);
    old.replaceWith(node);
    pendingEls.set(item.client_id, node);
  }

  function removePending(clientId) {
    const node = pendingEls.get(clientId);
    if (!node) return;
    node.remove();
    pendingEls.delete(clientId);
    decorate();
  }

  function renderOutboxFor(cur) {
    for (const item of app.outbox.all()) {
      if (shownHere(cur, item)) renderPending(item);
    }
  }

  function clearMessages() {
    unfolded.clear();
    els.clear();
    pendingEls.clear();
    ui.messages.replaceChildren();
  }

  // -- the composer's place -----------------------------------------------------------------

  /** The composer, or in its place why one cannot write here. */
  function renderComposerState() {
    const cur = state.cur;
    const conv = currentConv(state);
    const gone = Boolean(cur && cur.gone);
    const peer = directPeer(me, conv);
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
    renderSkipLink();
  }

  /** Where "skip" leads: the message box when one is shown, else the conversations. */
  function skipTarget() {
    const writing = ui.app.dataset.view === "conversation" && !ui.conversation.hidden && !ui.composer.hidden;
    return writing ? "composer" : "inbox";
  }

  function renderSkipLink() {
    if (!ui.skipLink) return;
    const composer = skipTarget() === "composer";
    ui.skipLink.textContent = composer ? "Skip to the message box" : "Skip to your conversations";
    ui.skipLink.setAttribute("href", composer ? "#composer-input" : "#inbox");
  }

  /** Follow the skip link: move the focus there, without changing the page's address. */
  function skip() {
    if (skipTarget() === "composer") {
      ui.input.focus();
      return;
    }
    const first = ui.inbox.querySelector("a[data-conversation-id]");
    if (first) first.focus();
    else ui.search.focus();
  }

  /**
   * The open conversation is no longer mine: say so in its place. What was already shown
   * stays, read-only, when someone else removed me (`keep`); leaving clears it, as the
   * person was told it would.
   */
  function showGone(cur, text, known, keep) {
    cur.gone = true;
    cur.editing = null;
    cur.pendingChange = null;
    cur.goneName = known ? convName(me, known) : cur.goneName || ui.title.textContent;
    for (const node of pendingEls.values()) node.remove();
    pendingEls.clear();
    if (keep) {
      for (const id of Array.from(els.keys())) redraw(id);
      for (const extra of Array.from(ui.messages.querySelectorAll(".msg-extra"))) extra.remove();
    } else {
      cur.detached = false;
      cur.msgs.clear();
      clearMessages();
    }
    ui.jump.hidden = true;
    ui.input.value = "";
    ui.goneText.textContent = text;
    app.notices.hideNotice();
    renderHeader();
    renderHistoryTop();
    renderTyping();
    renderComposerState();
  }

  // -- loading ------------------------------------------------------------------------------

  /** Show the pane just opened, empty: its header, its draft and the composer. */
  function showPane(cur) {
    clearMessages();
    ui.jump.hidden = true;
    app.notices.hideNotice();
    ui.emptyState.hidden = true;
    ui.conversation.hidden = false;
    if (cur.id === null) delete ui.conversation.dataset.conversationId;
    else ui.conversation.dataset.conversationId = String(cur.id);
    ui.app.dataset.view = "conversation";
    if (ui.menu) ui.menu.open = false;
    renderHeader();
    renderTyping();
    app.inbox.render();
    app.composer.restoreDraft();
    renderComposerState();
  }

  /** Open a conversation view: from boot data or by fetching; `target` is a message to show. */
  function setupConversation(id, boot, target) {
    app.composer.saveDraft();
    const cur = openCurrent(state, id);
    cur.target = typeof target === "number" && target > 0 ? target : null;
    app.notifications.close(id);
    showPane(cur);
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
    if (cur.id === null) return; // a new one: nothing on the server yet
    let detail;
    let page;
    try {
      [detail, page] = await Promise.all([
        api.getConversation(cur.id),
        api.getMessages(cur.id, { limit: app.page }),
      ]);
    } catch (e) {
      if (state.cur !== cur || cur.gone) return;
      if (e.status === 404) {
        app.dropConversation(cur.id, "This conversation isn’t available. You’re not a member of it (any more).");
      } else if (!cur.loaded) {
        app.notices.showNotice("Couldn’t load messages. They’ll appear when the connection is back.");
      }
      return;
    }
    if (state.cur !== cur || cur.gone) return;
    const { firstLoad, fresh } = applyConversationPage(state, cur, detail, page);
    // Messages of my own that reached the server (the outbox may still hold them).
    for (const m of page.messages || []) {
      if (m.sender && m.sender.id === me.id && m.client_id) app.settle(m.client_id, null);
    }
    upsertMessages(fresh, { live: false });
    if (firstLoad) {
      renderOutboxFor(cur);
      if (cur.target) revealMessage(cur, cur.target);
      else scrollToFirstUnread();
    }
    renderComposerState();
    app.groups.render();
    if (isViewing(state, cur.id)) {
      const conv = state.convs.get(cur.id);
      if (conv) conv.unread = 0;
    }
    renderHeader();
    renderHistoryTop();
    app.inbox.render();
    updateSeen();
    app.sendRead(true);
  }

  function loadOlder() {
    const cur = state.cur;
    if (!cur || !cur.loaded || !cur.hasMore || cur.loadingOlder || cur.gone) return null;
    return loadOlderPage(cur, app.page);
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
        page = await api.getMessages(cur.id, { before: oldest, limit });
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
    clearFound();
    const li = els.get(id);
    const m = cur.msgs.get(id);
    if (!li || !m || m.deleted) {
      app.notices.showNotice("That message isn’t in this conversation any more.");
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
      page = await api.getMessages(cur.id, { before: id + 1, limit: app.page });
    } catch (e) {
      return;
    }
    if (state.cur !== cur) return;
    cur.detached = true;
    cur.detachedTop = id;
    cur.msgs.clear();
    clearMessages();
    cur.unseenBelow = 0;
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

  // -- navigation ---------------------------------------------------------------------------

  function openConversation(id, opts) {
    opts = opts || {};
    const target = opts.target || null;
    if (state.cur && state.cur.id === id && !state.cur.gone) {
      if (opts.push && ui.app.dataset.view === "inbox") {
        history.pushState({ conversation: id, fromInbox: true }, "", urls.conversation(id));
      }
      ui.app.dataset.view = "conversation";
      if (target) {
        if (state.cur.loaded) revealMessage(state.cur, target);
        else state.cur.target = target;
      } else if (opts.focus) ui.input.focus();
      return;
    }
    if (opts.push) {
      history.pushState({ conversation: id, fromInbox: ui.app.dataset.view === "inbox" }, "", urls.conversation(id));
    }
    setupConversation(id, null, target);
    if (target) return; // the found message takes the focus once it is shown
    const conv = state.convs.get(id);
    if (conv && conv.unread && document.visibilityState === "visible") {
      conv.unread = 0;
      app.inbox.render();
    }
    if (opts.focus) ui.input.focus({ preventScroll: true });
    // On a phone, no keyboard pops up: the conversation's name takes the focus instead of
    // the inbox row that has just been hidden, so screen readers say where they are.
    else if (opts.push) ui.title.focus({ preventScroll: true });
  }

  /**
   * Write to someone (`user`: {username, id?}): their direct conversation if there is one,
   * else an empty pane addressed to them. Nothing is made or told until the first message.
   */
  function openPerson(user, opts) {
    opts = opts || {};
    const known = findDirectWith(state, user.username);
    if (known) {
      if (!opts.push) history.replaceState({ conversation: known.id, fromInbox: false }, "", urls.conversation(known.id));
      openConversation(known.id, opts);
      return;
    }
    if (opts.push) {
      history.pushState(
        { to: user.username, fromInbox: ui.app.dataset.view === "inbox" },
        "",
        urls.newDirect(user.username)
      );
    }
    app.composer.saveDraft();
    const cur = openNewDirect(state, user);
    showPane(cur);
    renderOutboxFor(cur);
    renderHistoryTop();
    scrollToBottom();
    if (opts.focus) ui.input.focus({ preventScroll: true });
    else if (opts.push) ui.title.focus({ preventScroll: true });
  }

  /** The person of the open new pane is known now (looked up by name). */
  function personFound(user) {
    const cur = state.cur;
    if (!cur || !cur.to || cur.to.username !== user.username) return;
    cur.to.id = user.id;
    renderHeader();
  }

  /**
   * The open new pane's conversation exists now: the first message opened it (`fetch`
   * false: the answer carries that message), or it was found (`fetch`: load it whole).
   * The pane is that conversation from here on, at its own address.
   */
  function adopt(id, { at = new Date().toISOString(), fetch = false } = {}) {
    const cur = state.cur;
    if (!cur || !cur.to) return;
    const username = cur.to.username;
    adoptConversation(state, id, at);
    app.outbox.assign(username, id);
    app.store.remove(draftKey(me.id, "to:" + username));
    const fromInbox = Boolean(history.state && history.state.fromInbox);
    history.replaceState({ conversation: id, fromInbox }, "", urls.conversation(id));
    ui.conversation.dataset.conversationId = String(id);
    if (fetch) {
      cur.loaded = false; // what was said there before is fetched as a first page
      renderHistoryTop();
    }
    renderHeader();
    renderComposerState();
    app.inbox.render();
    refreshConversation(cur);
  }

  function showInbox(opts) {
    opts = opts || {};
    app.composer.saveDraft();
    const leaving = state.cur ? state.cur.id : null;
    const focusInSidebar = document.activeElement && ui.inbox.closest("aside").contains(document.activeElement);
    if (opts.push) history.pushState({ conversation: null }, "", urls.inbox);
    state.cur = null;
    ui.app.dataset.view = "inbox";
    if (ui.menu) ui.menu.open = false;
    ui.conversation.hidden = true;
    delete ui.conversation.dataset.conversationId;
    ui.emptyState.hidden = false;
    clearMessages();
    ui.jump.hidden = true;
    renderSkipLink();
    app.inbox.render();
    // Back in the inbox: focus the conversation just left, so the keyboard carries on there.
    if (leaving !== null && !focusInSidebar && !ui.searchPanel.hidden) {
      // Back to the search hits that were showing: the one just opened keeps the focus.
      const hit = ui.searchHits.querySelector('[data-conversation-id="' + leaving + '"]');
      if (hit) hit.focus();
      return;
    }
    const row = leaving !== null ? app.inbox.link(leaving) : null;
    if (row && !focusInSidebar) row.focus();
  }

  /** Keep the newest message in view as the page changes size, and load older ones on top. */
  function bind() {
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
    if (ui.skipLink) {
      ui.skipLink.addEventListener("click", (event) => {
        event.preventDefault();
        skip();
      });
    }
    ui.jump.addEventListener("click", () => {
      if (state.cur && state.cur.detached) {
        backToLatest();
        return;
      }
      scrollToBottom();
      ui.input.focus({ preventScroll: true });
    });
  }

  return {
    bind,
    element: (id) => els.get(id) || null,
    clearFound,
    bringIntoView,
    hasPending: (clientId) => pendingEls.has(clientId),
    renderHeader,
    renderHistoryTop,
    renderTyping,
    renderComposerState,
    renderPending,
    renamePending,
    removePending,
    upsertMessages,
    redraw,
    updateSeen,
    scrollToBottom,
    showGone,
    setupConversation,
    refreshConversation,
    revealMessage,
    openConversation,
    openPerson,
    personFound,
    adopt,
    showInbox,
  };
}
