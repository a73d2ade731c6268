/*
 * The settings page: privacy and notification choices saved as they change, this
 * browser's push notifications (push.js), the email address, muted conversations, and
 * the person's API tokens, listed, created (the secret shown once) and revoked.
 *
 * Safety rule, as in the chat: user data (token names) only ever goes in through
 * textContent or element properties, never through innerHTML.
 */

import { request, setLoginUrl } from "./net/api.js";
import { deviceState, subscribeDevice, unsubscribeDevice } from "./push.js";
import { httpErrorText } from "./text/errors.js";
import { formatNumber, gettext, gettext_noop, interpolate, language, ngettext } from "./text/i18n.js";

const config = readJSON("settings-config");
if (config && config.urls) setLoginUrl(config.urls.login);

const ui = {
  privacyForm: document.getElementById("privacy-form"),
  privacyStatus: document.getElementById("privacy-status"),
  notificationsForm: document.getElementById("notifications-form"),
  notificationsStatus: document.getElementById("notifications-status"),
  pushState: document.getElementById("push-device-state"),
  pushEnable: document.getElementById("push-enable"),
  pushDisable: document.getElementById("push-disable"),
  pushError: document.getElementById("push-error"),
  emailForm: document.getElementById("email-form"),
  emailInput: document.getElementById("email-address"),
  emailSave: document.getElementById("email-save"),
  emailState: document.getElementById("email-state"),
  emailError: document.getElementById("email-error"),
  mutedList: document.getElementById("muted-list"),
  mutedStatus: document.getElementById("muted-status"),
  createForm: document.getElementById("token-create-form"),
  createSubmit: document.getElementById("token-create-submit"),
  createError: document.getElementById("token-create-error"),
  nameInput: document.getElementById("token-name"),
  secretBox: document.getElementById("token-secret"),
  secretName: document.getElementById("token-secret-name"),
  secretValue: document.getElementById("token-secret-value"),
  copyButton: document.getElementById("token-copy"),
  copyHint: document.getElementById("token-copy-hint"),
  secretDone: document.getElementById("token-secret-done"),
  list: document.getElementById("token-list"),
  empty: document.getElementById("token-empty"),
  listError: document.getElementById("tokens-error"),
  listStatus: document.getElementById("tokens-status"),
};

const COPY_HINT = ui.copyHint ? ui.copyHint.textContent : "";

const fmtDay = new Intl.DateTimeFormat(language(), { dateStyle: "medium" });
const fmtMoment = new Intl.DateTimeFormat(language(), { dateStyle: "medium", timeStyle: "short" });

let tokens = Array.isArray(config && config.tokens) ? config.tokens.slice() : [];

function readJSON(id) {
  const node = document.getElementById(id);
  if (!node) return null;
  try {
    return JSON.parse(node.textContent);
  } catch (e) {
    return null;
  }
}

/*
 * What the person tried on this page, said whole in each way it can fail (a sentence is
 * never put together from pieces: word order differs between languages).
 */
const ACTIONS = {
  saveSetting: () => ({
    failed: gettext("Couldn’t save that setting."),
    busy: gettext("The server couldn’t save that setting just now. Try again in a moment."),
  }),
  notificationsOn: () => ({
    failed: gettext("Couldn’t turn notifications on."),
    busy: gettext("The server couldn’t turn notifications on just now. Try again in a moment."),
  }),
  notificationsOff: () => ({
    failed: gettext("Couldn’t turn notifications off."),
    busy: gettext("The server couldn’t turn notifications off just now. Try again in a moment."),
  }),
  saveAddress: () => ({
    failed: gettext("Couldn’t save the address."),
    busy: gettext("The server couldn’t save the address just now. Try again in a moment."),
  }),
  mute: () => ({
    failed: gettext("Couldn’t mute the conversation."),
    busy: gettext("The server couldn’t mute the conversation just now. Try again in a moment."),
  }),
  unmute: () => ({
    failed: gettext("Couldn’t unmute the conversation."),
    busy: gettext("The server couldn’t unmute the conversation just now. Try again in a moment."),
  }),
  listConversations: () => ({
    failed: gettext("Couldn’t list your conversations."),
    busy: gettext("The server couldn’t list your conversations just now. Try again in a moment."),
  }),
  revokeToken: () => ({
    failed: gettext("Couldn’t revoke that token."),
    busy: gettext("The server couldn’t revoke that token just now. Try again in a moment."),
  }),
  createToken: () => ({
    failed: gettext("Couldn’t create a token."),
    busy: gettext("The server couldn’t create a token just now. Try again in a moment."),
  }),
};

