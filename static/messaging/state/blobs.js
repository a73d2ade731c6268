/*
 * The bytes of files still to upload, kept in the browser (IndexedDB) under their
 * attachment key, so that an upload cut by a reload starts again from the file the person
 * chose. localStorage holds only text, and too little of it for a photo. Each file is
 * removed once it is uploaded or given up. Where IndexedDB is missing or refused (some
 * private windows), nothing is kept and every call answers as if the store were empty.
 */

const DB = "chat-files";
const STORE = "files";

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** A store of files for one person (`owner`: their user id, so that another person's are never read). */
export function createBlobStore(owner, idb = globalThis.indexedDB) {
  let opening = null;

  function open() {
    if (!idb) return Promise.resolve(null);
    if (!opening) {
      opening = new Promise((resolve) => {
        let request;
        try {
          request = idb.open(DB, 1);
        } catch (e) {
          resolve(null);
          return;
        }
        request.onupgradeneeded = () => request.result.createObjectStore(STORE);
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => resolve(null);
        request.onblocked = () => resolve(null);
      });
    }
    return opening;
  }

  async function run(mode, work) {
    const db = await open();
    if (!db) return null;
    try {
      const tx = db.transaction(STORE, mode);
      return await promised(work(tx.objectStore(STORE)));
    } catch (e) {
      return null;
    }
  }

  const keyOf = (key) => owner + ":" + key;

  return {
    /** Keep a file; answers whether it was kept. */
    async put(key, file) {
      return (await run("readwrite", (s) => s.put(file, keyOf(key)))) !== null;
    },
    /** The file kept under `key`, or null. */
    async get(key) {
      const found = await run("readonly", (s) => s.get(keyOf(key)));
      return found || null;
    },
    async remove(key) {
      await run("readwrite", (s) => s.delete(keyOf(key)));
    },
    /**
     * Remove the files that `keep(key)` no longer wants (left by a tab that closed mid-way),
     * and any that someone else signed in here before left behind.
     */
    async prune(keep) {
      const all = (await run("readonly", (s) => s.getAllKeys())) || [];
      const prefix = owner + ":";
      for (const stored of all) {
        const mine = typeof stored === "string" && stored.startsWith(prefix);
        if (!mine || !keep(stored.slice(prefix.length))) await run("readwrite", (s) => s.delete(stored));
      }
    },
    /** Forget every file, of anyone (the person logged out). */
    async clear() {
      await run("readwrite", (s) => s.clear());
    },
  };
}
