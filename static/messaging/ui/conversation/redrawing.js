/*
 * A message drawn again (an edit, a reaction, a delete) takes the old drawing's place
 * without taking away what the person was doing there: a report being written (or its
 * "thanks"), an edit under way with its caret, the search highlight, and the keyboard focus.
 */

import { markFound } from "./highlight.js";

/**
 * Put `node` in the place of `old`, keeping what the person does there. `editing`: the
 * message is being edited (its form moves across); `prefer`: the action to focus if the
 * focus was inside (else the same control, or the first action).
 */
export function replaceMessage(old, node, { deleted = false, editing = false, prefer = null } = {}) {
  const focused = document.activeElement;
  const caret =
    focused && (focused.tagName === "TEXTAREA" || focused.tagName === "INPUT") && old.contains(focused)
      ? [focused.selectionStart, focused.selectionEnd]
      : null;
  if (!deleted) for (const extra of old.querySelectorAll(":scope > .msg-extra")) node.appendChild(extra);
  const editForm = editing ? old.querySelector(":scope > .edit-form") : null;
  if (editForm) {
    node.classList.add("is-editing");
    const row = node.querySelector(":scope > .msg-row");
    row.hidden = true;
    row.after(editForm);
  }
  if (old.classList.contains("is-found")) markFound(node);
  const hadFocus = old.contains(focused);
  old.replaceWith(node);
  if (focused && node.contains(focused) && document.activeElement !== focused) {
    // Moved across with its form: the person goes on typing where they were.
    focused.focus({ preventScroll: true });
    if (caret && caret[0] !== null) focused.setSelectionRange(caret[0], caret[1]);
  } else if (hadFocus && focused === old) {
    node.tabIndex = -1;
    node.focus({ preventScroll: true });
  } else if (hadFocus) focusWithin(node, prefer || sameControl(focused));
}

/**
 * Keep the keyboard on a message that was drawn again while it had the focus (an edit
 * saved, a delete confirmed): on the action `prefer` names, or its first, or on the
 * message itself.
 */
function focusWithin(node, prefer) {
  const action =
    (prefer && node.querySelector('.msg-actions [data-testid="' + prefer + '"], .reactions [data-testid="' + prefer + '"]')) ||
    node.querySelector(".msg-actions button");
  if (action) action.focus({ preventScroll: true });
  // On a touch screen the actions are hidden until tapped, and take no focus.
  if (action && document.activeElement === action) return;
  node.tabIndex = -1;
  node.focus({ preventScroll: true });
}

/** What names the control that had the focus, to find it again in the new drawing. */
function sameControl(focused) {
  const testid = focused.dataset ? focused.dataset.testid : null;
  if (!testid) return null;
  return focused.dataset.emoji ? testid + '"][data-emoji="' + CSS.escape(focused.dataset.emoji) : testid;
}
