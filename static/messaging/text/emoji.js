/*
 * Emoji for reactions: the few the picker offers first, and a search over the whole set
 * shipped with the app (static/messaging/emoji.json, built by tools/emoji from
 * emojibase-data). An entry of that set is [emoji, name, search words].
 */

/** The picker's first row: the reactions people give most. */
export const FREQUENT = [
  ["👍", "thumbs up"],
  ["❤️", "red heart"],
  ["😂", "face with tears of joy"],
  ["😮", "face with open mouth"],
  ["😢", "crying face"],
  ["🙏", "folded hands"],
  ["🎉", "party popper"],
  ["👀", "eyes"],
];

const SPLIT = /[^\p{L}\p{N}+]+/u;

function wordsOf(text) {
  return String(text || "")
    .toLowerCase()
    .split(SPLIT)
    .filter(Boolean);
}

/**
 * How well an entry answers the query's words, or 0 when one of them matches nothing:
 * each word must start a word of the name or of the search words; a whole word of the
 * name counts most, and a short name that the query covers well ("red heart" for
 * "heart") before a long one that merely starts with it.
 */
function score(entry, query, words) {
  const name = entry[1].toLowerCase();
  const nameWords = wordsOf(name);
  const extra = wordsOf(entry[2]);
  let total = 0;
  for (const word of words) {
    if (nameWords.includes(word)) total += 4;
    else if (nameWords.some((w) => w.startsWith(word))) total += 3;
    else if (extra.includes(word)) total += 2;
    else if (extra.some((w) => w.startsWith(word))) total += 1;
    else return 0;
  }
  if (name.startsWith(query)) total += 0.5;
  if (name === query) total += 10;
  return total + (3 * query.length) / name.length;
}

/**
 * The entries that match a query, best first (ties keep the set's order); at most `limit`.
 * Typing the emoji itself finds it too.
 */
export function searchEmoji(entries, query, limit = 48) {
  const q = String(query || "").trim().toLowerCase();
  if (!q || !Array.isArray(entries)) return [];
  const words = wordsOf(q);
  const found = [];
  entries.forEach((entry, order) => {
    if (!Array.isArray(entry) || typeof entry[0] !== "string") return;
    const points = entry[0] === q ? 100 : words.length ? score(entry, q, words) : 0;
    if (points > 0) found.push({ entry, points, order });
  });
  found.sort((a, b) => b.points - a.points || a.order - b.order);
  return found.slice(0, limit).map((f) => f.entry);
}

/** An emoji's name, from the set (or the frequent few while the set is not loaded yet). */
export function emojiName(entries, emoji) {
  for (const [e, name] of FREQUENT) if (e === emoji) return name;
  for (const entry of entries || []) if (entry[0] === emoji) return entry[1];
  return "";
}
