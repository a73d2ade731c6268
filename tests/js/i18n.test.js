import assert from "node:assert/strict";
import { test } from "node:test";

import { ACTIONS, errorText, httpErrorText, waitText } from "../../static/messaging/text/errors.js";
import { sizeText, filesSummary } from "../../static/messaging/text/files.js";
import { gettext, interpolate, ngettext, useCatalog } from "../../static/messaging/text/i18n.js";

// A part of the German and Arabic catalogues, as JSONCatalog sends them.
const GERMAN = {
  "Couldn’t rename the group.": "Die Gruppe konnte nicht umbenannt werden.",
  "%(count)s second": ["%(count)s Sekunde", "%(count)s Sekunden"],
  "You’re sending too fast. Trying again in %(count)s second.": [
    "Du sendest zu schnell. Neuer Versuch in %(count)s Sekunde.",
    "Du sendest zu schnell. Neuer Versuch in %(count)s Sekunden.",
  ],
  "%(count)s KB": "%(count)s KB",
};
const ARABIC = {
  "%(count)s file": ["لا ملفات", "ملف واحد", "ملفان", "%(count)s ملفات", "%(count)s ملفًا", "%(count)s ملف"],
};

test("a text missing from the catalogue is said in English", (t) => {
  t.after(() => useCatalog({}, undefined));
  useCatalog(GERMAN, "de");
  assert.equal(gettext("Something new"), "Something new");
  assert.equal(ngettext("one apple", "%(count)s apples", 3), "%(count)s apples");
  assert.equal(interpolate("%(a)s and %(b)s", { a: 1 }), "1 and %(b)s");
});

test("German sentences are whole, and numbers are written the German way", (t) => {
  t.after(() => useCatalog({}, undefined));
  useCatalog(GERMAN, "de");
  assert.equal(httpErrorText({ status: 400, data: {} }, ACTIONS.renameGroup()), "Die Gruppe konnte nicht umbenannt werden.");
  assert.equal(waitText(1), "1 Sekunde");
  assert.equal(errorText({ code: "rate_limited", retry_after: 2 }), "Du sendest zu schnell. Neuer Versuch in 2 Sekunden.");
  assert.equal(sizeText(3_400_000_000_000), "3,4 TB");
  assert.equal(sizeText(12_500), "13 KB");
});

test("Arabic counts take all six plural forms", (t) => {
  t.after(() => useCatalog({}, undefined));
  useCatalog(ARABIC, "ar");
  const files = (n) => filesSummary(Array.from({ length: n }, (_, i) => ({ name: "f" + i })));
  assert.equal(files(2), "ملفان");
  const arabic = new Intl.NumberFormat("ar");
  assert.equal(files(3), arabic.format(3) + " ملفات");
  assert.equal(files(11), arabic.format(11) + " ملفًا");
  assert.equal(files(100), arabic.format(100) + " ملف");
});
