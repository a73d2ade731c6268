/* Failures in plain words: the socket's error codes and the API's HTTP answers. */

import { formatNumber, gettext, gettext_noop, interpolate, language, ngettext } from "./i18n.js";

/** How a direct conversation's header says that the other person's account is closed. */
export const NO_LONGER_HERE = gettext("No longer on the chat");

/** Whether a member (as the server lists them) has been deactivated. */
export function isGone(user) {
  return Boolean(user && user.active === false);
}

/**
 * A socket `error` frame (or a failed send's error) as a sentence for the person; `peer` is
 * the other person of the direct conversation it happened in, if any.
 */
export function errorText(error, maxBody, peer) {
  const code = error && error.code;
  if (code === "cannot_send" && isGone(peer)) {
    return interpolate(
      gettext("Can’t deliver this message: %(name)s is no longer on the chat and isn’t able to receive messages."),
      { name: peer.username }
    );
  }
  switch (code) {
    case "rate_limited": {
      const wait = Math.max(1, Math.ceil(Number(error.retry_after) || 1));
      return interpolate(
        ngettext(
          "You’re sending too fast. Trying again in %(count)s second.",
          "You’re sending too fast. Trying again in %(count)s seconds.",
          wait
        ),
        { count: formatNumber(wait) }
      );
    }
    case "cannot_send":
      return gettext("Can’t deliver this message: this person isn’t able to receive messages from you.");
    case "too_long":
      return interpolate(gettext("This message is too long. The limit is %(count)s characters."), {
        count: formatNumber(maxBody || 4000),
      });
    case "empty":
      return gettext("Empty messages can’t be sent.");
    case "unavailable":
      return gettext("The server couldn’t save this just now. Nothing was lost — try again.");
    case "conflict":
      return gettext("This message clashed with an earlier one. Retry to send it as a new message.");
    case "not_found":
      return gettext("This conversation or message isn’t available any more.");
    case "forbidden":
      return gettext("You can only change your own messages.");
    case "bad_frame":
    case "bad_json":
    case "unknown_type":
      return error.detail
        ? interpolate(gettext("The server didn’t understand the request (%(detail)s)."), { detail: error.detail })
        : gettext("The server didn’t understand the request.");
    default:
      return (error && error.detail) || gettext("Something went wrong.");
  }
}

// The server's own words for some refusals, said the way people say them.
// Marked for the catalogue here, translated when said (plainDetail).
const PLAIN_DETAILS = {
  "only the group's creator can remove people": gettext_noop("Only the person who created this group can remove people from it."),
  "you cannot add someone you block or who blocks you": gettext_noop("You can’t add someone you’ve blocked, or who has blocked you."),
  "you cannot block yourself": gettext_noop("You can’t block yourself."),
  "search for at least one word": gettext_noop("Type at least one word to search for: letters or numbers, not only symbols."),
  "say why you report this message": gettext_noop("Please say why you’re reporting this message."),
  "a group needs at least two other people": gettext_noop("A group needs at least two other people."),
  "a direct conversation has no members to change":
    gettext_noop("This is a conversation between two people; it has no members to change."),
};

/** A capital first letter and a full stop at the end. */
export function sentence(text) {
  const t = String(text || "").trim();
  if (!t) return "";
  const first = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(first) ? first : first + ".";
}

