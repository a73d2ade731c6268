/*
 * Mentions in groups: the composer's `@` autocomplete of members (a listbox the arrow keys
 * walk, Enter or Tab picks from, Escape closes; the text box points at the active option
 * with aria-activedescendant), and message text with the people it names highlighted,
 * the reader's own name most of all.
 */

import { currentConv } from "../state/chat.js";
import { completeMention, matchMembers, mentionAt, mentionPieces } from "../text/mentions.js";
import { el, linkify, userAvatar } from "./dom.js";
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";

export function createMentions(app) {
  const { ui, state, me } = app;
  const list = document.getElementById("mention-list");
  const status = document.getElementById("mention-status");
  let open = null; // {start, caret, users, active}

  function close() {
    if (!open && list.hidden) return;
    open = null;
    list.hidden = true;
    list.replaceChildren();
    ui.input.removeAttribute("aria-activedescendant");
    status.textContent = "";
  }

  function optionId(i) {
    return "mention-option-" + i;
  }

  function render() {
    list.replaceChildren();
    open.users.forEach((user, i) => {
      const option = el(
        "li",
        {
          id: optionId(i),
          class: "mention-option" + (i === open.active ? " is-active" : ""),
          role: "option",
          "aria-selected": i === open.active ? "true" : "false",
          "data-testid": "mention-option",
          "data-username": user.username,
        },
        [userAvatar(user.username), el("span", { class: "mention-name", text: user.username })]
      );
      // Keep the focus in the text box: a click picks without blurring it.
      option.addEventListener("mousedown", (event) => event.preventDefault());
      option.addEventListener("click", () => pick(i));
      list.appendChild(option);
    });
    list.hidden = false;
    ui.input.setAttribute("aria-activedescendant", optionId(open.active));
    const active = list.children[open.active];
    if (active) active.scrollIntoView({ block: "nearest" });
  }

  /** Look at the text before the caret: offer the members an `@name` being typed may mean. */
  function update() {
    const conv = currentConv(state);
    const input = ui.input;
    if (!conv || conv.kind !== "group" || input.selectionStart !== input.selectionEnd) {
      close();
      return;
    }
    const typed = mentionAt(input.value, input.selectionStart);
    const users = typed ? matchMembers(conv.members, typed.query, me.id) : [];
    if (!users.length) {
      close();
      return;
    }
    const before = open ? open.users[open.active] : null;
    const keep = before ? users.findIndex((u) => u.id === before.id) : -1;
    const shownBefore = open ? open.users.length : 0;
    open = { start: typed.start, caret: input.selectionStart, users, active: keep >= 0 ? keep : 0 };
    render();
    if (users.length !== shownBefore) {
      status.textContent = interpolate(
        ngettext(
          "%(count)s member matches. Up and down arrows to choose, Enter to mention, Escape to close.",
          "%(count)s members match. Up and down arrows to choose, Enter to mention, Escape to close.",
          users.length
        ),
        { count: formatNumber(users.length) }
      );
    }
  }

  function pick(i) {
    if (!open) return;
    const user = open.users[i];
    const next = completeMention(ui.input.value, open.start, open.caret, user.username);
    close();
    ui.input.value = next.text;
    ui.input.setSelectionRange(next.caret, next.caret);
    ui.input.focus();
    // The composer keeps its draft, size and typing signal as for any typing.
    ui.input.dispatchEvent(new Event("input", { bubbles: true }));
    status.textContent = interpolate(gettext("%(name)s mentioned."), { name: user.username });
  }

  /** Keys for the open list, taken before the composer sees them (Enter must not send). */
  function onKey(event) {
    if (!open || event.target !== ui.input || event.isComposing) return;
    const n = open.users.length;
    let handled = true;
    if (event.key === "ArrowDown") open.active = (open.active + 1) % n;
    else if (event.key === "ArrowUp") open.active = (open.active - 1 + n) % n;
    else if (event.key === "Enter" || event.key === "Tab") {
      if (event.shiftKey) handled = false;
      else pick(open.active);
    } else if (event.key === "Escape") close();
    else handled = false;
    if (!handled) return;
    event.preventDefault();
    event.stopPropagation();
    if (open) render();
  }

  /**
   * Fill a message's body: its text with links, and the people it names (the server's
   * `mentions`, found among the conversation's members) marked, the reader above all.
   */
  function fillBody(node, m) {
    const ids = Array.isArray(m.mentions) ? m.mentions : [];
    const conv = state.convs.get(m.conversation);
    const users = ids.length && conv ? (conv.members || []).filter((u) => ids.includes(u.id)) : [];
    for (const piece of mentionPieces(m.body, users)) {
      if (!piece.user) {
        linkify(node, piece.text);
        continue;
      }
      const mine = piece.user.id === me.id;
      node.appendChild(
        el("span", {
          class: "mention" + (mine ? " is-me" : ""),
          "data-testid": "mention",
          "data-user-id": piece.user.id,
          title: mine ? gettext("You are mentioned") : null,
          text: piece.text,
        })
      );
    }
  }

  return {
    close,
    fillBody,
    bind() {
      // Capture: the composer's own Enter (send) and Escape (cancel a reply) come after.
      ui.composer.addEventListener("keydown", onKey, true);
      ui.input.addEventListener("input", update);
      ui.input.addEventListener("click", update);
      ui.input.addEventListener("keyup", (event) => {
        if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) update();
      });
      ui.input.addEventListener("blur", () => setTimeout(() => document.activeElement !== ui.input && close(), 0));
    },
  };
}
