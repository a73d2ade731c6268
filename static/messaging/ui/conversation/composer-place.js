/*
 * The composer's place under the messages: the composer, or in its place why one cannot
 * write here (the conversation is gone, the person is blocked), and the skip link that
 * leads to it (or to the conversations when there is nothing to write in).
 */

import { currentConv } from "../../state/chat.js";
import { directPeer } from "../../state/conversations.js";
import { gettext, interpolate } from "../../text/i18n.js";

/** Show the composer or why it is hidden, and keep the skip link pointing where one can go. */
export function createComposerPlace({ ui, state, me }) {
  /** The composer, or in its place why one cannot write here. */
  function render() {
    const cur = state.cur;
    const conv = currentConv(state);
    const gone = Boolean(cur && cur.gone);
    const peer = directPeer(me, conv);
    const blocked = Boolean(!gone && peer && state.blocked.has(peer.username));
    ui.goneBar.hidden = !gone;
    ui.blockedBar.hidden = !blocked;
    if (blocked) {
      ui.blockedText.textContent =
        interpolate(gettext("You blocked %(name)s. Neither of you can message the other until you unblock them."), {
          name: peer.username,
        });
      ui.blockedUnblock.dataset.username = peer.username;
      ui.blockedUnblock.setAttribute("aria-label", interpolate(gettext("Unblock %(name)s"), { name: peer.username }));
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
    ui.skipLink.textContent = composer ? gettext("Skip to the message box") : gettext("Skip to your conversations");
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

  return { render, renderSkipLink, skip };
}
