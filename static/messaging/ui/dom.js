/*
 * Building the page's elements. Safety rule: user data (bodies, usernames, titles) only
 * ever goes in through textContent / createTextNode / element properties, never through
 * innerHTML.
 */

import { clockTime, fullTime, ms, shortStamp } from "../text/time.js";
import { convName, directPeer } from "../state/conversations.js";

/** Create an element; attrs are set with setAttribute, children appended as text or nodes. */
export function el(tag, attrs, children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const key of Object.keys(attrs)) {
      const value = attrs[key];
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  if (children) {
    for (const child of [].concat(children)) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

/** A <time> with the full date as its tooltip; `short` for lists. */
export function timeEl(iso, short, testid) {
  const date = new Date(ms(iso));
  return el("time", {
    datetime: iso,
    title: fullTime(date),
    "data-testid": testid || null,
    text: short ? shortStamp(date) : clockTime(date),
  });
}

/** Text with its web addresses as links that open apart from the chat. */
export function linkify(parent, text) {
  const pattern = /\bhttps?:\/\/[^\s<>"']+/gi;
  let last = 0;
  let match;
  while ((match = pattern.exec(text)) !== null) {
    let url = match[0];
    const trail = url.match(/[.,!?;:)\]}'"]+$/);
    if (trail) url = url.slice(0, url.length - trail[0].length);
    if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
    const a = document.createElement("a");
    a.href = url;
    a.textContent = url;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    parent.appendChild(a);
    last = match.index + url.length;
    pattern.lastIndex = last;
  }
  if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
}

function hueOf(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
}

/** A person's small avatar: the first letter of their name on their own colour. */
export function userAvatar(username) {
  const avatar = el("span", { class: "avatar avatar-small", "aria-hidden": "true" });
  avatar.style.setProperty("--hue", String(hueOf(username)));
  avatar.appendChild(el("span", { class: "avatar-letter", text: (Array.from(username)[0] || "?").toUpperCase() }));
  return avatar;
}

/** A conversation's avatar, with the other person's presence dot in a direct one. */
export function fillAvatar(node, state, conv) {
  const name = convName(state.me, conv);
  const initial = Array.from(name.trim())[0] || "?";
  node.replaceChildren();
  node.classList.toggle("avatar-group", conv.kind === "group");
  node.style.setProperty("--hue", String(hueOf(name)));
  node.appendChild(el("span", { class: "avatar-letter", text: initial.toUpperCase() }));
  const peer = directPeer(state.me, conv);
  if (peer) {
    const online = state.online.has(peer.id);
    node.appendChild(
      el("span", {
        class: "presence-dot" + (online ? " is-online" : ""),
        "data-testid": "online-dot",
        "data-online": online ? "true" : "false",
      })
    );
  }
}

/** A left click without modifier keys: anything else keeps the browser's own meaning. */
export function plainClick(event) {
  return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
}

export function showError(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

export function busy(button, on, label) {
  button.disabled = on;
  button.textContent = label;
}
