/*
 * Which conversation the pane shows: opening one (from boot data, the offline copy or the
 * server), writing to someone with no conversation yet and taking the conversation once it
 * exists, going back to the newest messages or to the inbox (what the pane shows on a
 * phone), and a conversation that is no longer mine.
 */

import { adoptConversation, findDirectWith, markRead, openCurrent, openNewDirect } from "../../state/chat.js";
import { convName } from "../../state/conversations.js";
import { draftKey } from "../../state/storage.js";

/** Open and close conversations in the pane, drawing them with the pane's other parts. */
export function createOpening({ app, ui, state, me, urls, list, scrolling, header, composerPlace, loader }) {
  /** Show the pane just opened, empty: its header, its draft and the composer. */
  function showPane(cur) {
    app.reactions.close(false);
    list.clearMessages();
    ui.jump.hidden = true;
    app.notices.hideNotice();
    ui.emptyState.hidden = true;
    ui.conversation.hidden = false;
    if (cur.id === null) delete ui.conversation.dataset.conversationId;
    else ui.conversation.dataset.conversationId = String(cur.id);
    ui.app.dataset.view = "conversation";
    if (ui.menu) ui.menu.open = false;
    header.renderHeader();
    header.renderTyping();
    app.inbox.render();
    app.composer.restoreDraft();
    composerPlace.render();
  }

  /** Open a conversation view: from boot data or by fetching; `target` is a message to show. */
  function setupConversation(id, boot, target) {
    app.composer.saveDraft();
    // Started offline: what this browser kept of it (state/offline.js), until the server answers.
    if (!boot && app.offlineStart) boot = app.offlineStart.histories.get(id) || null;
    const cur = openCurrent(state, id);
    cur.target = typeof target === "number" && target > 0 ? target : null;
    app.notifications.close(id);
    showPane(cur);
    if (boot) {
      cur.loaded = true;
      cur.hasMore = Boolean(boot.hasMore);
      list.upsertMessages(boot.history || [], { live: false });
    }
    list.renderOutboxFor(cur);
    header.renderHistoryTop();
    scrolling.scrollToFirstUnread();
    if (boot && cur.target) loader.revealMessage(cur, cur.target);
    loader.refreshConversation(cur);
    return cur;
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
      if (opts.push && ui.app.dataset.view === "inbox") {
        history.pushState({ conversation: id, fromInbox: true }, "", urls.conversation(id));
      }
      ui.app.dataset.view = "conversation";
      if (target) {
        if (state.cur.loaded) loader.revealMessage(state.cur, target);
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
    if (conv && (conv.unread || conv.mentions) && document.visibilityState === "visible") {
      markRead(conv);
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
    list.renderOutboxFor(cur);
    header.renderHistoryTop();
    scrolling.scrollToBottom();
    if (opts.focus) ui.input.focus({ preventScroll: true });
    else if (opts.push) ui.title.focus({ preventScroll: true });
  }

  /** The person of the open new pane is known now (looked up by name). */
  function personFound(user) {
    const cur = state.cur;
    if (!cur || !cur.to || cur.to.username !== user.username) return;
    cur.to.id = user.id;
    header.renderHeader();
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
      header.renderHistoryTop();
    }
    header.renderHeader();
    composerPlace.render();
    app.inbox.render();
    loader.refreshConversation(cur);
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
    list.clearMessages();
    ui.jump.hidden = true;
    composerPlace.renderSkipLink();
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
    list.showGone(cur, keep);
    ui.jump.hidden = true;
    ui.input.value = "";
    ui.goneText.textContent = text;
    app.notices.hideNotice();
    header.renderHeader();
    header.renderHistoryTop();
    header.renderTyping();
    composerPlace.render();
  }

  return { setupConversation, backToLatest, openConversation, openPerson, personFound, adopt, showInbox, showGone };
}
