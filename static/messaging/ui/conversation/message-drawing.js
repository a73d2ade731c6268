/*
 * One message drawn: its bubble (quote, text folded when long, files, time, "edited"), its
 * actions (reply, react; edit and delete one's own, report others'), its reactions; a
 * system line; and a send still in the outbox, with its status and, when it failed, why
 * and what to do.
 */

import { directPeer } from "../../state/conversations.js";
import { errorText } from "../../text/errors.js";
import { clockTime, fullTime, ms } from "../../text/time.js";
import { isLongMessage } from "../../text/words.js";
import { messageTimes } from "../../state/written.js";
import { el, linkify, timeEl } from "../dom.js";
import { gettext, interpolate } from "../../text/i18n.js";

/**
 * Build messages' elements. The collaborators (`app.reply`, `app.actions`, …) are looked
 * up when drawing: some are made after the pane.
 */
export function createMessageDrawing({ app, ui, state, me }) {
  const unfolded = new Set(); // ids (or client_ids) of long messages the reader opened

  function isGroupCur() {
    const conv = state.cur ? state.convs.get(state.cur.id) : null;
    return Boolean(conv && conv.kind === "group");
  }

  function buildSystemEl(m) {
    const li = el("li", {
      class: "msg system",
      "data-testid": "system-message",
      "data-id": m.id,
      "data-kind": "system",
      "data-state": "sent",
      "data-sender-id": m.sender.id,
      "data-ts": ms(m.created_at),
    });
    const date = new Date(ms(m.created_at));
    li.appendChild(
      el("p", { class: "system-text" }, [
        el("span", { "data-testid": "system-text", text: m.body }),
        el("time", { class: "system-time", datetime: m.created_at, title: fullTime(date), text: clockTime(date) }),
      ])
    );
    return li;
  }

  /**
   * A long body shows folded, with a button to show it all (and fold it again); answers
   * the button, or null for a body short enough to show whole.
   */
  function foldIfLong(body, key, text) {
    if (!isLongMessage(text)) return null;
    const open = unfolded.has(key);
    body.classList.toggle("is-folded", !open);
    body.id = "msg-body-" + key;
    const toggle = el("button", {
      type: "button",
      class: "link-button msg-more",
      "data-testid": "message-more",
      "aria-controls": body.id,
      "aria-expanded": open ? "true" : "false",
      text: open ? gettext("Show less") : gettext("Show more"),
    });
    toggle.addEventListener("click", (event) => {
      event.stopPropagation();
      const opening = body.classList.contains("is-folded");
      body.classList.toggle("is-folded", !opening);
      if (opening) unfolded.add(key);
      else unfolded.delete(key);
      toggle.setAttribute("aria-expanded", opening ? "true" : "false");
      toggle.textContent = opening ? gettext("Show less") : gettext("Show more");
    });
    return toggle;
  }

  function actionButton(testid, label, text, onClick, extra) {
    const button = el("button", { type: "button", class: "msg-action", "data-testid": testid, "aria-label": label, title: label, text, ...extra });
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      onClick(button);
    });
    return button;
  }

  /** What can be done to a message: answer it, react to it; edit and delete one's own, report others'. */
  function buildActions(m, mine) {
    const name = { name: m.sender.username };
    const buttons = [
      actionButton(
        "message-reply",
        mine ? gettext("Reply to your message") : interpolate(gettext("Reply to the message from %(name)s"), name),
        gettext("Reply"),
        () => app.reply.start(m.id),
        {
          title: gettext("Reply (R)"),
          "aria-keyshortcuts": "R",
        }
      ),
      actionButton(
        "message-react",
        mine ? gettext("React to your message") : interpolate(gettext("React to the message from %(name)s"), name),
        gettext("React"),
        (button) => app.reactions.open(m.id, button),
        { title: gettext("Add a reaction"), "aria-haspopup": "dialog" }
      ),
    ];
    if (!mine) {
      buttons.push(
        actionButton(
          "message-report",
          interpolate(gettext("Report the message from %(name)s"), name),
          gettext("Report"),
          () => app.actions.startReport(m.id),
          { title: gettext("Report to the moderators") }
        )
      );
      return el("div", { class: "msg-actions" }, buttons);
    }
    buttons.push(
      actionButton("message-edit", gettext("Edit message"), gettext("Edit"), () => app.actions.startEdit(m.id), {
        title: gettext("Edit"),
      }),
      actionButton("message-delete", gettext("Delete message"), gettext("Delete"), () => app.actions.askDelete(m.id), {
        title: gettext("Delete"),
      })
    );
    return el("div", { class: "msg-actions" }, buttons);
  }

  function buildMessageEl(m) {
    if (m.kind === "system") return buildSystemEl(m);
    const mine = m.sender.id === me.id;
    const times = messageTimes(m.created_at, mine ? app.written.get(m.client_id) : null);
    const li = el("li", {
      class: "msg " + (mine ? "mine" : "theirs") + (m.deleted ? " is-deleted" : ""),
      "data-testid": "message",
      "data-id": m.id,
      "data-client-id": m.client_id || "",
      "data-state": "sent",
      "data-sender": m.sender.username,
      "data-sender-id": m.sender.id,
      "data-ts": ms(times.shown),
      "data-deleted": m.deleted ? "true" : "false",
    });
    li.appendChild(
      el("span", {
        class: "visually-hidden",
        text: mine ? gettext("You: ") : interpolate(gettext("%(name)s: "), { name: m.sender.username }),
      })
    );
    if (!mine && isGroupCur()) {
      li.appendChild(el("span", { class: "msg-sender", "aria-hidden": "true", text: m.sender.username }));
    }
    const body = el("p", { class: "msg-body", dir: "auto", "data-testid": "message-body" });
    if (m.deleted) {
      body.classList.add("deleted-text");
      // A moderator's removal is not the sender's delete: the author above all must know.
      body.textContent =
        m.removed_by === "moderator" ? gettext("This message was removed by a moderator") : gettext("This message was deleted");
      if (m.removed_by === "moderator") li.dataset.removedBy = "moderator";
    } else {
      app.mentions.fillBody(body, m);
      if (!m.body) body.classList.add("is-empty"); // files only
    }
    const more = m.deleted ? null : foldIfLong(body, String(m.id), m.body);
    const foot = el("span", { class: "msg-foot" }, [timeEl(times.shown, false, "message-time")]);
    if (times.sent) {
      // It waited to go out: the time it was written stays, and when it went is added.
      const sent = new Date(ms(times.sent));
      foot.appendChild(
        el(
          "span",
          {
            class: "msg-sent",
            "data-testid": "message-sent-time",
            title: interpolate(gettext("Sent %(time)s"), { time: fullTime(sent) }),
          },
          // The words around the time, in the language's order.
          gettext("sent %(time)s")
            .split(/(%\(time\)s)/)
            .map((part) => (part === "%(time)s" ? el("time", { datetime: times.sent, text: clockTime(sent) }) : part))
        )
      );
    }
    if (m.edited_at && !m.deleted) {
      foot.appendChild(el("span", { class: "msg-edited", "data-testid": "message-edited", text: gettext("(edited)") }));
    }
    const quote = m.deleted ? null : app.reply.quoteEl(m.reply_to);
    const bubble = el("div", { class: "bubble" }, [quote, body, more, app.attachments.render(m), foot]);
    const readOnly = m.deleted || Boolean(state.cur && state.cur.gone);
    li.appendChild(el("div", { class: "msg-row" }, [bubble, readOnly ? null : buildActions(m, mine)]));
    const reactions = app.reactions.render(m);
    if (reactions) li.appendChild(reactions);
    if (!readOnly) {
      // Touch screens have no hover: a tap on a bubble shows its actions.
      bubble.addEventListener("click", (event) => {
        if (event.target.closest("a") || !window.matchMedia("(pointer: coarse)").matches) return;
        const open = li.classList.contains("show-actions");
        for (const other of ui.messages.querySelectorAll(".show-actions")) other.classList.remove("show-actions");
        li.classList.toggle("show-actions", !open);
      });
    }
    return li;
  }

  function buildPendingEl(item) {
    const li = el("li", {
      class: "msg mine pending",
      "data-testid": "message",
      "data-client-id": item.client_id,
      "data-state": item.state === "failed" ? "failed" : "pending",
      "data-sender": me.username,
      "data-sender-id": me.id,
      "data-ts": ms(item.created_at) || Date.now(),
    });
    li.appendChild(el("span", { class: "visually-hidden", text: gettext("You: ") }));
    const body = el("p", { class: "msg-body", dir: "auto", "data-testid": "message-body" });
    linkify(body, item.body);
    if (!item.body) body.classList.add("is-empty");
    const more = foldIfLong(body, "pending-" + item.client_id, item.body);
    const status = el("span", {
      class: "msg-status",
      "data-testid": "message-status",
      text: item.state === "failed" ? gettext("Not sent") : gettext("Sending…"),
    });
    const foot = el("span", { class: "msg-foot" }, [timeEl(item.created_at, false, "message-time"), status]);
    const quote = item.quote ? app.reply.quoteEl(item.quote) : null;
    const bubble = el("div", { class: "bubble" }, [quote, body, more, app.attachments.pendingFiles(item), foot]);
    li.appendChild(el("div", { class: "msg-row" }, [bubble]));
    if (item.state === "failed") {
      const retry = el("button", { type: "button", class: "link-button", "data-testid": "message-retry", text: gettext("Retry") });
      const discard = el("button", {
        type: "button",
        class: "link-button",
        "data-testid": "message-discard",
        text: gettext("Discard"),
      });
      retry.addEventListener("click", () => app.composer.retrySend(item.client_id, true));
      discard.addEventListener("click", () => app.composer.discardSend(item.client_id));
      li.appendChild(
        // Not an alert: the status region says it once, when it fails (not at each redraw).
        el("div", { class: "msg-error", "data-testid": "message-error" }, [
          el("span", { class: "msg-error-text", text: errorText(item.error, app.maxBody, directPeer(me, state.convs.get(item.conversation))) }),
          el("span", { class: "msg-error-actions" }, [retry, discard]),
        ])
      );
    }
    return li;
  }

  /** Open long messages fold again (another conversation is shown). */
  function forgetUnfolded() {
    unfolded.clear();
  }

  return { messageEl: buildMessageEl, pendingEl: buildPendingEl, forgetUnfolded };
}
