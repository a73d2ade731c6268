/*
 * The settings page: privacy switches saved as they change, and the person's API tokens,
 * listed, created (the secret shown once) and revoked.
 *
 * Safety rule, as in the chat: user data (token names) only ever goes in through
 * textContent or element properties, never through innerHTML.
 */

import { request, setLoginUrl } from "./net/api.js";
import { sentence, waitText } from "./text/errors.js";

const config = readJSON("settings-config");
if (config && config.urls) setLoginUrl(config.urls.login);

const ui = {
  privacyForm: document.getElementById("privacy-form"),
  privacyStatus: document.getElementById("privacy-status"),
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

const fmtDay = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const fmtMoment = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

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

/** An HTTP failure in plain words; `what` completes "Couldn’t …". */
function failureText(res, what) {
  const data = res.data || {};
  if (res.status === 0) return "Couldn’t reach the server, so nothing changed. Check your connection and try again.";
  if (res.status === 429) return "That’s too many requests for now. Try again in " + waitText(data.retry_after || 60) + ".";
  if (res.status === 403 && /csrf/i.test(String(data.detail || ""))) {
    return "Your session has changed. Reload the page and try again.";
  }
  if (res.status === 400 && data.errors) {
    const messages = [];
    for (const list of Object.values(data.errors)) if (Array.isArray(list)) messages.push(...list);
    if (messages.length) return messages.map(sentence).join(" ");
  }
  if (res.status >= 500 || res.status === 404 || res.status === 405) {
    return "The server couldn’t " + what + " just now. Try again in a moment.";
  }
  return data.detail ? sentence(data.detail) : "Couldn’t " + what + ".";
}

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

// ---------------------------------------------------------------------------------------
// Privacy
// ---------------------------------------------------------------------------------------

const LABELS = {
  show_presence: ["Your presence is shown.", "Your presence is hidden."],
  send_read_receipts: ["Read receipts are sent.", "Read receipts are not sent."],
};

// Each switch's changes go out one at a time, so the last one the person made wins.
const saving = new Map();

function setPrivacyStatus(text, isError) {
  ui.privacyStatus.textContent = text;
  ui.privacyStatus.classList.toggle("is-error", Boolean(isError));
}

async function savePrivacy(input) {
  const field = input.name;
  const previous = saving.get(field) || Promise.resolve();
  const run = previous.then(async () => {
    const wanted = input.checked;
    setPrivacyStatus("Saving…", false);
    const res = await request("PATCH", config.urls.settings, { [field]: wanted });
    if (res.status === 401) return;
    if (res.ok && res.data && typeof res.data[field] === "boolean") {
      input.checked = res.data[field];
      const [on, off] = LABELS[field] || ["", ""];
      setPrivacyStatus("Saved. " + (input.checked ? on : off), false);
    } else {
      input.checked = !wanted;
      setPrivacyStatus(failureText(res, "save that setting"), true);
    }
  });
  saving.set(field, run);
  await run;
}

function bindPrivacy() {
  ui.privacyForm.addEventListener("submit", (event) => event.preventDefault());
  ui.privacyForm.addEventListener("change", (event) => {
    const input = event.target;
    if (input instanceof HTMLInputElement && input.type === "checkbox") savePrivacy(input);
  });
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
  prefix.title = "The token’s first characters";
  prefix.textContent = token.prefix + "…";
  head.append(name, prefix);

  const facts = document.createElement("dl");
  facts.className = "token-facts";
  facts.append(
    fact("Created", timeNode(token.created_at, fmtDay, "")),
    fact("Last used", timeNode(token.last_used_at, fmtMoment, "Never")),
    fact("Expires", timeNode(token.expires_at, fmtDay, "Never")),
  );

  const actions = document.createElement("div");
  actions.className = "token-actions";
  const revoke = document.createElement("button");
  revoke.type = "button";
  revoke.className = "btn btn-ghost btn-small token-revoke";
  revoke.dataset.testid = "token-revoke";
  revoke.textContent = "Revoke";
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
  box.setAttribute("aria-label", "Revoke " + token.name);
  const text = document.createElement("p");
  text.className = "confirm-text";
  text.textContent = "Revoke “" + token.name + "”? Programs using it are cut off at once.";
  const keep = document.createElement("button");
  keep.type = "button";
  keep.className = "btn btn-ghost btn-small";
  keep.dataset.testid = "token-revoke-cancel";
  keep.textContent = "Keep it";
  const confirm = document.createElement("button");
  confirm.type = "button";
  confirm.className = "btn btn-danger btn-small";
  confirm.dataset.testid = "token-revoke-confirm";
  confirm.textContent = "Revoke";
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
    showError(ui.listError, failureText(res, "revoke that token"));
  });
  keep.focus();
}

function removeToken(token) {
  const at = Math.max(0, tokens.findIndex((t) => t.id === token.id));
  tokens = tokens.filter((t) => t.id !== token.id);
  renderTokens();
  ui.listStatus.textContent = "Revoked “" + token.name + "”.";
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
    ? "Copied. Keep it safe: it is shown only this once."
    : "Press Ctrl+C (⌘C on a Mac) to copy the selected token: it is shown only this once.";
}

function bindTokens() {
  ui.createForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(ui.createError, "");
    ui.nameInput.removeAttribute("aria-invalid");
    const name = ui.nameInput.value.trim();
    if (name.length > config.tokenNameMax) {
      ui.nameInput.setAttribute("aria-invalid", "true");
      showError(ui.createError, "A name has at most " + config.tokenNameMax + " characters.");
      ui.nameInput.focus();
      return;
    }
    ui.createSubmit.disabled = true;
    const res = await request("POST", config.urls.tokens, { name });
    ui.createSubmit.disabled = false;
    if (res.status === 401) return;
    if (!res.ok || !res.data || typeof res.data.token !== "string") {
      if (res.status === 400) ui.nameInput.setAttribute("aria-invalid", "true");
      showError(ui.createError, failureText(res, "create a token"));
      ui.nameInput.focus();
      return;
    }
    const { token: secret, ...token } = res.data;
    tokens = [token, ...tokens.filter((t) => t.id !== token.id)];
    renderTokens();
    ui.nameInput.value = "";
    ui.listStatus.textContent = "Created “" + token.name + "”.";
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