/** An HTTP failure in plain words; `action` is one of ACTIONS. */
function failureText(res, action) {
  const said = action();
  // A page or endpoint that is not there (404, 405) is the server's trouble, not the person's.
  if (res.status === 404 || res.status === 405) return said.busy;
  return httpErrorText(res, said);
}

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

// ---------------------------------------------------------------------------------------
// Privacy
// ---------------------------------------------------------------------------------------

// What each switch now does, on and off: marked here, translated when said.
const LABELS = {
  show_presence: [gettext_noop("Saved. Your presence is shown."), gettext_noop("Saved. Your presence is hidden.")],
  send_read_receipts: [gettext_noop("Saved. Read receipts are sent."), gettext_noop("Saved. Read receipts are not sent.")],
  push: [gettext_noop("Saved. Push notifications are on."), gettext_noop("Saved. Push notifications are off.")],
  previews: [
    gettext_noop("Saved. Notifications and emails show the text."),
    gettext_noop("Saved. Notifications and emails hide the text."),
  ],
  email: [gettext_noop("Saved. The chat emails you what you miss."), gettext_noop("Saved. The chat sends you no emails.")],
};

// Each setting's changes go out one at a time, so the last one the person made wins.
const saving = new Map();

function setStatus(node, text, isError) {
  node.textContent = text;
  node.classList.toggle("is-error", Boolean(isError));
}

/** Save one setting as its input now says; `status` tells how it went. */
async function saveSetting(input, status) {
  const field = input.name;
  const previous = saving.get(field) || Promise.resolve();
  const run = previous.then(async () => {
    const isSwitch = input.type === "checkbox";
    const wanted = isSwitch ? input.checked : Number(input.value);
    if (!isSwitch && (!Number.isInteger(wanted) || input.value.trim() === "")) {
      input.setAttribute("aria-invalid", "true");
      const range = { min: formatNumber(Number(input.min)), max: formatNumber(Number(input.max)) };
      setStatus(status, interpolate(gettext("Give a whole number of minutes, from %(min)s to %(max)s."), range), true);
      return;
    }
    setStatus(status, gettext("Saving…"), false);
    const res = await request("PATCH", config.urls.settings, { [field]: wanted });
    if (res.status === 401) return;
    if (res.ok && res.data && field in res.data) {
      input.removeAttribute("aria-invalid");
      if (isSwitch) {
        input.checked = res.data[field];
        const [on, off] = LABELS[field] || [gettext_noop("Saved."), gettext_noop("Saved.")];
        setStatus(status, gettext(input.checked ? on : off), false);
      } else {
        const minutes = res.data[field];
        input.value = String(minutes);
        const text = ngettext(
          "Saved. Emails go after %(count)s minute unread.",
          "Saved. Emails go after %(count)s minutes unread.",
          minutes
        );
        setStatus(status, interpolate(text, { count: formatNumber(minutes) }), false);
      }
    } else {
      if (isSwitch) input.checked = !wanted;
      else input.setAttribute("aria-invalid", "true");
      setStatus(status, failureText(res, ACTIONS.saveSetting), true);
    }
  });
  saving.set(field, run);
  await run;
}

function bindSettingsForm(form, status) {
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("change", (event) => {
    const input = event.target;
    if (input instanceof HTMLInputElement && (input.type === "checkbox" || input.type === "number")) {
      saveSetting(input, status);
    }
  });
}

function bindPrivacy() {
  bindSettingsForm(ui.privacyForm, ui.privacyStatus);
}

// ---------------------------------------------------------------------------------------
// Notifications: the choices, this device, the email address, muted conversations
// ---------------------------------------------------------------------------------------

const DEVICE_TEXT = {
  unsupported: gettext_noop("This browser cannot show the chat’s notifications."),
  insecure: gettext_noop("Notifications need the site over https."),
  denied: gettext_noop(
    "This browser blocks the chat’s notifications. Allow them in the site’s settings (the padlock by the address), then come back."
  ),
  on: gettext_noop("Notifications are on for this browser."),
  off: gettext_noop("Notifications are off for this browser."),
  checking: gettext_noop("Checking whether this browser can show notifications…"),
};

function deviceText(state) {
  if (state === "on" && !config.notifications.push) {
    return gettext("Notifications are on for this browser, but push notifications are off above, so none are sent.");
  }
  if (state === "off" && !config.pushConfigured) return gettext("This server is not set up to send notifications.");
  return gettext(DEVICE_TEXT[state] || DEVICE_TEXT.off);
}

