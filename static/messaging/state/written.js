/*
 * When a message was written, for messages that waited in the outbox.
 *
 * The rule: a message shows the time it was written. For a message sent at once that is
 * the time the server stored it (the same minute), so it shows the server's time, as
 * everyone else sees it. A message that waited (offline, a hung server, a retry) keeps the
 * time it was written, from the moment it is written to after a reload, and adds when it
 * was sent ("sent 10:12"); the others see the time it reached them.
 *
 * The wait is measured on this device's clock alone (from writing to the server's answer,
 * which comes as the message is stored), so a device whose clock is off does not make
 * every message look late.
 */

import { ms } from "../text/time.js";

const MINUTE = 60000;
// A message answered sooner than this after it was written went out at once, even when
// its minute turned meanwhile: "10:11, sent 10:12" for a second's wait says nothing.
const WAITED = 10000;
// Written times kept for messages that waited; older ones are forgotten first.
const KEEP = 200;

/**
 * The written time, on the server's clock, of a message stored at `storedAt` (ISO) and
 * acknowledged here `ackedLocal` ms after it was written here at `writtenLocal` (ISO):
 * answers an ISO time, or null when the message did not wait (WAITED) past its minute.
 */
export function writtenAtFor({ writtenLocal, ackedLocal, storedAt }) {
  const stored = ms(storedAt);
  const written = ms(writtenLocal);
  if (!stored || !written || !(ackedLocal - written >= WAITED)) return null;
  const at = stored - (ackedLocal - written);
  if (Math.floor(at / MINUTE) === Math.floor(stored / MINUTE)) return null;
  return new Date(at).toISOString();
}

/** What a message's time shows: {shown, sent}, `sent` being null unless it waited. */
export function messageTimes(createdAt, writtenAt) {
  if (!writtenAt || !(ms(writtenAt) < ms(createdAt))) return { shown: createdAt, sent: null };
  return { shown: writtenAt, sent: createdAt };
}

/** The written times of my messages that waited, kept by `store` under `key`. */
export function createWrittenTimes({ store, key }) {
  function all() {
    const kept = store.get(key, {});
    return kept && typeof kept === "object" && !Array.isArray(kept) ? kept : {};
  }
  return {
    get(clientId) {
      const at = clientId ? all()[clientId] : undefined;
      return typeof at === "string" ? at : null;
    },
    remember(clientId, writtenAt) {
      if (!clientId || !writtenAt) return;
      const kept = all();
      kept[clientId] = writtenAt;
      const ids = Object.keys(kept);
      for (const old of ids.slice(0, Math.max(0, ids.length - KEEP))) delete kept[old];
      store.set(key, kept);
    },
  };
}
