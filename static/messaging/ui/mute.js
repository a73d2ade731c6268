/*
 * Mute from the chat page: the open conversation's menu mutes or unmutes it for this
 * person (PATCH /api/conversations/<id>/ {"muted"}), its header and inbox row show a
 * muted bell. The change shows at once here; if the server refuses it, it is undone and
 * the person is told why. The server tells this person's other tabs and devices with
 * `conversation.updated` (main.js applies it like any other change of a conversation).
 */

import { setMuted } from "../net/api.js";
import { currentConv } from "../state/chat.js";
import { ACTIONS, httpErrorText } from "../text/errors.js";
import { gettext } from "../text/i18n.js";
import { el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
// A bell with a stroke through it.
const BELL = "M12 3a6 6 0 0 0-6 6v3.2L4.6 15a1 1 0 0 0 .9 1.5h13a1 1 0 0 0 .9-1.5L18 12.2V9a6 6 0 0 0-6-6zm-2.2 15a2.3 2.3 0 0 0 4.4 0z";
const STROKE = "M4 3.5l16.5 16.5";

/** The muted bell: an image whose accessible name is "Muted". */
export function mutedIcon(attrs) {
  const svg = document.createElementNS(SVG, "svg");
  for (const [name, value] of Object.entries({ viewBox: "0 0 24 24", width: "14", height: "14", focusable: "false" })) {
    svg.setAttribute(name, value);
  }
  svg.setAttribute("aria-hidden", "true");
  const bell = document.createElementNS(SVG, "path");
  bell.setAttribute("d", BELL);
  bell.setAttribute("fill", "currentColor");
  bell.setAttribute("opacity", ".55");
  const stroke = document.createElementNS(SVG, "path");
  stroke.setAttribute("d", STROKE);
  stroke.setAttribute("stroke", "currentColor");
  stroke.setAttribute("stroke-width", "2.2");
  stroke.setAttribute("stroke-linecap", "round");
  svg.append(bell, stroke);
  const label = gettext("Muted");
  return el("span", { role: "img", "aria-label": label, title: label, ...attrs }, [svg]);
}

export function createMute(app) {
  const { ui, state } = app;
  const headIcon = mutedIcon({ class: "conv-muted", "data-testid": "conversation-muted", hidden: true });
  if (ui.menu) ui.menu.before(headIcon);
  let busy = false;

  /** Show the open conversation's state in its header and menu. */
  function render() {
    const conv = state.cur && !state.cur.gone ? currentConv(state) : null;
    headIcon.hidden = !(conv && conv.muted);
    if (!ui.menuMute) return;
    ui.menuMute.hidden = !conv;
    if (!conv) return;
    ui.menuMute.textContent = conv.muted ? gettext("Unmute conversation") : gettext("Mute conversation");
    ui.menuMute.disabled = busy;
  }

  /** Say the new state everywhere this page shows it. */
  function show() {
    render();
    app.inbox.render();
  }

  async function toggle() {
    const conv = currentConv(state);
    if (!conv || busy) return;
    const wanted = !conv.muted;
    conv.muted = wanted;
    busy = true;
    show();
    const res = await setMuted(conv.id, wanted);
    busy = false;
    if (res.status === 401) return;
    if (res.ok && res.data && typeof res.data.muted === "boolean") {
      conv.muted = res.data.muted;
      show();
      app.notices.announce(conv.muted ? gettext("Conversation muted.") : gettext("Conversation unmuted."));
      return;
    }
    conv.muted = !wanted;
    show();
    const action = wanted ? ACTIONS.mute() : ACTIONS.unmute();
    app.notices.showNotice(httpErrorText(res, action));
  }

  return {
    render,
    bind() {
      if (!ui.menuMute) return;
      ui.menuMute.addEventListener("click", () => {
        if (ui.menu) {
          ui.menu.open = false;
          // The item is hidden with its menu: the keyboard goes back to the menu's button.
          ui.menu.querySelector("summary").focus();
        }
        toggle();
      });
    },
  };
}