function showDevice(state) {
  ui.pushState.textContent = deviceText(state);
  ui.pushState.dataset.state = state;
  ui.pushEnable.hidden = !(state === "off" && config.pushConfigured);
  ui.pushDisable.hidden = state !== "on";
}

async function refreshDevice() {
  try {
    const found = await deviceState(config.urls);
    showDevice(found.state);
  } catch (e) {
    showDevice("off");
  }
}

function bindDevice() {
  ui.pushEnable.addEventListener("click", async () => {
    showError(ui.pushError, "");
    ui.pushEnable.disabled = true;
    const done = await subscribeDevice(config.urls);
    ui.pushEnable.disabled = false;
    showDevice(done.state);
    if (!done.ok && done.state === "off") {
      showError(
        ui.pushError,
        done.reason === "server"
          ? failureText({ status: done.status || 500, data: done.data }, ACTIONS.notificationsOn)
          : done.detail
            ? interpolate(gettext("This browser could not turn notifications on: %(reason)s"), { reason: done.detail })
            : gettext("This browser could not turn notifications on."),
      );
    }
    if (done.ok) ui.pushDisable.focus();
  });
  ui.pushDisable.addEventListener("click", async () => {
    showError(ui.pushError, "");
    ui.pushDisable.disabled = true;
    const done = await unsubscribeDevice(config.urls);
    ui.pushDisable.disabled = false;
    if (!done.ok) showError(ui.pushError, failureText(done, ACTIONS.notificationsOff));
    await refreshDevice();
    if (!ui.pushEnable.hidden) ui.pushEnable.focus();
  });
}

function emailStateText(email) {
  if (!email.email) return gettext("No address: the chat sends you no email.");
  if (email.verified) return gettext("Confirmed.");
  return interpolate(
    gettext("We sent a link to %(email)s. Open it to confirm the address; until then nothing else is sent there."),
    { email: email.email }
  );
}

function bindEmail() {
  ui.emailForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(ui.emailError, "");
    ui.emailInput.removeAttribute("aria-invalid");
    const address = ui.emailInput.value.trim();
    if (address && !ui.emailInput.checkValidity()) {
      ui.emailInput.setAttribute("aria-invalid", "true");
      showError(ui.emailError, gettext("Enter a valid email address, or nothing to remove it."));
      ui.emailInput.focus();
      return;
    }
    ui.emailSave.disabled = true;
    const res = await request("PUT", config.urls.email, { email: address });
    ui.emailSave.disabled = false;
    if (res.status === 401) return;
    if (!res.ok || !res.data) {
      ui.emailInput.setAttribute("aria-invalid", "true");
      showError(ui.emailError, failureText(res, ACTIONS.saveAddress));
      ui.emailInput.focus();
      return;
    }
    ui.emailInput.value = res.data.email;
    ui.emailState.textContent = emailStateText(res.data);
  });
}

function mutedItem(conversation) {
  const li = document.createElement("li");
  li.className = "token-item";
  li.dataset.testid = "muted-item";
  li.dataset.conversationId = String(conversation.id);
  const label = document.createElement("label");
  label.className = "switch account-switch";
  const input = document.createElement("input");
  input.type = "checkbox";
  input.checked = Boolean(conversation.muted);
  input.dataset.testid = "mute-toggle";
  const text = document.createElement("span");
  text.className = "account-switch-label";
  text.textContent = conversationName(conversation);
  label.append(input, text);
  li.append(label);
  input.addEventListener("change", async () => {
    const wanted = input.checked;
    setStatus(ui.mutedStatus, gettext("Saving…"), false);
    const res = await request("PATCH", config.urls.conversations + encodeURIComponent(conversation.id) + "/", { muted: wanted });
    if (res.status === 401) return;
    if (res.ok && res.data) {
      input.checked = Boolean(res.data.muted);
      const said = input.checked ? gettext("Muted %(name)s.") : gettext("Unmuted %(name)s.");
      setStatus(ui.mutedStatus, interpolate(said, { name: text.textContent }), false);
    } else {
      input.checked = !wanted;
      setStatus(ui.mutedStatus, failureText(res, wanted ? ACTIONS.mute : ACTIONS.unmute), true);
    }
  });
  return li;
}

