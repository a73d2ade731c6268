/*
 * Reactions: the counts under a message, as buttons that put one's own on or take it off
 * (one's own highlighted, who reacted said on hover and on focus), and the picker: the
 * frequent few, then a search over every emoji the app ships (static/messaging/emoji.json,
 * fetched the first time the picker opens). Arrow keys walk the picker's grid; Escape
 * closes it and gives the focus back to where it was opened from.
 */

import { currentConv } from "../state/chat.js";
import { pendingWishes, isMine, reactorsText, shownReactions, toggleFrame } from "../state/reactions.js";
import { emojiName, FREQUENT, searchEmoji } from "../text/emoji.js";
import { el } from "./dom.js";
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";

const COLUMNS = 8;
// A tap the server neither confirms nor refuses within this long is forgotten.
const WISH_TIMEOUT = 10000;

export function createReactions(app) {
  const { ui, state, me } = app;
  const wishes = new Map(); // message id -> Map(emoji -> on): my taps not confirmed yet
  let emojiSet = null; // the shipped set, once loaded
  let loading = null;
  let picker = null; // {root, search, grid, status, id, returnTo}
  let tipSeq = 0;

  function loadSet() {
    if (!loading) {
      const url = ui.app.dataset.emojiUrl;
      loading = fetch(url, { credentials: "same-origin" })
        .then((res) => (res.ok ? res.json() : null))
        .then((data) => {
          emojiSet = data && Array.isArray(data.emoji) ? data.emoji : [];
          return emojiSet;
        })
        .catch(() => {
          loading = null; // try again next time
          return null;
        });
    }
    return loading;
  }

  function nameOf(emoji) {
    return emojiName(emojiSet, emoji) || emoji;
  }

  // -- the counts under a message ---------------------------------------------------------

  /** The reactions row of a message, or null when it has none. */
  function render(m) {
    if (m.deleted || m.kind === "system") return null;
    const shown = shownReactions(m.reactions, wishes.get(m.id), me.id);
    if (!shown.length) return null;
    const readOnly = Boolean(state.cur && state.cur.gone);
    const members = (currentConv(state) || {}).members || [];
    const row = el("div", { class: "reactions", role: "group", "aria-label": gettext("Reactions"), "data-testid": "reactions" });
    for (const reaction of shown) {
      const mine = isMine(reaction, me.id);
      const who = reactorsText(reaction, members, me.id);
      const tipId = "reaction-tip-" + ++tipSeq;
      const button = el(
        "button",
        {
          type: "button",
          class: "reaction" + (mine ? " is-mine" : ""),
          "data-testid": "reaction",
          "data-emoji": reaction.emoji,
          "data-count": reaction.count,
          "data-mine": mine ? "true" : "false",
          "aria-pressed": mine ? "true" : "false",
          "aria-label": interpolate(gettext("%(emoji)s, %(count)s"), { emoji: nameOf(reaction.emoji), count: formatNumber(reaction.count) }),
          "aria-describedby": tipId,
          disabled: readOnly,
        },
        [
          el("span", { class: "reaction-emoji", "aria-hidden": "true", text: reaction.emoji }),
          el("span", { class: "reaction-count", "aria-hidden": "true", text: String(reaction.count) }),
        ]
      );
      button.addEventListener("click", (event) => {
        event.stopPropagation();
        toggle(m.id, reaction.emoji);
      });
      const tip = el("span", {
        class: "reaction-tip",
        id: tipId,
        role: "tooltip",
        "data-testid": "reaction-who",
        text: interpolate(
          mine
            ? gettext("%(who)s reacted with %(emoji)s. Press to take yours off.")
            : gettext("%(who)s reacted with %(emoji)s."),
          { who, emoji: nameOf(reaction.emoji) }
        ),
      });
      row.appendChild(el("span", { class: "reaction-wrap" }, [button, tip]));
    }
    return row;
  }

  /** Put my reaction on, or take it off: shown at once, confirmed by the server's update. */
  function toggle(id, emoji) {
    const cur = state.cur;
    const m = cur && cur.msgs.get(id);
    if (!m || m.deleted || cur.gone) return;
    if (state.link === "offline") {
      app.notices.showNotice(gettext("You’re offline. Try reacting again when the connection is back."));
      return;
    }
    const mine = wishes.get(id) || new Map();
    const { frame, on } = toggleFrame(id, shownReactions(m.reactions, mine, me.id), emoji, me.id);
    if (!app.socket.send(frame)) return;
    cur.pendingChange = { kind: "reaction", id, at: Date.now() };
    mine.set(emoji, on);
    wishes.set(id, mine);
    setTimeout(() => {
      const left = wishes.get(id);
      if (left && left.get(emoji) === on && left.delete(emoji)) redrawKeepingFocus(id, emoji);
    }, WISH_TIMEOUT);
    redrawKeepingFocus(id, emoji);
    app.notices.announce(
      interpolate(on ? gettext("Reacted with %(emoji)s.") : gettext("Took off your %(emoji)s reaction."), { emoji: nameOf(emoji) })
    );
  }

  /** Draw a message again; a reaction button that had the focus keeps it. */
  function redrawKeepingFocus(id, emoji) {
    const old = app.pane.element(id);
    const focused = old && old.contains(document.activeElement) ? document.activeElement : null;
    const node = app.pane.redraw(id);
    if (!node || !focused) return;
    const again =
      (focused.dataset.emoji && node.querySelector('[data-testid="reaction"][data-emoji="' + CSS.escape(emoji) + '"]')) ||
      node.querySelector('[data-testid="message-react"]');
    if (again) again.focus({ preventScroll: true });
  }

  /** The server's version of a message arrived: drop the taps it shows. */
  function settle(m) {
    const mine = wishes.get(m.id);
    if (!mine) return;
    const left = pendingWishes(m.reactions, mine, me.id);
    if (left.size) wishes.set(m.id, left);
    else wishes.delete(m.id);
  }

  /** The server refused a reaction: show the message as the server has it. */
  function refused(id) {
    wishes.delete(id);
    app.pane.redraw(id);
  }

  // -- the picker -------------------------------------------------------------------------

  function emojiButton(emoji, name) {
    const button = el("button", {
      type: "button",
      class: "emoji-choice",
      tabindex: "-1",
      "data-testid": "emoji-choice",
      "data-emoji": emoji,
      "aria-label": name,
      title: name,
      text: emoji,
    });
    button.addEventListener("click", () => choose(emoji));
    return button;
  }

  function fillGrid(entries, label) {
    picker.grid.replaceChildren(...entries.map(([emoji, name]) => emojiButton(emoji, name)));
    picker.grid.setAttribute("aria-label", label);
    const first = picker.grid.firstElementChild;
    if (first) first.tabIndex = 0;
  }

  async function runSearch() {
    if (!picker) return;
    const q = picker.search.value.trim();
    if (!q) {
      fillGrid(FREQUENT, gettext("Frequent reactions"));
      picker.status.textContent = "";
      return;
    }
    const set = emojiSet || (await loadSet());
    if (!picker || picker.search.value.trim() !== q) return; // typed on meanwhile
    if (!set) {
      picker.grid.replaceChildren();
      picker.status.textContent = gettext("Couldn’t load the emoji. Check your connection and try again.");
      return;
    }
    const found = searchEmoji(set, q, 64);
    fillGrid(found, gettext("Emoji found"));
    picker.status.textContent = found.length
      ? interpolate(ngettext("%(count)s emoji found. Down arrow to choose.", "%(count)s emoji found. Down arrow to choose.", found.length), {
          count: formatNumber(found.length),
        })
      : interpolate(gettext("No emoji found for “%(q)s”."), { q });
  }

  function choices() {
    return picker ? Array.from(picker.grid.querySelectorAll("button")) : [];
  }

  function focusChoice(i) {
    const all = choices();
    if (!all.length) return;
    const at = Math.max(0, Math.min(all.length - 1, i));
    for (const b of all) b.tabIndex = -1;
    all[at].tabIndex = 0;
    all[at].focus();
  }

  function onPickerKey(event) {
    if (!picker) return;
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close(true);
      return;
    }
    const all = choices();
    if (event.target === picker.search) {
      if (event.key === "ArrowDown" && all.length) {
        event.preventDefault();
        focusChoice(0);
      } else if (event.key === "Enter") {
        event.preventDefault();
        if (all.length) choose(all[0].dataset.emoji);
      }
      return;
    }
    const at = all.indexOf(event.target);
    if (at < 0) return;
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: COLUMNS, ArrowUp: -COLUMNS };
    if (event.key in moves) {
      event.preventDefault();
      const next = at + moves[event.key];
      if (next < 0) picker.search.focus();
      else focusChoice(Math.min(next, all.length - 1));
    } else if (event.key === "Home") {
      event.preventDefault();
      focusChoice(0);
    } else if (event.key === "End") {
      event.preventDefault();
      focusChoice(all.length - 1);
    }
  }

  function choose(emoji) {
    if (!picker) return;
    const id = picker.id;
    close(true);
    toggle(id, emoji);
  }

  /** Open the picker for a message, beside the button that opened it. */
  function open(id, from) {
    const cur = state.cur;
    const m = cur && cur.msgs.get(id);
    if (!m || m.deleted || cur.gone) return;
    if (picker && picker.id === id) {
      close(true);
      return;
    }
    close(false);
    const search = el("input", {
      type: "search",
      class: "emoji-search",
      placeholder: gettext("Search emoji"),
      "aria-label": gettext("Search emoji"),
      autocomplete: "off",
      spellcheck: "false",
      "data-testid": "emoji-search",
    });
    const grid = el("div", { class: "emoji-grid", role: "group", "data-testid": "emoji-grid" });
    const status = el("p", { class: "emoji-status", role: "status", "data-testid": "emoji-status" });
    const label =
      m.sender.id === me.id
        ? gettext("React to your message")
        : interpolate(gettext("React to the message from %(name)s"), { name: m.sender.username });
    const root = el("div", { class: "emoji-picker", role: "dialog", "aria-label": label, "data-testid": "emoji-picker" }, [
      search,
      grid,
      status,
    ]);
    picker = { root, search, grid, status, id, returnTo: from };
    fillGrid(FREQUENT, gettext("Frequent reactions"));
    root.addEventListener("keydown", onPickerKey);
    search.addEventListener("input", runSearch);
    ui.conversation.appendChild(root);
    place(root, from);
    loadSet();
    focusChoice(0);
  }

  /** Beside the button it opened from, inside the conversation, above it when there is room. */
  function place(root, from) {
    const box = ui.conversation.getBoundingClientRect();
    const anchor = (from && from.isConnected ? from : ui.input).getBoundingClientRect();
    const height = root.offsetHeight;
    const width = root.offsetWidth;
    const above = anchor.top - box.top - height - 6;
    const top = above >= 8 ? above : Math.min(anchor.bottom - box.top + 6, box.height - height - 8);
    const left = Math.min(Math.max(8, anchor.right - box.left - width), box.width - width - 8);
    root.style.top = Math.max(8, top) + "px";
    root.style.left = Math.max(8, left) + "px";
  }

  /** Close the picker; `refocus`: the focus goes back to where it was opened from. */
  function close(refocus) {
    if (!picker) return;
    const { root, id, returnTo } = picker;
    picker = null;
    const hadFocus = root.contains(document.activeElement);
    root.remove();
    if (!refocus && !hadFocus) return;
    const li = app.pane.element(id);
    const back = returnTo && returnTo.isConnected ? returnTo : li && li.querySelector('[data-testid="message-react"]');
    if (back) back.focus({ preventScroll: true });
  }

  return {
    render,
    open,
    close,
    toggle,
    settle,
    refused,
    bind() {
      document.addEventListener("mousedown", (event) => {
        const from = picker && picker.returnTo;
        if (picker && !picker.root.contains(event.target) && !(from && from.contains(event.target))) close(false);
      });
    },
  };
}
