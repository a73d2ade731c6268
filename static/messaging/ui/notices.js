/* What the page tells the person apart from messages: the connection banner, a notice
 * above the composer, and the screen reader's live region. */

import { el } from "./dom.js";

export function createNotices(app) {
  const { ui } = app;
  let noticeTimer = null;
  let bannerTimer = null;
  const bannerText = el("span", { class: "banner-text" });
  const bannerButton = el("button", {
    type: "button",
    class: "banner-button",
    "data-testid": "reconnect-now",
    text: "Reconnect now",
  });
  if (ui.banner) {
    ui.banner.replaceChildren(el("span", { class: "banner-dot", "aria-hidden": "true" }), bannerText, bannerButton);
  }
  bannerButton.addEventListener("click", () => app.socket.reconnectNow());

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
    announce(text) {
      if (!ui.live) return;
      ui.live.appendChild(el("p", { text }));
      while (ui.live.childNodes.length > 3) ui.live.removeChild(ui.live.firstChild);
    },
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
        ui.banner.hidden = true;
        ui.banner.dataset.state = "online";
        return;
      }
      const show = () => {
        bannerText.textContent = message;
        ui.banner.dataset.state = status;
        bannerButton.hidden = status === "connecting";
        ui.banner.hidden = false;
      };
      if (immediate || !ui.banner.hidden) show();
      else bannerTimer = setTimeout(show, 1500);
    },
  };
}
