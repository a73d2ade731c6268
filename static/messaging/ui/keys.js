/*
 * Arrow keys inside lists and menus. Tab moves from one part of the page to the next; inside
 * the inbox the arrows go from row to row, inside the conversation from message to message
 * (and along a message's actions, like a toolbar), inside the options menus from item to
 * item. Home and End go to the first and the last.
 */

const MOVES = { ArrowDown: 1, ArrowUp: -1, Home: -Infinity, End: Infinity };

/** The item `key` leads to from `at` among `items` (the ends stop, they do not wrap). */
export function arrowTarget(items, at, key) {
  if (!items.length || !(key in MOVES)) return null;
  const step = MOVES[key];
  if (step === -Infinity) return items[0];
  if (step === Infinity) return items[items.length - 1];
  if (at < 0) return items[step > 0 ? 0 : items.length - 1];
  return items[Math.max(0, Math.min(items.length - 1, at + step))];
}

function plainKey(event) {
  return !(event.ctrlKey || event.metaKey || event.altKey || event.shiftKey || event.isComposing);
}

function shown(node) {
  return !node.hidden && !node.disabled && node.getClientRects().length > 0;
}

/** Keys typed into a field, or inside a message's editor or the emoji picker, are theirs. */
function owned(target) {
  return target.closest("input, textarea, select, [contenteditable], .edit-form, .emoji-picker, .msg-extra");
}

export function createArrowKeys(app) {
  const { ui } = app;

  function goTo(node) {
    if (!node) return;
    // A message takes the focus from the script only, not from Tab.
    if (!node.hasAttribute("tabindex") && !node.matches("a[href], button")) node.tabIndex = -1;
    node.focus({ preventScroll: true });
    node.scrollIntoView({ block: "nearest" });
  }

  function onInboxKey(event) {
    if (!plainKey(event) || !(event.key in MOVES)) return;
    const rows = Array.from(ui.inbox.querySelectorAll("a.inbox-item")).filter(shown);
    const target = arrowTarget(rows, rows.indexOf(event.target), event.key);
    if (!target) return;
    event.preventDefault();
    goTo(target);
  }

  function onMessagesKey(event) {
    const target = event.target;
    if (!(target instanceof Element) || !plainKey(event) || owned(target)) return;
    const li = target.closest('li.msg[data-testid="message"]');
    if (!li) return;
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      // A message's actions and then its reactions, in reading order: right goes forward, or
      // left on a right-to-left page.
      const actions = Array.from(li.querySelectorAll(".msg-actions button, .reactions button")).filter((b) => !b.disabled);
      if (!actions.length) return;
      const rtl = getComputedStyle(li).direction === "rtl";
      const forward = (event.key === "ArrowRight") !== rtl;
      const at = actions.indexOf(target);
      const next = at < 0 ? (forward ? actions[0] : null) : actions[at + (forward ? 1 : -1)];
      event.preventDefault();
      if (next) next.focus({ preventScroll: true });
      else if (at >= 0 && !forward) goTo(li); // back from the first action: the message itself
      return;
    }
    if (!(event.key in MOVES)) return;
    const all = Array.from(ui.messages.querySelectorAll('li.msg[data-testid="message"]')).filter(shown);
    const next = arrowTarget(all, all.indexOf(li), event.key);
    if (!next) return;
    event.preventDefault();
    goTo(next);
  }

  /** Up and down walk the items of an open options menu (a <details>), from its button too. */
  function menuKeys(menu) {
    if (!menu) return;
    menu.addEventListener("keydown", (event) => {
      if (!plainKey(event) || !(event.key in MOVES) || !(event.target instanceof Element)) return;
      if (event.target.closest("input:not([type=checkbox]), textarea, select")) return;
      if (!menu.open) {
        if (event.key !== "ArrowDown" || event.target.tagName !== "SUMMARY") return;
        menu.open = true;
      }
      const items = Array.from(menu.querySelectorAll(".menu-item, .menu-panel input[type=checkbox]")).filter(shown);
      if (!items.length) return;
      event.preventDefault();
      const next = arrowTarget(items, items.indexOf(event.target), event.key);
      if (next) next.focus();
    });
  }

  return {
    bind() {
      ui.inbox.addEventListener("keydown", onInboxKey);
      ui.messages.addEventListener("keydown", onMessagesKey);
      menuKeys(ui.menu);
      menuKeys(ui.settings);
    },
  };
}
