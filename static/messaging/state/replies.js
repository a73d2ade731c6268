/*
 * Replies: the quote a reply carries ({id, sender, body, deleted}, as the server shows
 * `reply_to`), made from a message on screen for the composer, said in words, and kept up
 * to date when the quoted message is edited or deleted while its replies are shown.
 */

import { oneLine, truncate } from "../text/words.js";
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";

// How much of the quoted message a quote holds, in code points (as the server keeps it).
export const QUOTE_CHARS = 200;

/** The quote of a message, as a reply to it will show it. */
export function quoteOf(message) {
  const deleted = Boolean(message.deleted);
  return {
    id: message.id,
    sender: message.sender || null,
    body: deleted ? "" : Array.from(message.body || "").slice(0, QUOTE_CHARS).join(""),
    deleted,
  };
}

/**
 * A quote in words: {who, text}. A quote of a deleted (or hidden, or erased) message says
 * so; one of a message with files only names them.
 */
export function quoteWords(quote, meId, { attachments = null } = {}) {
  if (!quote) return null;
  const sender = quote.sender;
  const who = !sender ? gettext("Someone") : sender.id === meId ? gettext("You") : sender.username;
  if (quote.deleted) return { who, text: gettext("deleted message") };
  const body = truncate(oneLine(quote.body || ""), 120);
  if (body) return { who, text: body };
  if (attachments && attachments.length) {
    const files = interpolate(ngettext("%(count)s file", "%(count)s files", attachments.length), {
      count: formatNumber(attachments.length),
    });
    return { who, text: attachments.length === 1 ? attachments[0].name : files };
  }
  return { who, text: gettext("a file") };
}

/**
 * `changed` (a message just edited or deleted) is quoted by messages on screen: give those
 * the quote as it is now. Answers the ids of the messages whose quote changed.
 */
export function refreshQuotes(messages, changed) {
  const ids = [];
  if (!changed || typeof changed.id !== "number") return ids;
  const quote = quoteOf(changed);
  for (const m of messages.values()) {
    const old = m.reply_to;
    if (!old || old.id !== changed.id || m.deleted) continue;
    if (old.body === quote.body && old.deleted === quote.deleted) continue;
    m.reply_to = { ...old, body: quote.body, deleted: quote.deleted };
    ids.push(m.id);
  }
  return ids;
}
