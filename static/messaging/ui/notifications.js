/*
 * Browser notifications: when the browser allows them and this tab is hidden. The two
 * settings live in the browser's storage, per person: notifications on/off (on by default
 * once the browser grants permission) and previews (the message text) on/off.
 */

import { convName, gist } from "../state/conversations.js";
import { notifyKey, previewKey } from "../state/storage.js";
import { gettext, interpolate } from "../text/i18n.js";

export function createNotifications(app) {
  const { ui, me, store } = app;
  const shown = new Map(); // conversation id -> Notification

  function permission() {
    return typeof window.Notification === "function" ? window.Notification.permission : "unsupported";
  }

  function on() {
    return permission() === "granted" && store.get(notifyKey(me.id), true) !== false;
  }

  function previewsOn() {
    return store.get(previewKey(me.id), true) !== false;
  }

  function renderSettings() {
    if (!ui.notifyToggle || !ui.previewToggle) return;
    const allowed = permission();
    ui.notifyToggle.checked = on();
    ui.notifyToggle.disabled = allowed === "unsupported";
    ui.previewToggle.checked = previewsOn();
    let status = "";
    if (allowed === "unsupported") status = gettext("This browser can’t show notifications.");
    else if (allowed === "denied") {
      status = gettext("Notifications are blocked for this site. Allow them in your browser’s site settings.");
    }
    if (ui.notifyStatus) ui.notifyStatus.textContent = status;
  }

  async function onNotifyToggle() {
    if (!ui.notifyToggle.checked) {
      store.set(notifyKey(me.id), false);
      renderSettings();
      return;
    }
    store.set(notifyKey(me.id), true);
    if (permission() === "default") {
      try {
        await window.Notification.requestPermission();
      } catch (e) {
        /* an old browser or a refused prompt: the status line says what happened */
      }
    }
    renderSettings();
  }

  return {
    renderSettings,
    /** A new message from someone else; shown only while the tab is hidden, and for a
     * muted conversation only when it mentions this person. */
    show(conv, m) {
      if (document.visibilityState !== "hidden" || !on()) return;
      if (conv && conv.muted && !(m.mentions || []).includes(me.id)) return;
      const title =
        conv && conv.kind === "group"
          ? interpolate(gettext("%(name)s in %(group)s"), { name: m.sender.username, group: convName(me, conv) })
          : m.sender.username;
      const body = previewsOn() ? gist(m, 160) : gettext("New message");
      let note;
      try {
        // Text only: notifications never interpret markup.
        note = new window.Notification(title, { body, tag: "chat-conversation-" + m.conversation, renotify: true });
      } catch (e) {
        return; // e.g. Android Chrome, which only allows notifications from a service worker
      }
      shown.set(m.conversation, note);
      note.onclick = () => {
        window.focus();
        app.pane.openConversation(m.conversation, { push: true, focus: true });
        note.close();
      };
      note.onclose = () => {
        if (shown.get(m.conversation) === note) shown.delete(m.conversation);
      };
    },
    /** The person is looking at the conversation: its notification has done its job. */
    close(convId) {
      const note = shown.get(convId);
      if (!note) return;
      shown.delete(convId);
      try {
        note.close();
      } catch (e) {
        /* already gone */
      }
    },
    bind() {
      if (ui.notifyToggle) ui.notifyToggle.addEventListener("change", onNotifyToggle);
      if (ui.previewToggle) {
        ui.previewToggle.addEventListener("change", () => {
          store.set(previewKey(me.id), ui.previewToggle.checked);
          renderSettings();
        });
      }
      if (ui.settings) ui.settings.addEventListener("toggle", renderSettings);
    },
  };
}
