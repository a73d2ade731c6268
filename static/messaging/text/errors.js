/* Failures in plain words: the socket's error codes and the API's HTTP answers. */

/** How a direct conversation's header says that the other person's account is closed. */
export const NO_LONGER_HERE = "No longer on the chat";

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
    return "Can’t deliver this message: " + peer.username + " is no longer on the chat and isn’t able to receive messages.";
  }
  switch (code) {
    case "rate_limited": {
      const wait = Math.max(1, Math.ceil(Number(error.retry_after) || 1));
      return "You’re sending too fast. Trying again in " + wait + (wait === 1 ? " second." : " seconds.");
    }
    case "cannot_send":
      return "Can’t deliver this message: this person isn’t able to receive messages from you.";
    case "too_long":
      return "This message is too long. The limit is " + (maxBody || 4000).toLocaleString() + " characters.";
    case "empty":
      return "Empty messages can’t be sent.";
    case "unavailable":
      return "The server couldn’t save this just now. Nothing was lost — try again.";
    case "conflict":
      return "This message clashed with an earlier one. Retry to send it as a new message.";
    case "not_found":
      return "This conversation or message isn’t available any more.";
    case "forbidden":
      return "You can only change your own messages.";
    case "bad_frame":
    case "bad_json":
    case "unknown_type":
      return "The server didn’t understand the request" + (error.detail ? " (" + error.detail + ")." : ".");
    default:
      return (error && error.detail) || "Something went wrong.";
  }
}

// The server's own words for some refusals, said the way people say them.
const PLAIN_DETAILS = {
  "only the group's creator can remove people": "Only the person who created this group can remove people from it.",
  "you cannot add someone you block or who blocks you": "You can’t add someone you’ve blocked, or who has blocked you.",
  "you cannot block yourself": "You can’t block yourself.",
  "search for at least one word": "Type at least one word to search for: letters or numbers, not only symbols.",
  "say why you report this message": "Please say why you’re reporting this message.",
  "a group needs at least two other people": "A group needs at least two other people.",
  "a direct conversation has no members to change":
    "This is a conversation between two people; it has no members to change.",
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
  return PLAIN_DETAILS[key] || sentence(key.replace(/'/g, "’"));
}

/** "1 second", "45 seconds", "2 minutes". */
export function waitText(seconds) {
  const s = Math.max(1, Math.ceil(Number(seconds) || 1));
  if (s < 90) return s + (s === 1 ? " second" : " seconds");
  const m = Math.ceil(s / 60);
  return m + (m === 1 ? " minute" : " minutes");
}

/** An HTTP failure in plain words; `what` completes "Couldn’t …" (e.g. "rename the group"). */
export function httpErrorText(res, what, notFound) {
  const data = res.data || {};
  if (res.status === 0) return "Couldn’t reach the server, so nothing changed. Check your connection and try again.";
  if (res.status === 429) return "That’s too many requests for now. Try again in " + waitText(data.retry_after || 60) + ".";
  if (res.status === 404) return notFound || "That isn’t available any more.";
  if (res.status === 400 && data.errors) {
    const messages = [];
    for (const list of Object.values(data.errors)) if (Array.isArray(list)) messages.push(...list);
    if (messages.length) return messages.map(plainDetail).join(" ");
  }
  if (res.status === 403 && /csrf/i.test(String(data.detail || ""))) {
    return "Your session has changed. Reload the page and try again.";
  }
  if (res.status >= 500) return "The server couldn’t " + what + " just now. Try again in a moment.";
  return data.detail ? plainDetail(data.detail) : "Couldn’t " + what + ".";
}

/** What the connection banner says while the socket is down. */
export function offlineText(online) {
  return online === false
    ? "You’re offline. Messages will be sent when you’re back online."
    : "Connection lost. Reconnecting…";
}

/** The server took a connection but stopped answering (hung, or the line silently cut). */
export function silentText() {
  return "The server isn’t answering. Your messages are kept and go out once it does. Reconnecting…";
}
