/*
 * The client's texts in the page's language: Django's djangojs catalogue (JSONCatalog),
 * fetched once before any module that shows text runs (top-level await), and Intl's
 * formats for the same language. English pages need no catalogue: their texts are the
 * msgids themselves.
 */

let catalog = {};
let lang;
let pluralIndex = englishPlural;

function englishPlural(n) {
  return n === 1 ? 0 : 1;
}

// gettext's plural rules of the shipped languages, written out because the catalogue's own
// rule is a C expression and the page's CSP forbids evaluating code.
const PLURAL_RULES = {
  ar: (n) =>
    n === 0 ? 0 : n === 1 ? 1 : n === 2 ? 2 : n % 100 >= 3 && n % 100 <= 10 ? 3 : n % 100 >= 11 ? 4 : 5,
  de: englishPlural,
  en: englishPlural,
  es: (n) => (n === 1 ? 0 : n !== 0 && n % 1000000 === 0 ? 1 : 2),
};

/** Use a catalogue ({msgid: text or [forms]}) for a language code ("de", "ar"…). */
export function useCatalog(entries, language) {
  catalog = entries || {};
  lang = language;
  pluralIndex = PLURAL_RULES[String(language).split("-")[0]] || englishPlural;
}

/** The page's language for Intl (undefined: the browser's own, as outside a page). */
export function language() {
  return lang;
}

/** A text in the page's language. */
export function gettext(msgid) {
  const found = catalog[msgid];
  if (typeof found === "string" && found) return found;
  if (Array.isArray(found) && found[0]) return found[0];
  return msgid;
}

/** The form of a text that fits a count, in the page's language. */
export function ngettext(singular, plural, count) {
  const found = catalog[singular];
  if (Array.isArray(found)) {
    const form = found[pluralIndex(Math.abs(Number(count)))];
    if (form) return form;
  }
  return count === 1 ? singular : plural;
}

/** Mark a text for the catalogue, to be translated later with gettext. */
export function gettext_noop(msgid) {
  return msgid;
}

/** Fill a text's %(name)s places from `values`. */
export function interpolate(text, values) {
  return text.replace(/%\((\w+)\)s/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** A number written the way the page's language writes it. */
export function formatNumber(n) {
  return new Intl.NumberFormat(lang).format(n);
}

/** Load the page's catalogue, named by <html data-catalog>, unless the page is in English. */
async function loadPageCatalog() {
  const root = document.documentElement;
  const code = root.lang || "en";
  if (code === "en" || code.startsWith("en-") || !root.dataset.catalog) {
    useCatalog({}, code);
    return;
  }
  try {
    const res = await fetch(root.dataset.catalog, { credentials: "same-origin" });
    useCatalog(res.ok ? (await res.json()).catalog : {}, code);
  } catch {
    // Offline or failed: the English texts still say everything.
    useCatalog({}, code);
  }
}

if (typeof document !== "undefined") await loadPageCatalog();
