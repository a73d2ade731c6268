/* Groups: the "New group" dialog, and the group details dialog (rename, members, add, leave). */

import * as api from "../net/api.js";
import { addConversation } from "../state/chat.js";
import { convName } from "../state/conversations.js";
import { ACTIONS, httpErrorText, listText } from "../text/errors.js";
import { formatNumber, gettext, interpolate } from "../text/i18n.js";
import { busy, el, showError, userAvatar } from "./dom.js";
import { makePicker } from "./people.js";

export function createGroups(app) {
  const { ui, state, me } = app;
  let createPicker = null;
  let addPicker = null;
  let dialogConv = null; // the conversation the details dialog shows

  function added(conv) {
    addConversation(state, conv);
    app.inbox.render();
  }

  function openCreate() {
    ui.groupTitle.value = "";
    createPicker.clear();
    showError(ui.groupCreateError, "");
    busy(ui.groupCreateSubmit, false, gettext("Create group"));
    app.people.close();
    ui.groupCreate.showModal();
    ui.groupTitle.focus();
  }

  async function submitCreate(event) {
    event.preventDefault();
    if (ui.groupCreateSubmit.disabled) return;
    const members = createPicker.picked();
    if (members.length < 2) {
      showError(
        ui.groupCreateError,
        members.length
          ? gettext("Pick at least one more person: a group has three or more people. To talk with one person, search for them in “Start a conversation”.")
          : gettext("Pick at least two people: type a username and choose from the list.")
      );
      createPicker.input.focus();
      return;
    }
    busy(ui.groupCreateSubmit, true, gettext("Creating…"));
    showError(ui.groupCreateError, "");
    const res = await api.createConversation(members, ui.groupTitle.value.trim());
    busy(ui.groupCreateSubmit, false, gettext("Create group"));
    if (!res.ok || !res.data || typeof res.data.id !== "number") {
      showError(ui.groupCreateError, httpErrorText(res, ACTIONS.createGroup()));
      return;
    }
    added(res.data);
    ui.groupCreate.close();
    app.notices.announce(interpolate(gettext("Group “%(group)s” created."), { group: convName(me, state.convs.get(res.data.id)) }));
    app.pane.openConversation(res.data.id, { push: true, focus: true });
  }

  function openDetails(leaving) {
    const cur = state.cur;
    const conv = cur ? state.convs.get(cur.id) : null;
    if (!conv || conv.kind !== "group") return;
    if (ui.menu) ui.menu.open = false;
    dialogConv = conv.id;
    ui.renameInput.value = conv.title || "";
    ui.renameInput.dataset.dirty = "";
    ui.renameStatus.textContent = "";
    ui.renameStatus.classList.remove("is-error");
    busy(ui.renameSave, false, gettext("Save"));
    busy(ui.addSubmit, false, gettext("Add to group"));
    busy(ui.leaveConfirm, false, gettext("Leave"));
    showError(ui.membersError, "");
    showError(ui.addError, "");
    showError(ui.leaveError, "");
    addPicker.clear();
    ui.leaveBox.hidden = true;
    ui.leave.hidden = false;
    ui.groupDialog.showModal();
    render();
    if (leaving) askLeave();
    else ui.renameInput.focus();
  }

  /** Draw the open details dialog again (its group changed); close it if the group is gone. */
  function render() {
    if (!ui.groupDialog || !ui.groupDialog.open || dialogConv === null) return;
    const conv = state.convs.get(dialogConv);
    if (!conv) {
      ui.groupDialog.close();
      return;
    }
    if (!ui.renameInput.dataset.dirty && document.activeElement !== ui.renameInput) ui.renameInput.value = conv.title || "";
    ui.leaveText.textContent =
      interpolate(gettext("Leave “%(group)s”? You won’t see its messages any more, unless someone adds you again."), { group: convName(me, conv) });
    const focused = document.activeElement;
    const refocus =
      focused && ui.members.contains(focused)
        ? { name: focused.closest("[data-username]").dataset.username, testid: focused.dataset.testid }
        : null;
    ui.members.replaceChildren();
    const members = (conv.members || []).slice().sort((a, b) => (a.id === me.id ? -1 : b.id === me.id ? 1 : 0));
    for (const user of members) ui.members.appendChild(memberRow(conv, user));
    document.getElementById("group-members-heading").textContent = interpolate(gettext("Members (%(count)s)"), {
      count: formatNumber(members.length),
    });
    if (refocus) {
      const row = ui.members.querySelector('[data-username="' + CSS.escape(refocus.name) + '"]');
      const again = row && (row.querySelector('[data-testid="' + refocus.testid + '"]') || row.querySelector("button"));
      if (again) again.focus();
    }
  }

  function memberRow(conv, user) {
    const mine = user.id === me.id;
    const li = el("li", { class: "member", "data-testid": "group-member", "data-username": user.username });
    const avatar = userAvatar(user.username);
    const name = el("span", { class: "member-name" }, [el("span", { "data-testid": "group-member-name", text: user.username })]);
    if (mine) name.append(" ", el("span", { class: "member-you", text: gettext("(you)") }));
    else if (state.blocked.has(user.username)) name.appendChild(el("span", { class: "inbox-tag", text: gettext("Blocked") }));
    const actions = el("span", { class: "member-actions" });
    li.append(avatar, name, actions);
    if (mine) return li;
    const remove = el("button", {
      type: "button",
      class: "msg-action danger",
      "data-testid": "group-member-remove",
      "aria-label": interpolate(gettext("Remove %(name)s from the group"), { name: user.username }),
      text: gettext("Remove"),
    });
    actions.append(
      app.blocks.button(user.username, "msg-action", "member-block-toggle", (text) => showError(ui.membersError, text))
    );
    // Only the group's creator may remove people: nobody else is offered a button that fails.
    if (!conv.created_by || conv.created_by.id !== me.id) return li;
    actions.append(remove);
    remove.addEventListener("click", () => {
      const question = el("span", { class: "confirm-text", text: interpolate(gettext("Remove %(name)s?"), { name: user.username }) });
      const keep = el("button", { type: "button", class: "msg-action", "data-testid": "group-member-remove-cancel", text: gettext("Keep") });
      const yes = el("button", {
        type: "button",
        class: "msg-action danger",
        "data-testid": "group-member-remove-confirm",
        text: gettext("Remove"),
      });
      const original = Array.from(actions.childNodes);
      actions.replaceChildren(question, keep, yes);
      keep.addEventListener("click", () => {
        actions.replaceChildren(...original);
        remove.focus();
      });
      yes.addEventListener("click", async () => {
        yes.disabled = keep.disabled = true;
        question.textContent = gettext("Removing…");
        showError(ui.membersError, "");
        const res = await api.removeMember(conv.id, user.username);
        if (res.status === 204 || res.status === 404) {
          // Gone already (404: someone else was quicker); the live update redraws the list too.
          const known = state.convs.get(conv.id);
          if (known) known.members = (known.members || []).filter((u) => u.id !== user.id);
          app.inbox.render();
          if (state.cur && state.cur.id === conv.id) app.pane.renderHeader();
          render();
          app.notices.announce(interpolate(gettext("%(name)s was removed from the group."), { name: user.username }));
          return;
        }
        actions.replaceChildren(...original);
        showError(ui.membersError, httpErrorText(res, ACTIONS.removeMember(user.username)));
        remove.focus();
      });
      keep.focus();
    });
    return li;
  }

  async function submitRename(event) {
    event.preventDefault();
    const conv = state.convs.get(dialogConv);
    if (!conv || ui.renameSave.disabled) return;
    const title = ui.renameInput.value.trim();
    if (title === (conv.title || "")) {
      ui.renameStatus.classList.remove("is-error");
      ui.renameStatus.textContent = gettext("That’s the name already.");
      return;
    }
    busy(ui.renameSave, true, gettext("Saving…"));
    const res = await api.renameConversation(conv.id, title);
    busy(ui.renameSave, false, gettext("Save"));
    if (!res.ok) {
      ui.renameStatus.classList.add("is-error");
      ui.renameStatus.textContent = httpErrorText(res, ACTIONS.renameGroup(), gettext("You’re no longer in this group."));
      return;
    }
    ui.renameInput.dataset.dirty = "";
    const known = state.convs.get(conv.id);
    if (known && res.data) {
      known.title = res.data.title;
      known.members = res.data.members || known.members;
    }
    app.inbox.render();
    if (state.cur && state.cur.id === conv.id) app.pane.renderHeader();
    ui.renameStatus.classList.remove("is-error");
    ui.renameStatus.textContent = title
      ? interpolate(gettext("Renamed to “%(title)s”."), { title })
      : gettext("Name removed: the group shows its members’ names.");
  }

  async function submitAdd(event) {
    event.preventDefault();
    const conv = state.convs.get(dialogConv);
    if (!conv || ui.addSubmit.disabled) return;
    const names = addPicker.picked();
    if (!names.length) {
      showError(ui.addError, gettext("Choose someone to add: type a username and pick from the list."));
      addPicker.input.focus();
      return;
    }
    busy(ui.addSubmit, true, gettext("Adding…"));
    showError(ui.addError, "");
    const res = await api.addMembers(conv.id, names);
    busy(ui.addSubmit, false, gettext("Add to group"));
    if (!res.ok) {
      showError(ui.addError, httpErrorText(res, ACTIONS.addMembers(names), gettext("You’re no longer in this group.")));
      return;
    }
    if (res.data) added(res.data);
    addPicker.clear();
    if (state.cur && state.cur.id === conv.id) app.pane.renderHeader();
    render();
    app.notices.announce(interpolate(gettext("Added %(names)s to the group."), { names: listText(names) }));
  }

  function askLeave() {
    ui.leave.hidden = true;
    ui.leaveBox.hidden = false;
    showError(ui.leaveError, "");
    ui.leaveCancel.focus();
  }

  async function confirmLeave() {
    const conv = state.convs.get(dialogConv);
    if (!conv || ui.leaveConfirm.disabled) return;
    busy(ui.leaveConfirm, true, gettext("Leaving…"));
    const res = await api.removeMember(conv.id, me.username);
    busy(ui.leaveConfirm, false, gettext("Leave"));
    if (res.status !== 204 && res.status !== 404) {
      showError(ui.leaveError, httpErrorText(res, ACTIONS.leaveGroup()));
      return;
    }
    ui.groupDialog.close();
    if (state.convs.has(conv.id)) {
      app.dropConversation(conv.id, interpolate(gettext("You left “%(group)s”. You’re no longer in this group."), { group: convName(me, conv) }));
    }
    ui.goneBack.focus();
  }

  return {
    render,
    openDetails,
    /** The details dialog shows this conversation, which is going away: close it. */
    closeFor(convId) {
      if (ui.groupDialog && ui.groupDialog.open && dialogConv === convId) ui.groupDialog.close();
    },
    bind() {
      createPicker = makePicker(document.getElementById("group-create-picker"), null);
      addPicker = makePicker(document.getElementById("group-add-picker"), () => {
        const conv = state.convs.get(dialogConv);
        return new Set(((conv && conv.members) || []).map((u) => u.username));
      });
      ui.newGroup.addEventListener("click", openCreate);
      ui.groupCreateForm.addEventListener("submit", submitCreate);
      ui.renameForm.addEventListener("submit", submitRename);
      ui.renameInput.addEventListener("input", () => {
        ui.renameInput.dataset.dirty = "true";
        ui.renameStatus.textContent = "";
      });
      ui.addForm.addEventListener("submit", submitAdd);
      ui.leave.addEventListener("click", askLeave);
      ui.leaveCancel.addEventListener("click", () => {
        ui.leaveBox.hidden = true;
        ui.leave.hidden = false;
        ui.leave.focus();
      });
      ui.leaveConfirm.addEventListener("click", confirmLeave);
      for (const dialog of [ui.groupCreate, ui.groupDialog]) {
        for (const button of dialog.querySelectorAll("[data-close]")) {
          button.addEventListener("click", () => dialog.close());
        }
        // A click on the backdrop (the dialog itself, outside its body) closes it.
        dialog.addEventListener("click", (event) => {
          if (event.target === dialog) dialog.close();
        });
      }
      ui.groupDialog.addEventListener("close", () => {
        dialogConv = null;
        if (state.cur && !state.cur.gone && ui.menu && !ui.menu.hidden) ui.menu.querySelector("summary").focus();
      });
      ui.groupCreate.addEventListener("close", () => {
        if (!state.cur || ui.app.dataset.view === "inbox") ui.newGroup.focus();
      });
    },
  };
}
