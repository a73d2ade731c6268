/* Blocking and unblocking people, from the conversation menu, search results and group members. */

import * as api from "../net/api.js";
import { ACTIONS, httpErrorText } from "../text/errors.js";
import { gettext, interpolate } from "../text/i18n.js";
import { el } from "./dom.js";

export function createBlocks(app) {
  const { state } = app;

  function fillButton(button, username) {
    const blocked = state.blocked.has(username);
    button.textContent = blocked ? "Unblock" : "Block";
    button.setAttribute("aria-label", (blocked ? "Unblock " : "Block ") + username);
    button.dataset.blocked = blocked ? "true" : "false";
  }

  /** Everything that shows who is blocked, drawn again. */
  function renderAll() {
    app.inbox.render();
    app.pane.renderHeader();
    app.pane.renderComposerState();
    app.groups.render();
    for (const button of Array.from(document.querySelectorAll("[data-block-username]"))) {
      fillButton(button, button.dataset.blockUsername);
    }
  }

  /** Block or unblock someone; answer null, or what went wrong in plain words. */
  async function setBlocked(username, block) {
    const res = block ? await api.block(username) : await api.unblock(username);
    // Unblocking someone who was not blocked (in another tab, say) leaves them unblocked.
    if (!res.ok && !(res.status === 404 && !block)) {
      return httpErrorText(
        res,
        block ? ACTIONS.block(username) : ACTIONS.unblock(username),
        block ? interpolate(gettext("There’s no one called %(name)s."), { name: username }) : undefined
      );
    }
    if (block) state.blocked.add(username);
    else state.blocked.delete(username);
    renderAll();
    app.notices.announce(
      interpolate(block ? gettext("You blocked %(name)s.") : gettext("You unblocked %(name)s."), { name: username })
    );
    return null;
  }

  return {
    setBlocked,
    /** Fetch the block list. */
    async refresh() {
      const res = await api.listBlocks();
      if (!res.ok || !res.data || !Array.isArray(res.data.blocks)) return;
      state.blocked = new Set(res.data.blocks.map((u) => u.username));
      renderAll();
    },
    /** A Block/Unblock button for someone; `onError` shows what went wrong. */
    button(username, className, testid, onError) {
      const button = el("button", {
        type: "button",
        class: className,
        "data-testid": testid,
        "data-block-username": username,
      });
      fillButton(button, username);
      button.addEventListener("click", async (event) => {
        event.preventDefault();
        event.stopPropagation();
        button.disabled = true;
        const error = await setBlocked(username, !state.blocked.has(username));
        button.disabled = false;
        if (error && onError) onError(error);
      });
      return button;
    },
  };
}
