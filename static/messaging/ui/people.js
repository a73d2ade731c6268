/* Finding people by username: the sidebar's "Start a conversation" and the pickers of the group dialogs. */

import * as api from "../net/api.js";
import { debounce } from "../lib/debounce.js";
import { el, plainClick, userAvatar } from "./dom.js";
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";

/** The people whose names match q; null when the lookup failed or is no longer wanted (a newer one started). */
async function lookUpUsers(q, stillWanted) {
  let data;
  try {
    data = await api.findUsers(q);
  } catch (e) {
    return null;
  }
  if (!stillWanted()) return null;
  return (data && data.users) || [];
}

/** What a screen reader hears when a list of people comes back. */
function foundStatus(count) {
  return count
    ? interpolate(
        ngettext(
          "%(count)s person found. Press the down arrow to choose.",
          "%(count)s people found. Press the down arrow to choose.",
          count
        ),
        { count: formatNumber(count) }
      )
    : gettext("No one found.");
}

/** Down and up arrows walk a list of results and back up to its input; true when the key was one of them. */
export function walkResults(event, items, input) {
  const at = items.indexOf(document.activeElement);
  if (event.key === "ArrowDown") {
    event.preventDefault();
    if (items.length) items[Math.min(items.length - 1, at + 1)].focus();
  } else if (event.key === "ArrowUp") {
    event.preventDefault();
    if (at <= 0) input.focus();
    else items[at - 1].focus();
  } else {
    return false;
  }
  return true;
}

/** The sidebar's search for someone to write to. */
export function createPeopleSearch(app) {
  const { ui, state, urls } = app;
  let searchSeq = 0;

  function status(text) {
    const node = document.getElementById("user-search-status");
    if (node) node.textContent = text;
  }

  function close() {
    ui.searchResults.hidden = true;
    ui.searchResults.replaceChildren();
    status("");
  }

  const run = debounce(async () => {
    const q = ui.search.value.trim();
    const mySeq = ++searchSeq;
    if (!q) {
      close();
      return;
    }
    const users = await lookUpUsers(q, () => mySeq === searchSeq);
    if (!users) return;
    ui.searchResults.replaceChildren();
    const mine = app.me.username.toLowerCase();
    const isMe = mine === q.toLowerCase() || (!users.length && mine.includes(q.toLowerCase()));
    if (isMe) {
      // The finder never offers oneself; say so rather than that no one is there.
      ui.searchResults.appendChild(
        el("li", {
          class: "search-none search-self",
          "data-testid": "user-search-self",
          text: interpolate(gettext("That’s you, %(name)s. Search for someone else to write to."), { name: app.me.username }),
        })
      );
    } else if (!users.length) {
      ui.searchResults.appendChild(el("li", { class: "search-none", text: interpolate(gettext("No one found named “%(name)s…”"), { name: q }) }));
    }
    for (const user of users) {
      const a = el("a", {
        class: "search-result",
        href: urls.newDirect(user.username),
        "data-testid": "user-search-result",
        "data-username": user.username,
      });
      a.append(userAvatar(user.username), el("span", { class: "search-name", text: user.username }));
      if (state.online.has(user.id)) a.appendChild(el("span", { class: "search-online", text: gettext("online") }));
      a.addEventListener("click", (event) => {
        if (!plainClick(event)) return;
        // Their conversation, or an empty one for them that exists once written in.
        event.preventDefault();
        ui.search.value = "";
        close();
        app.pane.openPerson(user, { push: true, focus: true });
      });
      const li = el("li", { class: "search-item" }, [a]);
      li.appendChild(
        app.blocks.button(user.username, "msg-action search-block", "user-block-toggle", (text) => {
          li.after(el("li", { class: "search-none search-failed", role: "alert", text }));
        })
      );
      ui.searchResults.appendChild(li);
    }
    ui.searchResults.hidden = false;
    status(isMe && !users.length ? gettext("That’s you. Search for someone else.") : foundStatus(users.length));
  }, 150);

  function keys(event) {
    const links = Array.from(ui.searchResults.querySelectorAll("a"));
    if (walkResults(event, links, ui.search)) return;
    if (event.key === "Escape") {
      ui.search.value = "";
      close();
      ui.search.focus();
    } else if (event.key === "Enter" && document.activeElement === ui.search && links.length) {
      event.preventDefault();
      links[0].click();
    }
  }

  return {
    close,
    bind() {
      ui.search.addEventListener("input", run);
      ui.search.addEventListener("keydown", keys);
      ui.searchResults.addEventListener("keydown", keys);
      document.addEventListener("click", (event) => {
        if (!event.target.closest(".search")) close();
      });
    },
  };
}

