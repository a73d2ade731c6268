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
