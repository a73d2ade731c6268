/*
 * What is drawn between and under the messages: day separators, the "New messages"
 * divider, one sender's run grouped, and the "Seen" marker. Drawn again from scratch each
 * time the list changes, from what the list's elements say of themselves.
 */

import { dayLabel } from "../../text/time.js";
import { el } from "../dom.js";
import { gettext } from "../../text/i18n.js";

// A message this soon after the one before from the same sender joins its run.
const RUN_GAP_MS = 5 * 60 * 1000;

/** Draw the day separators and the "New messages" divider after `dividerAfter`, and group runs. */
export function drawSeparators(list, { dividerAfter, myId }) {
  for (const sep of Array.from(list.querySelectorAll(".day-sep, .unread-sep"))) sep.remove();
  let dividerPlaced = dividerAfter === null;
  let prevDay = null;
  let prevSender = null;
  let prevTs = 0;
  for (const li of Array.from(list.children)) {
    const ts = Number(li.dataset.ts) || 0;
    const date = new Date(ts);
    const day = date.toDateString();
    if (day !== prevDay) {
      list.insertBefore(
        el("li", { class: "day-sep", "data-testid": "day-separator" }, [el("span", { text: dayLabel(date) })]),
        li
      );
      prevSender = null;
    }
    if (li.dataset.kind === "system") {
      li.classList.remove("grouped");
      prevDay = day;
      prevSender = null;
      continue;
    }
    if (
      !dividerPlaced &&
      li.dataset.state === "sent" &&
      li.dataset.deleted !== "true" &&
      li.dataset.senderId !== String(myId) &&
      Number(li.dataset.id) > dividerAfter
    ) {
      list.insertBefore(
        el(
          "li",
          {
            class: "unread-sep",
            "aria-label": gettext("New messages"),
            "data-testid": "new-messages-divider",
          },
          [el("span", { text: gettext("New messages") })]
        ),
        li
      );
      dividerPlaced = true;
      prevSender = null;
    }
    const grouped = prevSender === li.dataset.senderId && ts - prevTs < RUN_GAP_MS;
    li.classList.toggle("grouped", grouped);
    prevDay = day;
    prevSender = li.dataset.senderId;
    prevTs = ts;
  }
}

/** Put the "Seen" marker (`{id, text}` or null) under its message, and nowhere else. */
export function drawSeen(list, marker, element) {
  for (const node of Array.from(list.querySelectorAll(".msg-seen"))) node.remove();
  if (!marker) return;
  const li = element(marker.id);
  if (li) li.appendChild(el("div", { class: "msg-seen", "data-testid": "seen-marker", text: marker.text }));
}
