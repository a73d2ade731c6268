/*
 * The JSON API, as the pages call it: every path is written here once. Calls go with the
 * session cookie (and the CSRF token for unsafe methods); a 401 sends the person to the
 * login page.
 */

const PATHS = {
  conversations: "/api/conversations/",
  conversation: (id) => "/api/conversations/" + encodeURIComponent(id) + "/",
  messages: (id) => "/api/conversations/" + encodeURIComponent(id) + "/messages/",
  members: (id) => "/api/conversations/" + encodeURIComponent(id) + "/members/",
  member: (id, username) =>
    "/api/conversations/" + encodeURIComponent(id) + "/members/" + encodeURIComponent(username) + "/",
  users: "/api/users/",
  search: "/api/search/",
  blocks: "/api/blocks/",
  block: (username) => "/api/blocks/" + encodeURIComponent(username) + "/",
  report: (id) => "/api/messages/" + encodeURIComponent(id) + "/report/",
  uploads: "/api/uploads/",
};

let loginUrl = "/accounts/login/";

/** Where a signed-out person is sent (the page knows its own URLs). */
export function setLoginUrl(url) {
  if (url) loginUrl = url;
}

/** Go to the login page, coming back here afterwards. */
export function goLogin() {
  const next = location.pathname + location.search;
  window.location.assign(loginUrl + "?next=" + encodeURIComponent(next));
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
  return input ? input.value : "";
}

/**
 * Call the API with the session (and the CSRF token for unsafe methods). Never throws:
 * answers {ok, status, data}, where a network failure is status 0.
 */
export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const init = { method, credentials: "same-origin", headers, cache: "no-store" };
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, data: null };
  }
  if (response.status === 401) {
    goLogin();
    return { ok: false, status: 401, data: null };
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
  }
  return { ok: response.ok, status: response.status, data };
}

/** GET a JSON answer; throws an Error with `status` (0: no network) unless it is a 2xx. */
async function read(path) {
  const res = await request("GET", path);
  if (!res.ok || res.data === null) {
    throw Object.assign(new Error("HTTP " + res.status), { status: res.status });
  }
  return res.data;
}

function query(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined) parts.push(key + "=" + encodeURIComponent(value));
  }
  return parts.length ? "?" + parts.join("&") : "";
}

// Reads throw on failure (the caller keeps what it shows); writes answer {ok, status, data}.

/** A page of the inbox: the first one, or the one at a `next_cursor`. */
export const listConversations = (cursor = null) => read(PATHS.conversations + query({ cursor }));
export const getConversation = (id) => read(PATHS.conversation(id));
export const getMessages = (id, { before = null, limit }) =>
  read(PATHS.messages(id) + query({ before, limit }));
export const findUsers = (q) => read(PATHS.users + query({ q }));

export const searchMessages = (q, { before = null, limit }) =>
  request("GET", PATHS.search + query({ q, limit, before }));
export const listBlocks = () => request("GET", PATHS.blocks);
export const block = (username) => request("POST", PATHS.blocks, { username });
export const unblock = (username) => request("DELETE", PATHS.block(username));
export const reportMessage = (id, reason) => request("POST", PATHS.report(id), { reason });
export const createConversation = (members, title) =>
  request("POST", PATHS.conversations, { members, title });
export const renameConversation = (id, title) => request("PATCH", PATHS.conversation(id), { title });
export const setMuted = (id, muted) => request("PATCH", PATHS.conversation(id), { muted });
export const addMembers = (id, members) => request("POST", PATHS.members(id), { members });
export const removeMember = (id, username) => request("DELETE", PATHS.member(id, username));

/**
 * Upload one file (multipart, field `file`) with the session and the CSRF token, telling
 * `onProgress(sent, total)` as it goes. Answers {done, abort}: `done` resolves to
 * {ok, status, data} like `request` (status 0: the connection failed; `aborted` when
 * `abort()` stopped it). XMLHttpRequest, because fetch tells nothing of an upload's progress.
 */
export function uploadFile(file, { onProgress = () => {} } = {}) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve) => {
    xhr.open("POST", PATHS.uploads);
    xhr.withCredentials = true;
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 401) goLogin();
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch (e) {
        data = null;
      }
      resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, data });
    });
    xhr.addEventListener("error", () => resolve({ ok: false, status: 0, data: null }));
    xhr.addEventListener("abort", () => resolve({ ok: false, status: 0, data: null, aborted: true }));
    const form = new FormData();
    form.append("file", file, file.name || "file");
    xhr.send(form);
  });
  return { done, abort: () => xhr.abort() };
}

/** After a socket that never got going: a 401 or 403 means the session is gone. */
export async function checkSignedIn() {
  const res = await request("GET", PATHS.conversations);
  if (res.status === 403) goLogin(); // a 401 has gone there already
}
