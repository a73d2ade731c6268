/* What the page tells the person apart from messages: the connection banner, a notice
 * above the composer, and what screen readers hear: incoming messages and changes in the
 * live region, the connection and one's own sends in the status region. */

import { el } from "./dom.js";
import { createBurst } from "../lib/burst.js";
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";

// Messages closer together than this are read out as one line (how many came).
const BURST_MS = 2000;

export function createNotices(app) {
  const { ui } = app;
  let noticeTimer = null;
  let bannerTimer = null;
  const bannerText = el("span", { class: "banner-text" });
  const bannerButton = el("button", {
    type: "button",
    class: "banner-button",
    "data-testid": "reconnect-now",
    text: gettext("Reconnect now"),
  });
  if (ui.banner) {
    ui.banner.replaceChildren(el("span", { class: "banner-dot", "aria-hidden": "true" }), bannerText, bannerButton);
  }
  bannerButton.addEventListener("click", () => app.socket.reconnectNow());
  let toldOffline = false; // the status region said the connection was lost

  function announce(text) {
    if (!ui.live) return;
    ui.live.appendChild(el("p", { text }));
    while (ui.live.childNodes.length > 3) ui.live.removeChild(ui.live.firstChild);
  }

  /** Say a change of state in the status region (read after what is being read). */
  function sayStatus(text) {
    if (!ui.statusRegion) return;
    // The same words again are a new change: replace the node so it is read again.
    ui.statusRegion.replaceChildren(el("span", { text }));
  }

  const burst = createBurst({
    windowMs: BURST_MS,
    say: announce,
    summary: (count) =>
      interpolate(ngettext("%(count)s new message", "%(count)s new messages", count), { count: formatNumber(count) }),
  });

  function hideNotice() {
    if (!ui.notice) return;
    clearTimeout(noticeTimer);
    ui.notice.hidden = true;
    ui.notice.textContent = "";
  }

  return {
    showNotice(text) {
      if (!ui.notice) return;
      ui.notice.textContent = text;
      ui.notice.hidden = false;
      clearTimeout(noticeTimer);
      noticeTimer = setTimeout(hideNotice, 8000);
    },
    hideNotice,
    /** Say something to screen readers (the last three things said stay in the region). */
    announce,
    /** Messages from others just arrived: read out, a burst as how many came. */
    incoming(texts) {
      burst.add(texts);
    },
    status: sayStatus,
    /**
     * The connection as the page shows it: "online", "connecting" or "offline". A short
     * outage shows no banner unless `immediate`.
     */
    setConnection(status, message, immediate) {
      ui.app.dataset.connection = status;
      clearTimeout(bannerTimer);
      bannerTimer = null;
      if (!ui.banner) return;
      if (status === "online") {
        if (toldOffline) sayStatus(gettext("Connected again."));
        toldOffline = false;
        ui.banner.hidden = true;
        ui.banner.dataset.state = "online";
        return;
      }
      const show = () => {
        bannerText.textContent = message;
        ui.banner.dataset.state = status;
        bannerButton.hidden = status === "connecting";
        ui.banner.hidden = false;
        toldOffline = true;
        sayStatus(message);
      };
      if (immediate || !ui.banner.hidden) show();
      else bannerTimer = setTimeout(show, 1500);
    },
  };
}
