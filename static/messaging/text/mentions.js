/*
 * Mentions: `@username` of a group's member, found the way the server finds them
 * (messaging/domain/mentions.py): an @ that starts a word, then a username's characters,
 * with trailing punctuation that is not part of the name let go ("thanks @bob.").
 * Also the composer's autocomplete: the `@name` being typed, the members it may mean, and
 * the text once one is picked.
 */

// The characters a username may hold (Django's: letters, digits and @ . + - _).
const NAME_CHAR = /[\p{L}\p{N}_.@+-]/u;
// An @ right after one of these is inside a word or an address (bob@example.org).
const WORD_CHAR = /[\p{L}\p{N}_@.+-]/u;
const MENTION = /(?<![\p{L}\p{N}_@.+-])@([\p{L}\p{N}_.@+-]{1,150})/gu;
const TRAILING = ".@+-";
const MAX_NAME = 150;

/**
 * The mention being typed where the caret is: answers {start, query} (`start`: the index
 * of its @; `query`: what follows it up to the caret), or null when the caret is not
 * right after `@` and part of a name.
 */
export function mentionAt(text, caret) {
  if (typeof text !== "string" || !Number.isInteger(caret) || caret < 1 || caret > text.length) return null;
  let i = caret;
  while (i > 0 && text[i - 1] !== "@" && NAME_CHAR.test(text[i - 1])) i--;
  if (i === 0 || text[i - 1] !== "@") return null;
  const start = i - 1;
  if (start > 0 && WORD_CHAR.test(text[start - 1])) return null;
  const query = text.slice(i, caret);
  if (query.length > MAX_NAME) return null;
  return { start, query };
}

/**
 * The members a typed `@query` may mean, other than me: those whose name starts with it
 * first, then those that hold it, each alphabetically; at most `limit`.
 */
export function matchMembers(members, query, meId, limit = 8) {
  const q = String(query || "").toLowerCase();
  const starts = [];
  const holds = [];
  for (const user of members || []) {
    if (!user || user.id === meId || user.active === false) continue;
    const name = user.username.toLowerCase();
    if (name.startsWith(q)) starts.push(user);
    else if (q && name.includes(q)) holds.push(user);
  }
  const byName = (a, b) => a.username.localeCompare(b.username);
  return starts.sort(byName).concat(holds.sort(byName)).slice(0, limit);
}

/**
 * The composer's text once `username` is picked for the mention at `start` typed up to
 * `caret`: answers {text, caret}, the caret after the name and the space that follows it.
 */
export function completeMention(text, start, caret, username) {
  const after = text.slice(caret);
  const space = /^\s/.test(after) ? "" : " ";
  const inserted = "@" + username + space;
  return { text: text.slice(0, start) + inserted + after, caret: start + inserted.length + (space ? 0 : 1) };
}

/**
 * A body cut into plain text and mentions: answers [{text}] and [{text, user}] pieces in
 * order, where `user` is one of `users` (the people the message names, as the server
 * listed them) and `text` is the `@name` as written.
 */
export function mentionPieces(body, users) {
  const text = typeof body === "string" ? body : "";
  const byName = new Map();
  for (const user of users || []) if (user && user.username) byName.set(user.username.toLowerCase(), user);
  if (!byName.size || !text.includes("@")) return text ? [{ text }] : [];
  const pieces = [];
  let last = 0;
  MENTION.lastIndex = 0;
  let match;
  while ((match = MENTION.exec(text)) !== null) {
    let name = match[1];
    let user = byName.get(name.toLowerCase());
    while (!user && name && TRAILING.includes(name[name.length - 1])) {
      name = name.slice(0, -1);
      user = byName.get(name.toLowerCase());
    }
    if (!user) continue;
    if (match.index > last) pieces.push({ text: text.slice(last, match.index) });
    pieces.push({ text: "@" + name, user });
    last = match.index + 1 + name.length;
    MENTION.lastIndex = last;
  }
  if (last < text.length) pieces.push({ text: text.slice(last) });
  return pieces;
}

/** Whether a message names me: the server lists me in its `mentions`. */
export function mentionsMe(message, meId) {
  return Boolean(message && Array.isArray(message.mentions) && message.mentions.includes(meId));
}