function conversationName(conversation) {
  if (conversation.title) return conversation.title;
  const me = config.user;
  const others = (conversation.members || []).map((m) => m.username).filter((name) => name !== me);
  if (!others.length) return gettext("Only you");
  return new Intl.ListFormat(language(), { style: "long", type: "conjunction" }).format(others);
}

async function loadMuted() {
  // Every conversation, page after page (the list comes in pages of at most 200).
  const all = [];
  let cursor = null;
  do {
    const page = "?limit=200" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
    const res = await request("GET", config.urls.conversations + page);
    if (!res.ok || !res.data || !Array.isArray(res.data.conversations)) {
      setStatus(ui.mutedStatus, failureText(res, ACTIONS.listConversations), true);
      return;
    }
    all.push(...res.data.conversations);
    cursor = res.data.has_more ? res.data.next_cursor : null;
  } while (cursor);
  ui.mutedList.replaceChildren(...all.map(mutedItem));
  if (!all.length) setStatus(ui.mutedStatus, gettext("You have no conversations yet."), false);
}

function bindNotifications() {
  bindSettingsForm(ui.notificationsForm, ui.notificationsStatus);
  // Outside the form's element (its own row), so its events do not reach the form's.
  const delay = document.getElementById("email-delay");
  if (delay) delay.addEventListener("change", () => saveSetting(delay, ui.notificationsStatus));
  ui.notificationsForm.addEventListener("change", (event) => {
    if (event.target && event.target.name === "push") {
      config.notifications.push = event.target.checked;
      refreshDevice();
    }
  });
  bindDevice();
  bindEmail();
  refreshDevice();
  loadMuted();
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

function timeNode(iso, format, fallback) {
  if (!iso) {
    const none = document.createElement("span");
    none.textContent = fallback;
    return none;
  }
  const node = document.createElement("time");
  node.dateTime = iso;
  const when = new Date(iso);
  node.textContent = format.format(when);
  node.title = fmtMoment.format(when);
  return node;
}

function fact(label, value) {
  const wrap = document.createElement("div");
  wrap.className = "token-fact";
  const term = document.createElement("dt");
  term.textContent = label;
  const detail = document.createElement("dd");
  detail.append(value);
  wrap.append(term, detail);
  return wrap;
}

function tokenItem(token) {
  const li = document.createElement("li");
  li.className = "token-item";
  li.dataset.testid = "token-item";
  li.dataset.tokenId = String(token.id);

  const head = document.createElement("div");
  head.className = "token-head";
  const name = document.createElement("h3");
  name.className = "token-name";
  name.id = "token-name-" + token.id;
  name.dataset.testid = "token-name";
  name.textContent = token.name;
  const prefix = document.createElement("code");
  prefix.className = "token-prefix";
  prefix.title = gettext("The token’s first characters");
  prefix.textContent = token.prefix + "…";
  head.append(name, prefix);

  const facts = document.createElement("dl");
  facts.className = "token-facts";
  facts.append(
    fact(gettext("Created"), timeNode(token.created_at, fmtDay, "")),
    fact(gettext("Last used"), timeNode(token.last_used_at, fmtMoment, gettext("Never"))),
    fact(gettext("Expires"), timeNode(token.expires_at, fmtDay, gettext("Never"))),
  );

  const actions = document.createElement("div");
  actions.className = "token-actions";
  const revoke = document.createElement("button");
  revoke.type = "button";
  revoke.className = "btn btn-ghost btn-small token-revoke";
  revoke.dataset.testid = "token-revoke";
  revoke.textContent = gettext("Revoke");
  revoke.setAttribute("aria-describedby", name.id);
  revoke.addEventListener("click", () => askRevoke(li, token));
  actions.append(revoke);

  li.append(head, facts, actions);
  return li;
}

function renderTokens() {
  ui.list.replaceChildren(...tokens.map(tokenItem));
  ui.empty.hidden = tokens.length > 0;
}

function askRevoke(li, token) {
  if (li.querySelector(".token-confirm")) return;
  const revokeButton = li.querySelector(".token-revoke");
  revokeButton.hidden = true;

  const box = document.createElement("div");
  box.className = "token-confirm";
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", interpolate(gettext("Revoke %(name)s"), { name: token.name }));
  const text = document.createElement("p");
  text.className = "confirm-text";
  text.textContent = interpolate(gettext("Revoke “%(name)s”? Programs using it are cut off at once."), { name: token.name });
  const keep = document.createElement("button");
  keep.type = "button";
  keep.className = "btn btn-ghost btn-small";
  keep.dataset.testid = "token-revoke-cancel";
  keep.textContent = gettext("Keep it");
  const confirm = document.createElement("button");
  confirm.type = "button";
  confirm.className = "btn btn-danger btn-small";
  confirm.dataset.testid = "token-revoke-confirm";
  confirm.textContent = gettext("Revoke");
  const buttons = document.createElement("div");
  buttons.className = "dialog-actions";
  buttons.append(keep, confirm);
  box.append(text, buttons);
  li.querySelector(".token-actions").append(box);

  const close = () => {
    box.remove();
    revokeButton.hidden = false;
    revokeButton.focus();
  };
  keep.addEventListener("click", close);
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  });
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    keep.disabled = true;
    showError(ui.listError, "");
    const res = await request("DELETE", config.urls.tokens + encodeURIComponent(token.id) + "/");
    if (res.status === 401) return;
    // 404: it is gone already (revoked elsewhere, or expired): the list should not show it.
    if (res.ok || res.status === 404) {
      removeToken(token);
      return;
    }
    confirm.disabled = false;
    keep.disabled = false;
    showError(ui.listError, failureText(res, ACTIONS.revokeToken));
  });
  keep.focus();
}

