/*
 * Write static/messaging/emoji.json: every emoji the reaction picker can search, with its
 * English name and search words, from emojibase-data (pinned by package-lock.json here).
 *
 *   cd tools/emoji && npm ci && npm run build
 *
 * The file is committed, so that the chat itself needs no npm. Only what the picker needs
 * is kept: the emoji as the server takes it (one emoji, fully qualified), its name, and its
 * tags and shortcodes as words. Skin tone variants, the loose regional indicator letters and
 * the skin tone swatches are left out; so are emoji newer than MAX_VERSION, which many
 * systems' fonts cannot draw yet.
 */

import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const OUT = join(here, "..", "..", "static", "messaging", "emoji.json");
const MAX_VERSION = 15.1;
const COMPONENT_GROUP = 2; // skin tone and hair swatches: parts of emoji, not emoji to send

const data = require("emojibase-data/en/data.json");
const github = require("emojibase-data/en/shortcodes/github.json");
const cldr = require("emojibase-data/en/shortcodes/cldr.json");
const { version } = JSON.parse(readFileSync(require.resolve("emojibase-data/package.json"), "utf8"));

const VS16 = "\uFE0F";
const PRESENTED = /^\p{Emoji_Presentation}$/u;

/**
 * The emoji as one sends it. emojibase adds the emoji presentation selector even to
 * characters that are emoji by default (👍 + U+FE0F); the fully qualified form has none
 * there, and a reaction with it would count apart from the same emoji without.
 */
function qualified(entry) {
  const chars = Array.from(entry.emoji);
  if (chars.length === 2 && chars[1] === VS16 && PRESENTED.test(chars[0])) return chars[0];
  return entry.emoji;
}

function words(entry) {
  const name = new Set(entry.label.toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean));
  const extra = [];
  const codes = [].concat(github[entry.hexcode] || [], cldr[entry.hexcode] || []);
  for (const word of [...(entry.tags || []), ...codes.map((c) => c.replace(/_/g, " "))]) {
    const w = word.toLowerCase();
    if (!name.has(w) && !extra.includes(w) && w !== entry.label.toLowerCase()) extra.push(w);
  }
  return extra.join(" ");
}

const emoji = data
  .filter((e) => typeof e.group === "number" && e.group !== COMPONENT_GROUP && e.version <= MAX_VERSION)
  .sort((a, b) => a.order - b.order)
  .map((e) => [qualified(e), e.label, words(e)]);

const out = { source: "emojibase-data " + version, emoji };
writeFileSync(OUT, JSON.stringify(out).replace(/\],\[/g, "],\n[") + "\n");
console.log("wrote " + emoji.length + " emoji to " + OUT);
