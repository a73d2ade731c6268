/* Searching one's messages: the hits take the inbox's place; a hit opens its conversation there. */

import * as api from "../net/api.js";
import { convName } from "../state/conversations.js";
import { ACTIONS, httpErrorText } from "../text/errors.js";
import { debounce } from "../lib/debounce.js";
import { el, plainClick, showError, timeEl } from "./dom.js";
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";

const SEARCH_PAGE = 20;

/** The snippet as text, its [start, end) code point ranges wrapped in <mark>. */
function fillSnippet(node, snippet, ranges) {
  const chars = Array.from(String(snippet || ""));
  const spans = (Array.isArray(ranges) ? ranges : [])
    .filter((r) => Array.isArray(r) && Number.isInteger(r[0]) && Number.isInteger(r[1]) && r[0] < r[1])
    .map((r) => [Math.max(0, r[0]), Math.min(chars.length, r[1])])
    .sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [start, end] of spans) {
    if (start < at || start >= chars.length) continue;
    if (start > at) node.appendChild(document.createTextNode(chars.slice(at, start).join("")));
    node.appendChild(el("mark", { text: chars.slice(start, end).join("") }));
    at = end;
  }
  if (at < chars.length) node.appendChild(document.createTextNode(chars.slice(at).join("")));
}

export function createMessageSearch(app) {
  const { ui, state, me, urls } = app;
  const finder = { q: "", hits: [], hasMore: false, seq: 0, loading: false };

  function hitName(hit) {
    const conv = state.convs.get(hit.conversation);
    if (conv) return convName(me, conv);
    return hit.conversation_title || "A conversation";
  }

  function buildHit(hit) {
    const conv = state.convs.get(hit.conversation);
    const a = el("a", {
      class: "search-hit",
      href: urls.conversation(hit.conversation) + "?m=" + encodeURIComponent(hit.id),
      "data-testid": "search-hit",
      "data-conversation-id": hit.conversation,
      "data-message-id": hit.id,
    });
    const who =
      hit.sender.id === me.id
        ? gettext("You: ")
        : conv && conv.kind === "direct"
          ? ""
          : interpolate(gettext("%(name)s: "), { name: hit.sender.username });
    const snippet = el("span", { class: "search-hit-snippet", "data-testid": "search-hit-snippet" });
    fillSnippet(snippet, hit.snippet, hit.highlights);
    a.append(
      el("span", { class: "search-hit-top" }, [
        el("span", { class: "search-hit-conv", "data-testid": "search-hit-conversation", text: hitName(hit) }),
        timeEl(hit.created_at, true, null),
      ]),
      el("span", { class: "search-hit-text" }, [who ? el("span", { class: "search-hit-sender", text: who }) : null, snippet])
    );
    a.addEventListener("click", (event) => {
      if (!plainClick(event)) return;
      event.preventDefault();
      app.pane.openConversation(hit.conversation, { push: true, target: hit.id });
    });
    return el("li", {}, [a]);
  }

  function renderSummary() {
    const n = finder.hits.length;
    const words = { q: finder.q, count: formatNumber(n) };
    ui.searchSummary.textContent = interpolate(
      finder.loading && !n
        ? gettext("Searching for “%(q)s”…")
        : n === 0
          ? gettext("No messages match “%(q)s”.")
          : finder.hasMore
            ? ngettext("The newest %(count)s message matches “%(q)s”.", "The newest %(count)s messages match “%(q)s”.", n)
            : ngettext("%(count)s message matches “%(q)s”.", "%(count)s messages match “%(q)s”.", n),
      words
    );
    ui.searchMore.hidden = !finder.hasMore;
    ui.searchMore.disabled = finder.loading;
    ui.searchMore.textContent = finder.loading && n ? gettext("Loading…") : gettext("More results");
  }

  function openPanel() {
    ui.searchPanel.hidden = false;
    ui.inboxWrap.hidden = true;
    ui.app.dataset.searching = "true";
  }

  function closePanel(focusInput) {
    finder.seq += 1;
    finder.loading = false;
    runSoon.cancel();
    ui.searchPanel.hidden = true;
    ui.inboxWrap.hidden = false;
    ui.searchHits.replaceChildren();
    delete ui.app.dataset.searching;
    app.pane.clearFound();
    if (focusInput) {
      ui.msearch.value = "";
      ui.msearch.focus();
    }
  }

  async function searchPage(before) {
    const mine = ++finder.seq;
    finder.loading = true;
    renderSummary();
    const res = await api.searchMessages(finder.q, { before, limit: SEARCH_PAGE });
    if (mine !== finder.seq) return;
    finder.loading = false;
    if (!res.ok || !res.data || !Array.isArray(res.data.messages)) {
      showError(ui.searchError, httpErrorText(res, ACTIONS.search()));
      ui.searchSummary.textContent = "";
      ui.searchMore.hidden = true;
      return;
    }
    showError(ui.searchError, "");
    const hits = res.data.messages.filter((h) => h && typeof h.id === "number" && h.sender);
    finder.hits.push(...hits);
    finder.hasMore = Boolean(res.data.has_more) && hits.length > 0;
    for (const hit of hits) ui.searchHits.appendChild(buildHit(hit));
    renderSummary();
  }

  function start() {
    runSoon.cancel();
    const q = ui.msearch.value.trim();
    if (!q) {
      closePanel(false);
      return;
    }
    if (q === finder.q && !ui.searchPanel.hidden && (finder.loading || finder.hits.length)) return;
    finder.q = q;
    finder.hits = [];
    finder.hasMore = false;
    ui.searchHits.replaceChildren();
    showError(ui.searchError, "");
    openPanel();
    searchPage(null);
  }

  const runSoon = debounce(start, 350);

  function moreResults() {
    if (finder.loading || !finder.hasMore || !finder.hits.length) return;
    const oldest = finder.hits[finder.hits.length - 1].id;
    const focusAt = finder.hits.length;
    searchPage(oldest).then(() => {
      const links = ui.searchHits.querySelectorAll("a");
      if (links[focusAt]) links[focusAt].focus();
    });
  }

  function keys(event) {
    const links = Array.from(ui.searchHits.querySelectorAll("a"));
    const at = links.indexOf(document.activeElement);
    if (event.key === "ArrowDown") {
      if (!links.length) return;
      event.preventDefault();
      links[Math.min(links.length - 1, at + 1)].focus();
    } else if (event.key === "ArrowUp" && at >= 0) {
      event.preventDefault();
      if (at === 0) ui.msearch.focus();
      else links[at - 1].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      closePanel(true);
    }
  }

  return {
    bind() {
      ui.msearchForm.addEventListener("submit", (event) => {
        event.preventDefault();
        start();
      });
      ui.msearch.addEventListener("input", () => {
        if (!ui.msearch.value.trim()) closePanel(false);
        else runSoon();
      });
      ui.msearch.addEventListener("keydown", keys);
      ui.searchHits.addEventListener("keydown", keys);
      ui.searchMore.addEventListener("click", moreResults);
      ui.searchClose.addEventListener("click", () => closePanel(true));
    },
  };
}