function removeToken(token) {
  const at = Math.max(0, tokens.findIndex((t) => t.id === token.id));
  tokens = tokens.filter((t) => t.id !== token.id);
  renderTokens();
  ui.listStatus.textContent = interpolate(gettext("Revoked “%(name)s”."), { name: token.name });
  // Keep the keyboard where the person was: the next token's button, or the name field.
  const next = ui.list.children[Math.min(at, tokens.length - 1)];
  (next ? next.querySelector(".token-revoke") : ui.nameInput).focus();
}

function showSecret(token, secret) {
  ui.secretName.textContent = token.name;
  ui.secretValue.value = secret;
  ui.copyHint.textContent = COPY_HINT;
  ui.secretBox.hidden = false;
  ui.secretValue.focus();
  ui.secretValue.select();
}

function hideSecret() {
  ui.secretValue.value = "";
  ui.secretBox.hidden = true;
  ui.nameInput.focus();
}

async function copySecret() {
  ui.secretValue.focus();
  ui.secretValue.select();
  let copied = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(ui.secretValue.value);
      copied = true;
    }
  } catch (e) {
    copied = false;
  }
  ui.copyHint.textContent = copied
    ? gettext("Copied. Keep it safe: it is shown only this once.")
    : gettext("Press Ctrl+C (⌘C on a Mac) to copy the selected token: it is shown only this once.");
}

function bindTokens() {
  ui.createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(ui.createError, "");
    ui.nameInput.removeAttribute("aria-invalid");
    const name = ui.nameInput.value.trim();
    if (name.length > config.tokenNameMax) {
      ui.nameInput.setAttribute("aria-invalid", "true");
      const most = ngettext("A name has at most %(count)s character.", "A name has at most %(count)s characters.", config.tokenNameMax);
      showError(ui.createError, interpolate(most, { count: formatNumber(config.tokenNameMax) }));
      ui.nameInput.focus();
      return;
    }
    ui.createSubmit.disabled = true;
    const res = await request("POST", config.urls.tokens, { name });
    ui.createSubmit.disabled = false;
    if (res.status === 401) return;
    if (!res.ok || !res.data || typeof res.data.token !== "string") {
      if (res.status === 400) ui.nameInput.setAttribute("aria-invalid", "true");
      showError(ui.createError, failureText(res, ACTIONS.createToken));
      ui.nameInput.focus();
      return;
    }
    const { token: secret, ...token } = res.data;
    tokens = [token, ...tokens.filter((t) => t.id !== token.id)];
    renderTokens();
    ui.nameInput.value = "";
    ui.listStatus.textContent = interpolate(gettext("Created “%(name)s”."), { name: token.name });
    showSecret(token, secret);
    // Past the cap the server revoked the least recently used: show the list it keeps.
    refreshTokens();
  });
  ui.copyButton.addEventListener("click", copySecret);
  ui.secretDone.addEventListener("click", hideSecret);
}

async function refreshTokens() {
  const res = await request("GET", config.urls.tokens);
  if (res.ok && res.data && Array.isArray(res.data.tokens)) {
    tokens = res.data.tokens;
    renderTokens();
  }
}

if (config && ui.privacyForm && ui.createForm) {
  bindPrivacy();
  bindTokens();
  renderTokens();
}
if (config && ui.notificationsForm && config.notifications) {
  bindNotifications();
}