/** The server's `detail` as the person should read it. */
export function plainDetail(detail) {
  const key = String(detail || "").trim();
  return key in PLAIN_DETAILS ? gettext(PLAIN_DETAILS[key]) : sentence(key.replace(/'/g, "’"));
}

/** "1 second", "45 seconds", "2 minutes". */
export function waitText(seconds) {
  const s = Math.max(1, Math.ceil(Number(seconds) || 1));
  if (s < 90) return interpolate(ngettext("%(count)s second", "%(count)s seconds", s), { count: formatNumber(s) });
  const m = Math.ceil(s / 60);
  return interpolate(ngettext("%(count)s minute", "%(count)s minutes", m), { count: formatNumber(m) });
}

/*
 * What the person tried, said whole in each way it can fail (a sentence is never put
 * together from pieces: word order differs between languages). Each answers
 * {failed, busy}: "Couldn’t …." and "The server couldn’t … just now.".
 */
export const ACTIONS = {
  search: () => ({
    failed: gettext("Couldn’t search."),
    busy: gettext("The server couldn’t search just now. Try again in a moment."),
  }),
  createGroup: () => ({
    failed: gettext("Couldn’t create the group."),
    busy: gettext("The server couldn’t create the group just now. Try again in a moment."),
  }),
  renameGroup: () => ({
    failed: gettext("Couldn’t rename the group."),
    busy: gettext("The server couldn’t rename the group just now. Try again in a moment."),
  }),
  leaveGroup: () => ({
    failed: gettext("Couldn’t leave the group."),
    busy: gettext("The server couldn’t leave the group just now. Try again in a moment."),
  }),
  removeMember: (name) => ({
    failed: interpolate(gettext("Couldn’t remove %(name)s."), { name }),
    busy: interpolate(gettext("The server couldn’t remove %(name)s just now. Try again in a moment."), { name }),
  }),
  addMembers: (names) => ({
    failed: interpolate(gettext("Couldn’t add %(names)s."), { names: listText(names) }),
    busy: interpolate(gettext("The server couldn’t add %(names)s just now. Try again in a moment."), {
      names: listText(names),
    }),
  }),
  report: () => ({
    failed: gettext("Couldn’t send the report."),
    busy: gettext("The server couldn’t send the report just now. Try again in a moment."),
  }),
  block: (name) => ({
    failed: interpolate(gettext("Couldn’t block %(name)s."), { name }),
    busy: interpolate(gettext("The server couldn’t block %(name)s just now. Try again in a moment."), { name }),
  }),
  mute: () => ({
    failed: gettext("Couldn’t mute the conversation."),
    busy: gettext("The server couldn’t mute the conversation just now. Try again in a moment."),
  }),
  unmute: () => ({
    failed: gettext("Couldn’t unmute the conversation."),
    busy: gettext("The server couldn’t unmute the conversation just now. Try again in a moment."),
  }),
  unblock: (name) => ({
    failed: interpolate(gettext("Couldn’t unblock %(name)s."), { name }),
    busy: interpolate(gettext("The server couldn’t unblock %(name)s just now. Try again in a moment."), { name }),
  }),
};

/** Names joined the way the page's language lists them ("a, b and c"). */
export function listText(names) {
  return new Intl.ListFormat(language(), { style: "long", type: "conjunction" }).format(names);
}

/** An HTTP failure in plain words; `action` is one of ACTIONS' answers. */
export function httpErrorText(res, action, notFound) {
  const data = res.data || {};
  if (res.status === 0) return gettext("Couldn’t reach the server, so nothing changed. Check your connection and try again.");
  if (res.status === 429) {
    return interpolate(gettext("That’s too many requests for now. Try again in %(wait)s."), {
      wait: waitText(data.retry_after || 60),
    });
  }
  if (res.status === 404) return notFound || gettext("That isn’t available any more.");
  if (res.status === 400 && data.errors) {
    const messages = [];
    for (const list of Object.values(data.errors)) if (Array.isArray(list)) messages.push(...list);
    if (messages.length) return messages.map(plainDetail).join(" ");
  }
  if (res.status === 403 && /csrf/i.test(String(data.detail || ""))) {
    return gettext("Your session has changed. Reload the page and try again.");
  }
  if (res.status >= 500) return action.busy;
  return data.detail ? plainDetail(data.detail) : action.failed;
}

/** What the connection banner says while the socket is down. */
export function offlineText(online) {
  return online === false
    ? gettext("You’re offline. Messages will be sent when you’re back online.")
    : gettext("Connection lost. Reconnecting…");
}

/** The server took a connection but stopped answering (hung, or the line silently cut). */
export function silentText() {
  return gettext("The server isn’t answering. Your messages are kept and go out once it does. Reconnecting…");
}
