/*
 * The conversation pane's header (its name, avatar, who is online, the options menu's
 * entries), the line above the history (older messages to load, or where it begins), and
 * who is typing.
 */

import { currentConv, typingText } from "../../state/chat.js";
import { convName, directPeer } from "../../state/conversations.js";
import { isGone, NO_LONGER_HERE } from "../../text/errors.js";
import { fillAvatar } from "../dom.js";
import { formatNumber, gettext, interpolate, language, ngettext } from "../../text/i18n.js";

/** Draw the pane's header and the top of its history (`app.mute` is made after the pane: looked up when drawing). */
export function createPaneHeader({ app, ui, state, me }) {
  function renderHeader() {
    const cur = state.cur;
    if (!cur || !ui.title) return;
    const conv = currentConv(state);
    if (ui.menu) ui.menu.hidden = !conv || cur.gone;
    if (app.mute) app.mute.render();
    if (!conv) {
      ui.title.textContent = cur.goneName || gettext("Conversation");
      ui.status.textContent = "";
      ui.status.classList.remove("is-online");
      if (ui.menu) ui.menu.open = false;
      return;
    }
    ui.title.textContent = convName(me, conv);
    fillAvatar(ui.headAvatar, state, conv);
    const peer = directPeer(me, conv);
    const isGroup = conv.kind === "group";
    ui.menuGroup.hidden = !isGroup;
    ui.menuLeave.hidden = !isGroup;
    ui.menuBlock.hidden = !peer;
    if (peer) {
      ui.menuBlock.textContent = interpolate(state.blocked.has(peer.username) ? gettext("Unblock %(name)s") : gettext("Block %(name)s"), {
        name: peer.username,
      });
    }
    if (peer && state.blocked.has(peer.username)) {
      ui.status.textContent = gettext("Blocked");
      ui.status.dataset.online = "false";
      ui.status.classList.remove("is-online");
    } else if (isGone(peer)) {
      ui.status.textContent = NO_LONGER_HERE;
      ui.status.dataset.online = "false";
      ui.status.classList.remove("is-online");
    } else if (peer) {
      const online = state.online.has(peer.id);
      ui.status.textContent = state.link === "offline" ? "" : online ? gettext("Online") : gettext("Offline");
      ui.status.dataset.online = online ? "true" : "false";
      ui.status.classList.toggle("is-online", online);
    } else {
      const members = conv.members || [];
      const names = members.map((u) => (u.id === me.id ? gettext("you") : u.username));
      // A big group's inbox entry lists a few members only; its count is the whole group's.
      const n = Math.max(conv.member_count || 0, members.length);
      const listed = new Intl.ListFormat(language(), { style: "short", type: "unit" }).format(names);
      ui.status.textContent = interpolate(
        ngettext("%(count)s member · %(names)s", "%(count)s members · %(names)s", n),
        { count: formatNumber(n), names: listed },
      );
      ui.status.classList.remove("is-online");
      delete ui.status.dataset.online;
    }
  }

  function renderHistoryTop() {
    const cur = state.cur;
    if (!cur) return;
    if (cur.gone) {
      ui.loadOlder.hidden = true;
      ui.historyStart.hidden = true;
      return;
    }
    ui.loadOlder.hidden = !cur.loaded || !cur.hasMore;
    ui.loadOlder.disabled = cur.loadingOlder;
    ui.loadOlder.textContent = cur.loadingOlder ? gettext("Loading…") : gettext("Load older messages");
    ui.historyStart.hidden = !cur.loaded || cur.hasMore;
    if (!cur.loaded) {
      ui.historyStart.hidden = false;
      ui.historyStart.textContent = gettext("Loading messages…");
    } else {
      const peer = directPeer(me, currentConv(state));
      ui.historyStart.textContent = cur.msgs.size
        ? gettext("This is the beginning of the conversation.")
        : peer
          ? interpolate(gettext("No messages yet. Say hello to %(name)s!"), { name: peer.username })
          : gettext("No messages yet. Say hello!");
    }
  }

  function renderTyping() {
    if (!ui.typing) return;
    const text = state.cur ? typingText(state, state.cur.id) : "";
    ui.typing.textContent = text;
    ui.typing.classList.toggle("is-visible", Boolean(text));
  }

  return { renderHeader, renderHistoryTop, renderTyping };
}
