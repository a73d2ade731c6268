/*
 * The inbox: one row per conversation, newest activity first, with its avatar, name, time,
 * last message (or who is typing), unread badge, an "@" when someone mentioned the person
 * there and, for screen readers, the same in words.
 * The rows are drawn here only; the page's HTML holds the empty list and the data.
 */

import { directPeer, convName, draftPreview, previewText } from "../state/conversations.js";
import { draftKey } from "../state/storage.js";
import { totalUnread, typingText } from "../state/chat.js";
import { el, fillAvatar, timeEl } from "./dom.js";
import { mutedIcon } from "./mute.js";
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";

const BASE_TITLE = gettext("Chat");

export function createInbox(app) {
  const { ui, state, urls } = app;
  const rows = new Map(); // conversation id -> li

  function buildRow() {
    const li = el("li", { class: "inbox-row" });
    const a = el("a", { class: "inbox-item", "data-testid": "inbox-item" });
    const avatar = el("span", { class: "avatar", "aria-hidden": "true" });
    const name = el("span", { class: "inbox-name", "data-testid": "inbox-name" });
    const timeSlot = el("span", { class: "inbox-time-slot" });
    const preview = el("span", { class: "inbox-preview", dir: "auto", "data-testid": "inbox-preview" });
    // The count is said in words (the row's hidden text), not as a bare number before them.
    const badge = el("span", { class: "badge", "data-testid": "unread-badge", "aria-hidden": "true" });
    const mention = el("span", { class: "badge badge-mention", "data-testid": "mention-badge", "aria-hidden": "true", text: "@" });
    const tag = el("span", { class: "inbox-tag", "data-testid": "inbox-blocked", text: gettext("Blocked"), hidden: true });
    const muted = mutedIcon({ class: "inbox-muted", "data-testid": "inbox-muted", hidden: true });
    const sr = el("span", { class: "visually-hidden inbox-sr" });
    a.append(
      avatar,
      el("span", { class: "inbox-main" }, [
        el("span", { class: "inbox-top" }, [name, timeSlot]),
        el("span", { class: "inbox-bottom" }, [preview, tag, muted, mention, badge]),
      ]),
      sr
    );
    li.appendChild(a);
    li._parts = { a, avatar, name, timeSlot, preview, badge, mention, tag, muted, sr };
    return li;
  }

  function fillRow(li, conv) {
    const p = li._parts;
    const active = state.cur !== null && state.cur.id === conv.id;
    const unread = conv.unread || 0;
    p.a.href = urls.conversation(conv.id);
    p.a.dataset.conversationId = String(conv.id);
    p.a.dataset.unread = String(unread);
    p.a.dataset.kind = conv.kind;
    p.a.classList.toggle("is-active", active);
    p.a.classList.toggle("has-unread", unread > 0);
    // Muted: the unread count stays, quieter, beside a muted bell.
    p.a.classList.toggle("is-muted", Boolean(conv.muted));
    p.a.dataset.muted = conv.muted ? "true" : "false";
    p.muted.hidden = !conv.muted;
    if (active) p.a.setAttribute("aria-current", "page");
    else p.a.removeAttribute("aria-current");
    fillAvatar(p.avatar, state, conv);
    p.name.textContent = convName(state.me, conv);
    p.timeSlot.replaceChildren();
    const stamp = conv.last_message ? conv.last_message.created_at : conv.created_at;
    if (stamp) p.timeSlot.appendChild(timeEl(stamp, true, "inbox-time"));
    const typing = typingText(state, conv.id);
    // A draft left in another conversation shows in its row; the open one's is in the box.
    const draft = typing || active ? "" : draftPreview(app.store.get(draftKey(state.me.id, conv.id), ""));
    p.preview.classList.toggle("is-typing", Boolean(typing));
    p.preview.classList.toggle("is-draft", Boolean(draft));
    p.preview.textContent = typing || draft || previewText(state.me, conv);
    p.badge.textContent = unread > 99 ? "99+" : String(unread);
    p.badge.hidden = unread === 0;
    const mentions = conv.mentions || 0;
    p.mention.hidden = mentions === 0;
    p.mention.title = interpolate(ngettext("You were mentioned", "You were mentioned %(count)s times", mentions), {
      count: formatNumber(mentions),
    });
    p.a.dataset.mentions = String(mentions);
    const peer = directPeer(state.me, conv);
    const blocked = Boolean(peer && state.blocked.has(peer.username));
    p.tag.hidden = !blocked;
    const bits = [];
    if (blocked) bits.push(gettext("blocked"));
    if (peer && state.online.has(peer.id)) bits.push(gettext("online"));
    if (unread) {
      bits.push(interpolate(ngettext("%(count)s unread message", "%(count)s unread messages", unread), { count: formatNumber(unread) }));
    }
    if (mentions) {
      bits.push(interpolate(ngettext("%(count)s mention of you", "%(count)s mentions of you", mentions), { count: formatNumber(mentions) }));
    }
    p.sr.textContent = bits.length ? gettext(", ") + bits.join(gettext(", ")) : "";
  }

  function updateTitle() {
    const total = totalUnread(state);
    document.title = total > 0 ? interpolate(gettext("(%(count)s) %(title)s"), { count: formatNumber(total), title: BASE_TITLE }) : BASE_TITLE;
  }

  return {
    /** Draw the list as the state has it, keeping the keyboard focus on its row. */
    render() {
      const focused = document.activeElement;
      const keepFocus =
        focused && ui.inbox.contains(focused) && focused.dataset ? focused.dataset.conversationId || null : null;
      const wanted = new Set(state.order);
      for (const [id, li] of rows) {
        if (!wanted.has(id)) {
          li.remove();
          rows.delete(id);
        }
      }
      state.order.forEach((id, index) => {
        let li = rows.get(id);
        if (!li) {
          li = buildRow();
          rows.set(id, li);
        }
        fillRow(li, state.convs.get(id));
        if (ui.inbox.children[index] !== li) ui.inbox.insertBefore(li, ui.inbox.children[index] || null);
      });
      if (keepFocus && !ui.inbox.contains(document.activeElement)) {
        const again = ui.inbox.querySelector('[data-conversation-id="' + CSS.escape(keepFocus) + '"]');
        if (again) again.focus();
      }
      if (ui.inboxEmpty) ui.inboxEmpty.hidden = state.order.length > 0;
      updateTitle();
    },
    /** Redraw one conversation's row (its typing line changed). */
    renderRow(convId) {
      const li = rows.get(convId);
      const conv = state.convs.get(convId);
      if (li && conv) fillRow(li, conv);
    },
    /** The link of a conversation's row, to give it the focus. */
    link(convId) {
      const li = rows.get(convId);
      return li ? li._parts.a : null;
    },
  };
}
