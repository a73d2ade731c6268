/*
 * Reactions as a message shows them: the server's list ([{emoji, count, users}], in the
 * order each emoji was first used) with my own changes that it has not confirmed yet laid
 * over it, so that a tap shows at once. A change of mine is a wish (emoji -> on or off);
 * it is dropped once the server's list agrees, or when the server refuses it.
 */
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";


/** Whether I am among the people who reacted with this one. */
export function isMine(reaction, meId) {
  return Boolean(reaction && Array.isArray(reaction.users) && reaction.users.includes(meId));
}

/** The list with my reaction `emoji` put on (`on`) or taken off; the list itself is left as it was. */
export function withOwn(reactions, emoji, meId, on) {
  const list = Array.isArray(reactions) ? reactions : [];
  const at = list.findIndex((r) => r.emoji === emoji);
  const known = at >= 0 ? list[at] : null;
  if (Boolean(known && isMine(known, meId)) === on) return list;
  const out = list.slice();
  if (on) {
    const users = known ? known.users.concat([meId]) : [meId];
    const changed = { emoji, count: users.length, users };
    if (known) out[at] = changed;
    else out.push(changed);
    return out;
  }
  const users = known.users.filter((id) => id !== meId);
  if (users.length) out[at] = { emoji, count: users.length, users };
  else out.splice(at, 1);
  return out;
}

/** The reactions to show: the server's, with my wishes (Map emoji -> on) laid over them. */
export function shownReactions(reactions, wishes, meId) {
  let list = Array.isArray(reactions) ? reactions : [];
  if (wishes) for (const [emoji, on] of wishes) list = withOwn(list, emoji, meId, on);
  return list;
}

/** The wishes the server's list does not show yet (those it shows are dropped). */
export function pendingWishes(reactions, wishes, meId) {
  const left = new Map();
  if (!wishes) return left;
  for (const [emoji, on] of wishes) {
    const known = (reactions || []).find((r) => r.emoji === emoji);
    if (Boolean(known && isMine(known, meId)) !== on) left.set(emoji, on);
  }
  return left;
}

/**
 * What tapping `emoji` asks of the server, as the message shows now: answers the frame
 * (`reaction.add`, or `reaction.remove` when it is one of mine) and the wish it makes.
 */
export function toggleFrame(messageId, shown, emoji, meId) {
  const known = (shown || []).find((r) => r.emoji === emoji);
  const on = !(known && isMine(known, meId));
  return { frame: { type: on ? "reaction.add" : "reaction.remove", id: messageId, emoji }, on };
}

/** "alice", "alice and you", "alice, bob and you", "alice, bob and 3 others". */
export function reactorsText(reaction, members, meId) {
  const names = [];
  let mine = false;
  let unknown = 0;
  const byId = new Map((members || []).map((u) => [u.id, u.username]));
  for (const id of (reaction && reaction.users) || []) {
    if (id === meId) mine = true;
    else if (byId.has(id)) names.push(byId.get(id));
    else unknown += 1;
  }
  const shown = names.slice(0, 3);
  const others = names.length - shown.length + unknown;
  const parts = shown.slice();
  if (mine) parts.push(gettext("you"));
  if (others) {
    parts.push(
      others === 1 && !parts.length
        ? gettext("someone")
        : interpolate(ngettext("%(count)s other", "%(count)s others", others), { count: formatNumber(others) })
    );
  }
  if (!parts.length) return "";
  const text =
    parts.length === 1
      ? parts[0]
      : interpolate(gettext("%(names)s and %(last)s"), {
          names: parts.slice(0, -1).join(gettext(", ")),
          last: parts[parts.length - 1],
        });
  // A username is shown as written; "you" and "someone" open a sentence like any word.
  return shown.length ? text : text.charAt(0).toUpperCase() + text.slice(1);
}
