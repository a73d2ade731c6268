/*
 * Where the message list is scrolled: pinned to the newest message until the reader scrolls
 * up, brought to a message or to the "New messages" divider, and the button that jumps
 * back down (with how many came meanwhile).
 */

import { formatNumber, gettext, interpolate, ngettext } from "../../text/i18n.js";

/** Keep the message list scrolled where the reader expects it. */
export function createScrolling({ ui, state }) {
  let stickToBottom = true;

  function isNearBottom() {
    const s = ui.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  /** Follow new messages only if the reader is (still) at the bottom. */
  function rememberPosition() {
    stickToBottom = isNearBottom();
  }

  function scrollToBottom() {
    ui.scroller.scrollTop = ui.scroller.scrollHeight;
    stickToBottom = true;
    if (state.cur) state.cur.unseenBelow = 0;
    ui.jump.hidden = true;
  }

  /** Scroll as little as shows a message whole, or from its top when it is too tall. */
  function bringIntoView(li) {
    const view = ui.scroller.getBoundingClientRect();
    const box = li.getBoundingClientRect();
    const margin = 8;
    if (box.top < view.top + margin || box.height > view.height - 2 * margin) {
      ui.scroller.scrollTop += box.top - view.top - margin;
    } else if (box.bottom > view.bottom - margin) {
      ui.scroller.scrollTop += box.bottom - view.bottom + margin;
    }
    rememberPosition();
  }

  /** Show the newest messages, or the "New messages" divider if it would be scrolled past. */
  function scrollToFirstUnread() {
    scrollToBottom();
    const sep = ui.messages.querySelector(".unread-sep");
    if (!sep) return;
    const above = sep.getBoundingClientRect().top - ui.scroller.getBoundingClientRect().top;
    if (above < 0) {
      ui.scroller.scrollTop += above - 8;
      stickToBottom = false;
    }
  }

  function showJump() {
    const cur = state.cur;
    if (cur && cur.detached) {
      ui.jump.textContent =
        cur.unseenBelow > 0
          ? interpolate(gettext("Jump to the latest (%(count)s new) ↓"), { count: formatNumber(cur.unseenBelow) })
          : gettext("Jump to the latest messages ↓");
    } else {
      ui.jump.textContent =
        cur && cur.unseenBelow > 1
          ? interpolate(ngettext("%(count)s new message ↓", "%(count)s new messages ↓", cur.unseenBelow), {
              count: formatNumber(cur.unseenBelow),
            })
          : gettext("New message ↓");
    }
    ui.jump.hidden = false;
  }

  /** Stay with the newest message as sizes change; `onNearTop` loads older ones on top. */
  function bind(onNearTop) {
    // Stay pinned to the newest message while the content or the viewport changes size
    // (a "Seen" marker, an edit, the composer growing), unless the reader scrolled up.
    if (typeof ResizeObserver === "function") {
      const pin = new ResizeObserver(() => {
        if (stickToBottom && state.cur) ui.scroller.scrollTop = ui.scroller.scrollHeight;
      });
      pin.observe(ui.messages);
      pin.observe(ui.scroller);
    }
    ui.scroller.addEventListener(
      "scroll",
      () => {
        rememberPosition();
        if (ui.scroller.scrollTop < 200) onNearTop();
        if (isNearBottom() && !(state.cur && state.cur.detached)) {
          if (state.cur) state.cur.unseenBelow = 0;
          ui.jump.hidden = true;
        }
      },
      { passive: true }
    );
  }

  return { isNearBottom, rememberPosition, scrollToBottom, bringIntoView, scrollToFirstUnread, showJump, bind };
}
