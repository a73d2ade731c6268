/*
 * What can be done to one message in place: editing and deleting my own, reporting others'
 * (replies and reactions have modules of their own: reply.js, reactions.js).
 */

import * as api from "../net/api.js";
import { ACTIONS, errorText, httpErrorText } from "../text/errors.js";
import { formatNumber, gettext, interpolate } from "../text/i18n.js";
import { codePoints } from "../text/words.js";
import { el } from "./dom.js";

export function createMessageActions(app) {
  const { state, me } = app;
  const maxBody = app.maxBody;

  function startEdit(id) {
    const cur = state.cur;
    if (!cur) return;
    const m = cur.msgs.get(id);
    const li = app.pane.element(id);
    if (!m || !li || m.deleted || m.sender.id !== me.id) return;
    if (cur.editing && cur.editing !== id) cancelEdit(cur.editing);
    cur.editing = id;
    li.classList.add("is-editing");
    const row = li.querySelector(".msg-row");
    const input = el("textarea", {
      class: "edit-input",
      "data-testid": "edit-input",
      "aria-label": gettext("Edit message"),
      rows: "2",
    });
    input.value = m.body;
    const save = el("button", { type: "button", class: "btn btn-primary btn-small", "data-testid": "edit-save", text: gettext("Save") });
    const cancel = el("button", { type: "button", class: "btn btn-ghost btn-small", "data-testid": "edit-cancel", text: gettext("Cancel") });
    const error = el("p", { class: "edit-error", role: "alert", "data-testid": "edit-error", hidden: true });
    const hint = el("span", { class: "edit-hint", text: gettext("Enter to save · Esc to cancel") });
    const form = el("div", { class: "edit-form" }, [input, el("div", { class: "edit-row" }, [hint, cancel, save]), error]);
    row.hidden = true;
    row.after(form);
    const submit = () => {
      const body = input.value.replace(/\s+$/, "");
      if (!body.trim()) {
        error.textContent = gettext("A message can’t be empty. Delete it instead?");
        error.hidden = false;
        return;
      }
      if (codePoints(body) > maxBody) {
        error.textContent = errorText({ code: "too_long" }, maxBody);
        error.hidden = false;
        return;
      }
      if (body === m.body) {
        cancelEdit(id);
        return;
      }
      if (state.link === "offline") {
        error.textContent = gettext("You’re offline. Try again when the connection is back.");
        error.hidden = false;
        return;
      }
      if (app.socket.send({ type: "message.edit", id, body })) {
        cur.pendingChange = { kind: "edit", id, at: Date.now() };
        save.disabled = true;
        save.textContent = gettext("Saving…");
        error.hidden = true;
      }
    };
    save.addEventListener("click", submit);
    cancel.addEventListener("click", () => cancelEdit(id));
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        cancelEdit(id);
      }
    });
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  function cancelEdit(id) {
    const cur = state.cur;
    if (!cur) return;
    if (cur.editing === id) cur.editing = null;
    const node = app.pane.redraw(id);
    if (!node) return;
    const again = node.querySelector('[data-testid="message-edit"]');
    if (again) again.focus();
  }

  function askDelete(id) {
    const cur = state.cur;
    if (!cur) return;
    const li = app.pane.element(id);
    if (!li) return;
    const actions = li.querySelector(".msg-actions");
    if (!actions) return;
    const yes = el("button", {
      type: "button",
      class: "msg-action danger",
      "data-testid": "message-delete-confirm",
      text: gettext("Delete"),
    });
    const no = el("button", { type: "button", class: "msg-action", "data-testid": "message-delete-cancel", text: gettext("Keep") });
    const question = el("span", { class: "confirm-text", text: gettext("Delete for everyone?") });
    const original = Array.from(actions.childNodes);
    actions.replaceChildren(question, no, yes);
    actions.classList.add("confirming");
    const keep = () => {
      actions.replaceChildren(...original);
      actions.classList.remove("confirming");
      actions.removeEventListener("keydown", escape);
      // Back on the button that asked.
      (original.find((node) => node.dataset && node.dataset.testid === "message-delete") || original[0]).focus();
    };
    const escape = (event) => {
      if (event.key !== "Escape" || no.disabled) return;
      event.preventDefault();
      keep();
    };
    no.addEventListener("click", keep);
    actions.addEventListener("keydown", escape);
    yes.addEventListener("click", () => {
      if (state.link === "offline") {
        app.notices.showNotice(gettext("You’re offline. Try deleting again when the connection is back."));
        return;
      }
      if (app.socket.send({ type: "message.delete", id })) {
        cur.pendingChange = { kind: "delete", id, at: Date.now() };
        // A disabled button drops the focus to the page: the message holds it meanwhile.
        li.tabIndex = -1;
        li.focus({ preventScroll: true });
        yes.disabled = true;
        no.disabled = true;
        question.textContent = gettext("Deleting…");
      }
    });
    yes.focus();
  }

  /** The server refused an edit, a delete or a reaction: say so where it was asked. */
  function showChangeError(change, frame) {
    if (change.kind === "reaction") {
      app.reactions.refused(change.id);
      app.notices.showNotice(
        interpolate(gettext("Couldn’t react: %(reason)s"), {
          reason:
            frame.code === "rate_limited"
              ? gettext("too many reactions at once. Wait a moment and try again.")
              : frame.code === "forbidden"
                ? gettext("this message has as many different reactions as it can take.")
                : frame.code === "cannot_send"
                  ? gettext("you and this person can’t write to each other.")
                  : errorText(frame, maxBody),
        })
      );
      return;
    }
    const li = app.pane.element(change.id);
    const text =
      interpolate(change.kind === "edit" ? gettext("Couldn’t save the edit: %(reason)s") : gettext("Couldn’t delete: %(reason)s"), {
        reason:
          frame.code === "rate_limited"
            ? gettext("too many changes at once. Wait a moment and try again.")
            : errorText(frame, maxBody),
      });
    if (change.kind === "edit" && li) {
      const error = li.querySelector('[data-testid="edit-error"]');
      const save = li.querySelector('[data-testid="edit-save"]');
      if (error) {
        error.textContent = text;
        error.hidden = false;
        if (save) {
          save.disabled = false;
          save.textContent = gettext("Save");
        }
        return;
      }
    }
    if (change.kind === "delete" && li) {
      const node = app.pane.redraw(change.id);
      const again = node && node.querySelector('[data-testid="message-delete"]');
      if (again) again.focus();
    }
    app.notices.showNotice(text);
  }

  function startReport(id) {
    const cur = state.cur;
    if (!cur) return;
    const li = app.pane.element(id);
    const m = cur.msgs.get(id);
    if (!li || !m || m.deleted) return;
    const open = li.querySelector(":scope > .report-form textarea");
    if (open) {
      open.focus();
      return;
    }
    for (const done of li.querySelectorAll(":scope > .report-done")) done.remove();
    const fieldId = "report-reason-" + id;
    const input = el("textarea", {
      id: fieldId,
      class: "edit-input report-input",
      rows: "2",
      maxlength: "1000",
      "data-testid": "report-reason",
      placeholder: gettext("For example: spam, threats, harassment…"),
    });
    const submit = el("button", { type: "submit", class: "btn btn-primary btn-small", "data-testid": "report-submit", text: gettext("Send report") });
    const cancel = el("button", { type: "button", class: "btn btn-ghost btn-small", "data-testid": "report-cancel", text: gettext("Cancel") });
    const error = el("p", { class: "edit-error", role: "alert", "data-testid": "report-error", hidden: true });
    const form = el(
      "form",
      { class: "msg-extra edit-form report-form", "data-testid": "report-form", "aria-label": gettext("Report this message"), novalidate: true },
      [
        el("label", {
          class: "report-label",
          for: fieldId,
          text: interpolate(gettext("Why are you reporting this message from %(name)s? Only the moderators see your report."), {
            name: m.sender.username,
          }),
        }),
        input,
        el("div", { class: "edit-row" }, [el("span", { class: "edit-hint", text: gettext("Enter to send · Esc to cancel") }), cancel, submit]),
        error,
      ]
    );
    const close = () => {
      form.remove();
      const again = li.isConnected ? li.querySelector('[data-testid="message-report"]') : null;
      if (again) again.focus();
    };
    const fail = (text) => {
      error.textContent = text;
      error.hidden = false;
      submit.disabled = false;
      submit.textContent = gettext("Send report");
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      const reason = input.value.trim();
      if (!reason) {
        fail(gettext("Please say why you’re reporting this message."));
        input.focus();
        return;
      }
      if (codePoints(reason) > 1000) {
        fail(interpolate(gettext("Please keep the reason under %(count)s characters."), { count: formatNumber(1000) }));
        return;
      }
      submit.disabled = true;
      submit.textContent = gettext("Sending…");
      error.hidden = true;
      const res = await api.reportMessage(id, reason);
      if (res.status !== 201 && res.status !== 200) {
        fail(httpErrorText(res, ACTIONS.report(), gettext("This message isn’t available any more, so it can’t be reported.")));
        return;
      }
      const thanks = el("p", {
        class: "msg-extra report-done",
        role: "status",
        tabindex: "-1",
        "data-testid": "report-done",
        text:
          res.status === 201
            ? gettext("Reported — thanks. The moderators will take a look.")
            : gettext("Reported — thanks. You had already reported this message."),
      });
      form.replaceWith(thanks);
      thanks.focus({ preventScroll: true });
    });
    cancel.addEventListener("click", close);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
    li.appendChild(form);
    // The reported message stays in view above its form: focusing alone would scroll the
    // box to the middle and push the message off the top.
    input.focus({ preventScroll: true });
    app.pane.bringIntoView(li);
  }

  return { startEdit, askDelete, startReport, showChangeError };
}