/** A field to pick people by username, as chips; `exclude()` names those not to offer. */
export function makePicker(root, exclude) {
  const base = root.id;
  const chips = el("ul", { class: "chips", "data-testid": "people-picked", "aria-label": gettext("Chosen people") });
  const input = el("input", {
    id: base + "-input",
    class: "text-input",
    type: "text",
    autocomplete: "off",
    autocapitalize: "none",
    spellcheck: "false",
    placeholder: gettext("Type a username…"),
    "aria-controls": base + "-results",
    "aria-describedby": base + "-hint",
    "data-testid": "people-picker-input",
  });
  const results = el("ul", {
    id: base + "-results",
    class: "picker-results",
    "aria-label": gettext("People found"),
    "data-testid": "people-picker-results",
    hidden: true,
  });
  const status = el("span", { class: "visually-hidden", role: "status" });
  root.replaceChildren(
    el("label", { class: "field-label", for: base + "-input", text: root.dataset.label || "People" }),
    chips,
    el("div", { class: "picker-box" }, [input, results]),
    el("p", { class: "field-hint", id: base + "-hint", text: root.dataset.hint || "" }),
    status
  );
  const picked = [];
  let seq = 0;

  function renderChips() {
    chips.replaceChildren();
    for (const name of picked) {
      const remove = el("button", {
        type: "button",
        class: "chip-remove",
        "aria-label": interpolate(gettext("Remove %(name)s"), { name }),
        title: gettext("Remove"),
        "data-testid": "people-picked-remove",
        text: "×",
      });
      remove.addEventListener("click", () => {
        const at = picked.indexOf(name);
        if (at >= 0) picked.splice(at, 1);
        renderChips();
        status.textContent = interpolate(gettext("%(name)s removed."), { name });
        input.focus();
      });
      chips.appendChild(
        el("li", { class: "chip", "data-testid": "people-picked-item", "data-username": name }, [
          el("span", { class: "chip-name", text: name }),
          remove,
        ])
      );
    }
    chips.hidden = picked.length === 0;
  }

  function hideResults() {
    seq += 1;
    results.hidden = true;
    results.replaceChildren();
  }

  function pick(name) {
    if (!picked.includes(name)) picked.push(name);
    renderChips();
    input.value = "";
    hideResults();
    status.textContent = interpolate(ngettext("%(name)s added. %(count)s person chosen.", "%(name)s added. %(count)s people chosen.", picked.length), {
      name,
      count: formatNumber(picked.length),
    });
    input.focus();
  }

  const lookUp = debounce(async () => {
    const q = input.value.trim();
    const mine = ++seq;
    if (!q) {
      hideResults();
      return;
    }
    const found = await lookUpUsers(q, () => mine === seq);
    if (!found) return;
    const skip = exclude ? exclude() : new Set();
    const users = found.filter((u) => !picked.includes(u.username) && !skip.has(u.username));
    results.replaceChildren();
    if (!users.length) results.appendChild(el("li", { class: "search-none", text: interpolate(gettext("No one else found named “%(name)s…”"), { name: q }) }));
    for (const user of users) {
      const button = el("button", {
        type: "button",
        class: "picker-result",
        "data-testid": "people-picker-result",
        "data-username": user.username,
      });
      button.append(userAvatar(user.username), el("span", { class: "search-name", text: user.username }));
      button.addEventListener("click", () => pick(user.username));
      results.appendChild(el("li", {}, [button]));
    }
    results.hidden = false;
    status.textContent = foundStatus(users.length);
  }, 150);

  input.addEventListener("input", lookUp);
  const keys = (event) => {
    const buttons = Array.from(results.querySelectorAll("button"));
    if (walkResults(event, buttons, input)) return;
    if (event.key === "Escape" && !results.hidden) {
      event.preventDefault(); // close the list, not the dialog
      input.value = "";
      hideResults();
      input.focus();
    } else if (event.key === "Enter" && document.activeElement === input) {
      // Enter picks the first match, and never submits the form half-way.
      event.preventDefault();
      if (buttons.length) buttons[0].click();
    }
  };
  input.addEventListener("keydown", keys);
  results.addEventListener("keydown", keys);
  renderChips();

  return {
    picked: () => picked.slice(),
    input,
    clear() {
      picked.length = 0;
      input.value = "";
      hideResults();
      renderChips();
      status.textContent = "";
    },
  };
}
