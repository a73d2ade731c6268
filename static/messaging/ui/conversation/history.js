/*
 * The open conversation's history from the server: its newest page with its details (read
 * pointers, members), older pages as the reader scrolls up, and a message further back
 * brought into view, paging back to it or, far back, opening on its own stretch of history.
 */

import { applyConversationPage, isViewing, markRead, oldestId } from "../../state/chat.js";
import * as api from "../../net/api.js";
import { gettext } from "../../text/i18n.js";
import { clearFound, flashMessage, markFound } from "./highlight.js";

// A search hit further back than this many messages opens on its own stretch of history.
const BACKFILL_PAGES = 5;
const BACKFILL_LIMIT = 200;

/**
 * Load history into the pane: `list` draws it, `scrolling` keeps the reader's place,
 * `header` and `composerPlace` follow what the server says of the conversation.
 */
export function createHistoryLoader({ app, ui, state, me, list, scrolling, header, composerPlace }) {
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
        app.dropConversation(cur.id, gettext("This conversation isn’t available. You’re not a member of it (any more)."));
      } else if (!cur.loaded) {
        app.notices.showNotice(gettext("Couldn’t load messages. They’ll appear when the connection is back."));
      }
      return;
    }
    if (state.cur !== cur || cur.gone) return;
    const { firstLoad, fresh } = applyConversationPage(state, cur, detail, page);
    // Messages of my own that reached the server (the outbox may still hold them).
    for (const m of page.messages || []) {
      if (m.sender && m.sender.id === me.id && m.client_id) app.settle(m.client_id, null);
    }
    list.upsertMessages(fresh, { live: false });
    if (firstLoad) {
      list.renderOutboxFor(cur);
      if (cur.target) revealMessage(cur, cur.target);
      else scrolling.scrollToFirstUnread();
    }
    composerPlace.render();
    app.groups.render();
    if (isViewing(state, cur.id)) {
      const conv = state.convs.get(cur.id);
      if (conv) markRead(conv);
    }
    header.renderHeader();
    header.renderHistoryTop();
    app.inbox.render();
    list.updateSeen();
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
    header.renderHistoryTop();
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
      list.upsertMessages(page.messages || [], { live: false });
      // Keep what the reader was looking at in place.
      ui.scroller.scrollTop = top + (ui.scroller.scrollHeight - before);
      return true;
    })();
    cur.olderPromise = work;
    const ok = await work;
    if (cur.olderPromise === work) cur.olderPromise = null;
    cur.loadingOlder = false;
    if (state.cur === cur) header.renderHistoryTop();
    return ok;
  }

  /**
   * Bring a message into view with the messages around it, and highlight it: as a search
   * hit (until the search is closed) or, with `flash`, briefly (a quote was followed).
   */
  async function revealMessage(cur, id, { flash = false } = {}) {
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
    const li = list.element(id);
    const m = cur.msgs.get(id);
    if (!li || !m || (m.deleted && !flash)) {
      app.notices.showNotice(gettext("That message isn’t in this conversation any more."));
      return;
    }
    if (flash) flashMessage(li);
    else {
      clearFound(ui.messages);
      markFound(li);
    }
    li.tabIndex = -1;
    // At once, not smoothly: a page of history just put above moves the view meanwhile.
    li.scrollIntoView({ block: "center" });
    scrolling.rememberPosition();
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
    list.clearMessages();
    cur.unseenBelow = 0;
    cur.hasMore = Boolean(page.has_more);
    list.upsertMessages(page.messages || [], { live: false });
    header.renderHistoryTop();
    scrolling.showJump();
  }

  return { refreshConversation, loadOlder, revealMessage };
}
