/* Counting and shortening text the way people see it: by code points, on one line. */

/** The length of a text in Unicode code points, as the server counts a body. */
export function codePoints(text) {
  let n = 0;
  for (const _ of text) n++; // eslint-disable-line no-unused-vars
  return n;
}

/** At most `max` code points, the last one an ellipsis when something was cut. */
export function truncate(text, max) {
  const chars = Array.from(text);
  return chars.length > max ? chars.slice(0, max - 1).join("") + "…" : text;
}

/** All white space, line breaks included, folded into single spaces. */
export function oneLine(text) {
  return text.replace(/\s+/g, " ").trim();
}

// Past this many code points or lines, a message shows folded, with "Show more".
export const LONG_MESSAGE_CHARS = 600;
export const LONG_MESSAGE_LINES = 12;

/** Whether a body is long enough to show folded at first. */
export function isLongMessage(text) {
  if (typeof text !== "string") return false;
  if (text.split("\n").length > LONG_MESSAGE_LINES) return true;
  return codePoints(text) > LONG_MESSAGE_CHARS;
}
