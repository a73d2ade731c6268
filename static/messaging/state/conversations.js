/* What a conversation is called and shows in the inbox, as seen by the person `me`. */

import { oneLine, truncate } from "../text/words.js";

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
    return names.length ? names.join(", ") : "Just you";
  }
  const other = others(me, conv)[0];
  return other ? other.username : "Unknown";
}

/** The other person of a direct conversation; null for a group. */
export function directPeer(me, conv) {
  return conv && conv.kind === "direct" ? others(me, conv)[0] || null : null;
}

/** The inbox's line under a conversation's name: its last message, said shortly. */
export function previewText(me, conv) {
  const last = conv.last_message;
  if (!last) return "No messages yet";
  if (last.deleted && last.removed_by === "moderator") return "Message removed by a moderator";
  if (last.deleted) return last.sender.id === me.id ? "You deleted a message" : "Message deleted";
  if (last.kind === "system") return truncate(oneLine(last.body), 120);
  const body = truncate(oneLine(last.body), 120);
  if (last.sender.id === me.id) return "You: " + body;
  return conv.kind === "group" ? last.sender.username + ": " + body : body;
}

/** An unsent draft as the inbox shows it ("Draft: see you at…"), or "" for none. */
export function draftPreview(draft) {
  const text = typeof draft === "string" ? oneLine(draft) : "";
  return text ? "Draft: " + truncate(text, 120) : "";
}

/** Who is typing, in words: "bob is typing…", "bob and carol are typing…", "3 people are typing…". */
export function typingSentence(names, conv) {
  if (!names.length) return "";
  if (conv && conv.kind === "direct") return names[0] + " is typing…";
  if (names.length === 1) return names[0] + " is typing…";
  if (names.length === 2) return names[0] + " and " + names[1] + " are typing…";
  return names.length + " people are typing…";
}
