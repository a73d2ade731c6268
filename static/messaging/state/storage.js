/*
 * What the page keeps in the browser (drafts, the outbox, notification choices), as JSON
 * under keys "chat:<user id>:…". The storage areas are passed in, so that tests can hand
 * in their own.
 */

/** A JSON view of one storage area; `seal()` stops all writes (the person logged out). */
export function createStore(area) {
  let sealed = false;
  return {
    get(key, fallback) {
      try {
        const raw = area.getItem(key);
        return raw === null ? fallback : JSON.parse(raw);
      } catch (e) {
        return fallback;
      }
    },
    set(key, value) {
      if (sealed) return;
      try {
        area.setItem(key, JSON.stringify(value));
      } catch (e) {
        /* storage full or disabled: keep going without persistence */
      }
    },
    remove(key) {
      try {
        area.removeItem(key);
      } catch (e) {
        /* ignore */
      }
    },
    seal() {
      sealed = true;
    },
  };
}

/** The page's storage areas; none when the browser disables storage. */
export function browserAreas() {
  try {
    return [window.localStorage, window.sessionStorage];
  } catch (e) {
    return [];
  }
}

/** Empty every area: the next person at this computer must find nothing of this one's. */
export function wipeAreas(areas) {
  for (const area of areas) {
    try {
      area.clear();
    } catch (e) {
      /* ignore */
    }
  }
}

/** Drop what someone else signed in here before left behind. */
export function forgetOtherPeople(areas, userId) {
  for (const area of areas) {
    try {
      const keys = [];
      for (let i = 0; i < area.length; i++) keys.push(area.key(i));
      for (const key of keys) {
        const owner = /^chat:(\d+):/.exec(key || "");
        if (owner && Number(owner[1]) !== userId) area.removeItem(key);
      }
    } catch (e) {
      /* ignore */
    }
  }
}

export const outboxKey = (userId) => "chat:" + userId + ":outbox";
export const writtenKey = (userId) => "chat:" + userId + ":written";
export const draftKey = (userId, conversationId) => "chat:" + userId + ":draft:" + conversationId;
export const notifyKey = (userId) => "chat:" + userId + ":notify";
export const previewKey = (userId) => "chat:" + userId + ":notify-previews";
