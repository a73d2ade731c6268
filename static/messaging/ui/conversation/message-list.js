/*
 * The open conversation's messages, the only place they are drawn: new and changed ones put
 * in id order, sends still in the outbox after them, each drawn again as it changes, and the
 * separators and "Seen" marker drawn again around them.
 */

import { newestId, seenMarker } from "../../state/chat.js";
import { clearFound } from "./highlight.js";
import { drawSeen, drawSeparators } from "./markers.js";
import { replaceMessage } from "./redrawing.js";

/**
 * Keep the list of messages: `drawing` builds their elements, `scrolling` follows the newest,
 * `header` redraws the top of the history as it fills.
 */
export function createMessageList({ app, ui, state, me, drawing, scrolling, header }) {
  const els = new Map(); // message id -> li
  const pendingEls = new Map(); // client_id -> li of a send in the outbox

  function element(id) {
    return els.get(id) || null;
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
    const wasAtBottom = scrolling.isNearBottom();
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
      app.reactions.settle(m);
      if (m.sender.id === me.id && m.client_id) {
        const pending = pendingEls.get(m.client_id);
        if (pending) {
          pending.remove();
          pendingEls.delete(m.client_id);
        }
      }
      const node = drawing.messageEl(m);
      const old = els.get(m.id);
      if (old) {
        // Only a change of the text ends an edit or a pending change; a reaction does not.
        const textChanged = !existing || existing.body !== m.body || existing.deleted !== m.deleted;
        if (cur.editing === m.id && textChanged) cur.editing = null;
        const change = cur.pendingChange;
        // The keyboard goes back to the button of the change the person made, if it is still there.
        const prefer = change && change.id === m.id && change.kind === "edit" ? "message-edit" : null;
        if (change && change.id === m.id && (textChanged || change.kind === "reaction")) cur.pendingChange = null;
        replace(old, node, m, prefer);
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
    if (newerHidden) scrolling.showJump();
    if (!changed) return;
    app.reply.changed(list.filter((m) => cur.msgs.get(m.id) === m));
    decorate();
    updateSeen();
    header.renderHistoryTop();
    if (addedAtEnd) {
      if (wasAtBottom || ownAdded) scrolling.scrollToBottom();
      else if (opts && opts.live) scrolling.showJump();
    }
  }

  function replace(old, node, m, prefer = null) {
    const editing = Boolean(state.cur && state.cur.editing === m.id);
    replaceMessage(old, node, { deleted: m.deleted, editing, prefer });
  }

  /** Draw a message again as it is now (an edit was cancelled, a delete failed). */
  function redraw(id) {
    const cur = state.cur;
    const m = cur && cur.msgs.get(id);
    const old = els.get(id);
    if (!m || !old) return null;
    const node = drawing.messageEl(m);
    replace(old, node, m);
    els.set(id, node);
    decorate();
    updateSeen();
    return node;
  }

  /** Day separators, the "New messages" divider, and grouping of one sender's run. */
  function decorate() {
    const dividerAfter = state.cur ? state.cur.dividerAfter : null;
    drawSeparators(ui.messages, { dividerAfter, myId: me.id });
  }

  function updateSeen() {
    drawSeen(ui.messages, seenMarker(state), element);
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
    const node = drawing.pendingEl(item);
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
    const node = drawing.pendingEl(item);
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

  /** Show the sends of the outbox that belong to the pane just opened. */
  function renderOutboxFor(cur) {
    for (const item of app.outbox.all()) {
      if (shownHere(cur, item)) renderPending(item);
    }
  }

  function clearMessages() {
    drawing.forgetUnfolded();
    els.clear();
    pendingEls.clear();
    ui.messages.replaceChildren();
  }

  /**
   * The open conversation is no longer mine: its sends waiting here go; what was shown
   * stays, drawn read-only without the forms open on it (`keep`), or goes too.
   */
  function showGone(cur, keep) {
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
  }

  return {
    element,
    hasPending: (clientId) => pendingEls.has(clientId),
    upsertMessages,
    redraw,
    updateSeen,
    renderPending,
    renamePending,
    removePending,
    renderOutboxFor,
    clearMessages,
    clearFound: () => clearFound(ui.messages),
    showGone,
  };
}
