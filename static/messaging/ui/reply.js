/*
 * Replies: answering one message. The quote above the composer while writing (Escape or
 * its × cancels it), the quote at the top of a reply (a click, or Enter, shows the message
 * it answers, loading older history if needed, and highlights it briefly), the R key on a
 * message, and the quotes on screen kept up to date as the messages they quote change.
 */

import { quoteOf, quoteWords, refreshQuotes } from "../state/replies.js";
import { el } from "./dom.js";
import { gettext, interpolate } from "../text/i18n.js";

export function createReplies(app) {
  const { ui, state, me } = app;
  const bar = {
    root: document.getElementById("reply-bar"),
    who: document.getElementById("reply-bar-who"),
    quote: document.getElementById("reply-bar-quote"),
    cancel: document.getElementById("reply-cancel"),
  };

  /** The quote the composer will send with, or null. */
  function pending() {
    const cur = state.cur;
    return cur && cur.replyTo ? cur.replyTo : null;
  }

  function renderBar() {
    const quote = pending();
    bar.root.hidden = !quote;
    if (!quote) return;
    const words = quoteWords(quote, me.id, { attachments: quote.attachments });
    bar.who.textContent = quote.sender && quote.sender.id === me.id ? gettext("yourself") : words.who;
    bar.quote.textContent = words.text;
    bar.root.classList.toggle("is-deleted", quote.deleted);
  }

  /** Answer a message of the open conversation: its quote goes above the composer. */
  function start(id) {
    const cur = state.cur;
    const m = cur && cur.msgs.get(id);
    if (!m || m.deleted || m.kind === "system" || cur.gone) return;
    cur.replyTo = { ...quoteOf(m), attachments: m.attachments || [] };
    renderBar();
    ui.input.focus();
    app.notices.announce(interpolate(gettext("Replying to %(name)s. Escape cancels."), { name: quoteWords(cur.replyTo, me.id).who }));
  }

  /** Write without answering anything after all. */
  function cancel({ focus = true } = {}) {
    const cur = state.cur;
    if (!cur || !cur.replyTo) return false;
    cur.replyTo = null;
    renderBar();
    if (focus) ui.input.focus();
    return true;
  }

  /** The quote at the top of a reply, as a button that shows the message it answers. */
  function quoteEl(quote) {
    if (!quote) return null;
    const words = quoteWords(quote, me.id);
    const button = el(
      "button",
      {
        type: "button",
        class: "quote" + (quote.deleted ? " is-deleted" : ""),
        "data-testid": "message-quote",
        "data-reply-to": quote.id,
        title: quote.deleted ? gettext("The message this answered was deleted") : gettext("Show the message this answers"),
      },
      [
        el("span", { class: "visually-hidden", text: gettext("In reply to ") }),
        el("span", { class: "quote-who", "data-testid": "quote-who", text: words.who }),
        el("span", { class: "visually-hidden", text: ": " }),
        el("span", { class: "quote-text", dir: "auto", "data-testid": "quote-text", text: words.text }),
      ]
    );
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      const cur = state.cur;
      if (cur) app.pane.revealMessage(cur, quote.id, { flash: true });
    });
    return button;
  }

  /**
   * Messages have changed (pushed, synced or fetched): quotes of them that are on screen
   * follow, and the composer's quote too; a quote being written of a message deleted
   * meanwhile is dropped, as the server would refuse the reply.
   */
  function changed(messages) {
    const cur = state.cur;
    if (!cur) return;
    for (const m of messages) {
      for (const id of refreshQuotes(cur.msgs, m)) app.pane.redraw(id);
      if (cur.replyTo && cur.replyTo.id === m.id) {
        if (m.deleted) {
          cancel({ focus: false });
          app.notices.showNotice(gettext("The message you were replying to was deleted."));
        } else {
          cur.replyTo = { ...quoteOf(m), attachments: m.attachments || [] };
          renderBar();
        }
      }
    }
  }

  /** R on a message (or on one of its buttons) answers it. */
  function onKey(event) {
    if (event.key !== "r" && event.key !== "R") return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    const target = event.target;
    if (!(target instanceof Element) || target.closest("input, textarea, select, [contenteditable], .msg-extra")) return;
    const li = target.closest("li.msg[data-id]");
    if (!li || li.dataset.kind === "system" || li.dataset.deleted === "true") return;
    event.preventDefault();
    start(Number(li.dataset.id));
  }

  return {
    start,
    cancel,
    pending,
    renderBar,
    quoteEl,
    changed,
    bind() {
      bar.cancel.addEventListener("click", () => cancel());
      ui.messages.addEventListener("keydown", onKey);
      ui.input.addEventListener("keydown", (event) => {
        if (event.key === "Escape" && !event.isComposing && cancel()) event.preventDefault();
      });
    },
  };
}
