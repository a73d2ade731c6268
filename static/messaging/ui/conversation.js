/*
 * The conversation pane: its header, the messages (the only place they are drawn), day
 * separators, the "New messages" divider, "Seen" markers, sends still in the outbox, older
 * pages, and the stretch of history around a search hit. Also opening a conversation and
 * going back to the inbox, which is what the pane shows on a phone.
 *
 * Each of these has a module in conversation/; this one puts them together and gives the
 * rest of the client one pane to talk to.
 */

import { createComposerPlace } from "./conversation/composer-place.js";
import { createPaneHeader } from "./conversation/header.js";
import { createHistoryLoader } from "./conversation/history.js";
import { createMessageDrawing } from "./conversation/message-drawing.js";
import { createMessageList } from "./conversation/message-list.js";
import { createOpening } from "./conversation/opening.js";
import { createScrolling } from "./conversation/scrolling.js";

export function createConversationPane(app) {
  const { ui, state, me, urls } = app;
  const header = createPaneHeader({ app, ui, state, me });
  const composerPlace = createComposerPlace({ ui, state, me });
  const scrolling = createScrolling({ ui, state });
  const drawing = createMessageDrawing({ app, ui, state, me });
  const list = createMessageList({ app, ui, state, me, drawing, scrolling, header });
  const loader = createHistoryLoader({ app, ui, state, me, list, scrolling, header, composerPlace });
  const opening = createOpening({ app, ui, state, me, urls, list, scrolling, header, composerPlace, loader });

  /** Keep the newest message in view as the page changes size, and load older ones on top. */
  function bind() {
    scrolling.bind(loader.loadOlder);
    ui.loadOlder.addEventListener("click", loader.loadOlder);
    if (ui.skipLink) {
      ui.skipLink.addEventListener("click", (event) => {
        event.preventDefault();
        composerPlace.skip();
      });
    }
    ui.jump.addEventListener("click", () => {
      if (state.cur && state.cur.detached) {
        opening.backToLatest();
        return;
      }
      scrolling.scrollToBottom();
      ui.input.focus({ preventScroll: true });
    });
  }

  return {
    bind,
    element: list.element,
    clearFound: list.clearFound,
    bringIntoView: scrolling.bringIntoView,
    hasPending: list.hasPending,
    renderHeader: header.renderHeader,
    renderHistoryTop: header.renderHistoryTop,
    renderTyping: header.renderTyping,
    renderComposerState: composerPlace.render,
    renderPending: list.renderPending,
    renamePending: list.renamePending,
    removePending: list.removePending,
    upsertMessages: list.upsertMessages,
    redraw: list.redraw,
    updateSeen: list.updateSeen,
    scrollToBottom: scrolling.scrollToBottom,
    showGone: opening.showGone,
    setupConversation: opening.setupConversation,
    refreshConversation: loader.refreshConversation,
    revealMessage: loader.revealMessage,
    openConversation: opening.openConversation,
    openPerson: opening.openPerson,
    personFound: opening.personFound,
    adopt: opening.adopt,
    showInbox: opening.showInbox,
  };
}
