/* What a conversation is called and shows in the inbox, as seen by the person `me`. */

import { filesSummary } from "../text/files.js";
import { oneLine, truncate } from "../text/words.js";
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";

/** A message's text on one line, at most `max` code points; a message of files only names them. */
export function gist(message, max) {
  return truncate(oneLine(message.body || ""), max) || filesSummary(message.attachments);
}

/** The members other than me. */
export function others(me, conv) {
  return (conv.members || []).filter((u) => u.id !== me.id);
}

/** A group's title, or its members' names; a direct conversation's other person. */
export function convName(me, conv) {
  if (!conv) return "";
  if (conv.kind === "group") {
    if (conv.title) return conv.title;
    const names = others(me, conv).map((u) => u.username);
    // The inbox lists a few of a big group's members: the others are counted.
    const hidden = Math.max((conv.member_count || 0) - 1 - names.length, 0);
    if (!hidden) return names.length ? names.join(gettext(", ")) : gettext("Just you");
    return interpolate(gettext("%(names)s and %(last)s"), {
      names: names.join(gettext(", ")),
      last: interpolate(ngettext("%(count)s other", "%(count)s others", hidden), { count: formatNumber(hidden) }),
    });
  }
  const other = others(me, conv)[0];
  return other ? other.username : gettext("Unknown");
}

/** The other person of a direct conversation; null for a group. */
export function directPeer(me, conv) {
  return conv && conv.kind === "direct" ? others(me, conv)[0] || null : null;
}

/** The inbox's line under a conversation's name: its last message, said shortly. */
export function previewText(me, conv) {
  const last = conv.last_message;
  if (!last) return gettext("No messages yet");
  if (last.deleted && last.removed_by === "moderator") return gettext("Message removed by a moderator");
  if (last.deleted) return last.sender.id === me.id ? gettext("You deleted a message") : gettext("Message deleted");
  if (last.kind === "system") return truncate(oneLine(last.body), 120);
  const body = gist(last, 120);
  if (last.sender.id === me.id) return interpolate(gettext("You: %(text)s"), { text: body });
  return conv.kind === "group" ? interpolate(gettext("%(name)s: %(text)s"), { name: last.sender.username, text: body }) : body;
}

/** An unsent draft as the inbox shows it ("Draft: see you at…"), or "" for none. */
export function draftPreview(draft) {
  const text = typeof draft === "string" ? oneLine(draft) : "";
  return text ? interpolate(gettext("Draft: %(text)s"), { text: truncate(text, 120) }) : "";
}

/** Who is typing, in words: "bob is typing…", "bob and carol are typing…", "3 people are typing…". */
export function typingSentence(names, conv) {
  if (!names.length) return "";
  if ((conv && conv.kind === "direct") || names.length === 1) {
    return interpolate(gettext("%(name)s is typing…"), { name: names[0] });
  }
  if (names.length === 2) return interpolate(gettext("%(first)s and %(second)s are typing…"), { first: names[0], second: names[1] });
  return interpolate(ngettext("%(count)s person is typing…", "%(count)s people are typing…", names.length), {
    count: formatNumber(names.length),
  });
}
