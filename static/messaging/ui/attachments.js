/*
 * Photos and files. Choosing them (the attach button, dropping them on the conversation,
 * pasting an image) uploads each at once, with a progress bar and a button that cancels it;
 * they wait in the composer, with a preview, until the message is sent. A sent message
 * waits in the outbox until its files are up, then goes like any other (same client_id on
 * every try). The files being uploaded are kept in the browser (state/blobs.js), so that
 * an upload cut by a reload starts again. Also how messages show their files: thumbnails
 * that open the picture in a dialog, and chips with a file's name and size.
 */

import * as api from "../net/api.js";
import { createBlobStore } from "../state/blobs.js";
import { filesOf, isReady } from "../state/outbox.js";
import { isPicture, looksLikePicture, MAX_FILES, sizeText, uploadErrorText, uploadMayRetry } from "../text/files.js";
import { draftPlace, newClientId } from "./composer.js";
import { el } from "./dom.js";
import { formatNumber, gettext, interpolate, ngettext } from "../text/i18n.js";

const PREVIEW_SIZE = 96; // px, the longer side of a preview in the composer
const THUMB_BOX = 240; // px, the longer side of a picture in a message
const MAX_TRIES = 6; // of an upload the server could not take for a passing reason (5xx)

const SVG = "http://www.w3.org/2000/svg";
const FILE_PATH = "M6 2.8h8l4.8 4.8V20a1.2 1.2 0 0 1-1.2 1.2H6A1.2 1.2 0 0 1 4.8 20V4A1.2 1.2 0 0 1 6 2.8zm7.4 1.5V8.2h3.9";

/** Where the composer's files wait before they are sent: {place: [entries]} (see composer.draftPlace). */
const draftsKey = (userId) => "chat:" + userId + ":files";

/** A sheet of paper with a folded corner: a file that is not a picture. */
function fileIcon() {
  const svg = document.createElementNS(SVG, "svg");
  for (const [name, value] of Object.entries({ viewBox: "0 0 24 24", width: "20", height: "20", focusable: "false" })) {
    svg.setAttribute(name, value);
  }
  const path = document.createElementNS(SVG, "path");
  for (const [name, value] of Object.entries({ d: FILE_PATH, fill: "none", stroke: "currentColor", "stroke-width": "1.6", "stroke-linejoin": "round" })) {
    path.setAttribute(name, value);
  }
  svg.appendChild(path);
  return el("span", { class: "file-icon", "aria-hidden": "true" }, [svg]);
}

/** Width and height that fit a picture into a box of `side` px, keeping its shape. */
function fitted(width, height, side) {
  if (!width || !height) return { width: side, height: side };
  const scale = Math.min(1, side / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

export function createAttachments(app) {
  const { ui, state, me, store, outbox } = app;
  const blobs = createBlobStore(me.id);
  const list = document.getElementById("composer-files");
  const attach = document.getElementById("attach-button");
  const picker = document.getElementById("file-input");
  const dropZone = document.getElementById("drop-zone");
  const viewer = {
    dialog: document.getElementById("viewer"),
    title: document.getElementById("viewer-title"),
    image: document.getElementById("viewer-image"),
    download: document.getElementById("viewer-download"),
    returnTo: null,
  };
  const running = new Map(); // key -> {abort, wake, timer, sent, total}
  const previews = new Map(); // key -> a small data: URL made here (the page allows no blob: images)

  // -- the composer's files ---------------------------------------------------------------

  function drafts() {
    const d = store.get(draftsKey(me.id), {});
    return d && typeof d === "object" && !Array.isArray(d) ? d : {};
  }

  function saveDrafts(d) {
    for (const place of Object.keys(d)) if (!Array.isArray(d[place]) || !d[place].length) delete d[place];
    if (Object.keys(d).length) store.set(draftsKey(me.id), d);
    else store.remove(draftsKey(me.id));
  }

  /** The files waiting in the open pane's composer. */
  function draftFiles() {
    const cur = state.cur;
    if (!cur) return [];
    const found = drafts()[draftPlace(cur)];
    return Array.isArray(found) ? found : [];
  }

  /** Take the composer's files for a message being sent (their uploads go on). */
  function takeDraft() {
    const cur = state.cur;
    if (!cur) return [];
    const d = drafts();
    const taken = d[draftPlace(cur)] || [];
    delete d[draftPlace(cur)];
    saveDrafts(d);
    renderComposer();
    return taken;
  }

  /** Find a file by key: {place, entry} among the drafts, or {item, entry} in the outbox. */
  function locate(key) {
    const d = drafts();
    for (const place of Object.keys(d)) {
      const entry = (d[place] || []).find((e) => e.key === key);
      if (entry) return { drafts: d, place, entry };
    }
    const item = outbox.holding(key);
    if (item) return { item, entry: filesOf(item).find((a) => a.key === key) };
    return null;
  }

  /** Add files the person chose, dropped or pasted to the open pane's composer. */
  function add(files) {
    const cur = state.cur;
    if (!cur || cur.gone || ui.composer.hidden || !files.length) return;
    const d = drafts();
    const place = draftPlace(cur);
    const entries = Array.isArray(d[place]) ? d[place] : [];
    const room = MAX_FILES - entries.length;
    if (files.length > room) {
      app.notices.showNotice(
        interpolate(gettext("At most %(count)s files go with one message. Send these, then attach the rest."), {
          count: formatNumber(MAX_FILES),
        })
      );
    }
    const added = [];
    for (const file of files.slice(0, Math.max(0, room))) {
      const name = file.name || "pasted-image.png";
      if (!file.size) {
        app.notices.showNotice(interpolate(gettext("“%(name)s” is empty, so it can’t be sent."), { name }));
        continue;
      }
      const entry = { key: newClientId(), name, size: file.size, type: file.type || "", upload: null, error: null };
      entries.push(entry);
      added.push(entry);
      blobs.put(entry.key, file);
      preview(entry.key, file);
      upload(entry.key, file, name);
    }
    if (!added.length) return;
    d[place] = entries;
    saveDrafts(d);
    renderComposer();
    app.composer.updateSendable();
    app.notices.announce(
      added.length === 1
        ? interpolate(gettext("“%(name)s” is uploading. It goes with your next message."), { name: added[0].name })
        : interpolate(
            ngettext(
              "%(count)s file is uploading. They go with your next message.",
              "%(count)s files are uploading. They go with your next message.",
              added.length
            ),
            { count: formatNumber(added.length) }
          )
    );
  }

  /** A small picture of an image being sent, for its chip (made once, kept for this page). */
  async function preview(key, file) {
    if (!looksLikePicture(file.type) || typeof createImageBitmap !== "function") return;
    try {
      const bitmap = await createImageBitmap(file);
      const size = fitted(bitmap.width, bitmap.height, PREVIEW_SIZE);
      const canvas = document.createElement("canvas");
      canvas.width = size.width;
      canvas.height = size.height;
      canvas.getContext("2d").drawImage(bitmap, 0, 0, size.width, size.height);
      bitmap.close();
      previews.set(key, canvas.toDataURL("image/png"));
    } catch (e) {
      return; // not an image after all, or one the browser cannot read: the chip shows an icon
    }
    for (const img of document.querySelectorAll('[data-upload-key="' + CSS.escape(key) + '"] .file-thumb')) {
      img.src = previews.get(key);
      img.hidden = false;
    }
  }

  // -- uploading --------------------------------------------------------------------------

  /**
   * Upload a file, unless another tab of this person is uploading it already (after a
   * reload, every open tab finds the same waiting files): the browser's lock on its key,
   * held until the upload is done or given up, lets one tab do it. Without Web Locks
   * (plain http away from localhost) each tab tries.
   */
  function upload(key, file, name) {
    const locks = navigator.locks;
    if (!locks || typeof locks.request !== "function") {
      attempt(key, file, name);
      return;
    }
    let began = false;
    locks
      .request("chat-upload:" + me.id + ":" + key, { ifAvailable: true }, (lock) => {
        if (!lock) {
          running.delete(key);
          return null;
        }
        began = true;
        return attempt(key, file, name);
      })
      .catch((error) => {
        if (began) throw error; // a fault of this code, not of the lock: let it show
        attempt(key, file, name); // the browser refused the lock itself
      });
  }

  /**
   * Send a file up until it is there, given up, or cancelled. A lost connection is tried
   * again for as long as it takes (later each time, at once when the browser is back
   * online); a server that could not answer, a few times; any other refusal is final.
   */
  async function attempt(key, file, name) {
    for (let tries = 1; ; tries++) {
      const job = api.uploadFile(file, { onProgress: (sent, total) => progress(key, sent, total) });
      const run = { abort: job.abort, wake: null, timer: null, sent: 0, total: file.size };
      running.set(key, run);
      progress(key, 0, file.size);
      const res = await job.done;
      if (running.get(key) !== run) return; // cancelled meanwhile
      if (res.ok && res.data && res.data.upload && typeof res.data.upload.id === "string") {
        running.delete(key);
        blobs.remove(key);
        finished(key, res.data.upload);
        return;
      }
      if (!uploadMayRetry(res) || (res.status !== 0 && tries >= MAX_TRIES)) {
        running.delete(key);
        failed(key, uploadErrorText(res, name));
        return;
      }
      setChipNote(key, gettext("Waiting to try again…"));
      const again = await new Promise((resolve) => {
        run.timer = setTimeout(() => resolve(true), Math.min(30000, 1000 * Math.pow(2, tries)));
        run.wake = () => resolve(true);
        run.abort = () => resolve(false);
      });
      clearTimeout(run.timer);
      if (!again || running.get(key) !== run) return;
    }
  }

  function progress(key, sent, total) {
    const run = running.get(key);
    if (run) {
      run.sent = sent;
      run.total = total;
    }
    const percent = total ? Math.round((sent / total) * 100) : 0;
    for (const bar of document.querySelectorAll('[data-upload-key="' + CSS.escape(key) + '"] progress')) {
      bar.value = percent;
    }
    setChipNote(key, "");
  }

  function setChipNote(key, text) {
    for (const note of document.querySelectorAll('[data-upload-key="' + CSS.escape(key) + '"] .file-note')) {
      note.textContent = text;
    }
  }

  function finished(key, uploaded) {
    const found = locate(key);
    if (!found) return; // removed meanwhile: the server drops uploads never sent
    if (found.drafts) {
      found.entry.upload = uploaded;
      found.entry.error = null;
      saveDrafts(found.drafts);
      renderComposer();
      app.composer.updateSendable();
      return;
    }
    const item = outbox.uploaded(found.item.client_id, key, uploaded);
    if (!item) return;
    app.pane.renderPending(item);
    if (isReady(item) && item.state === "pending") app.composer.transmit(item);
  }

  function failed(key, text) {
    const found = locate(key);
    if (!found) return;
    if (found.drafts) {
      found.entry.error = text;
      saveDrafts(found.drafts);
      renderComposer();
      app.composer.updateSendable();
      app.notices.announce(text);
      return;
    }
    const item = outbox.fail(found.item.client_id, { code: "upload", detail: text });
    if (item) app.pane.renderPending(item);
  }

  /** Stop a file's upload and take it off its composer or its waiting message. */
  function cancel(key) {
    const run = running.get(key);
    running.delete(key);
    if (run) {
      clearTimeout(run.timer);
      run.abort();
    }
    blobs.remove(key);
    previews.delete(key);
    const found = locate(key);
    if (!found) return;
    if (found.drafts) {
      found.drafts[found.place] = found.drafts[found.place].filter((e) => e.key !== key);
      saveDrafts(found.drafts);
      renderComposer();
      app.composer.updateSendable();
      app.notices.announce(interpolate(gettext("“%(name)s” removed."), { name: found.entry.name }));
      return;
    }
    const clientId = found.item.client_id;
    const item = outbox.dropFile(clientId, key);
    if (!item) {
      app.pane.removePending(clientId);
      return;
    }
    app.pane.renderPending(item);
    if (isReady(item) && item.state === "pending") app.composer.transmit(item);
  }

  /** Upload again what a waiting message still needs, from the files kept in the browser. */
  function resume(item) {
    for (const file of filesOf(item)) {
      if (file.upload || running.has(file.key)) continue;
      restart(file.key, file.name);
    }
  }

  async function restart(key, name) {
    running.set(key, { abort: () => {}, wake: null, timer: null, sent: 0, total: 0 });
    const kept = await blobs.get(key);
    if (!running.has(key)) return; // cancelled while it was read
    running.delete(key);
    if (!kept) {
      failed(key, interpolate(gettext("“%(name)s” was not kept by this browser when the page reloaded. Attach it again."), { name }));
      return;
    }
    if (!previews.has(key)) preview(key, kept);
    upload(key, kept, name);
  }

  /** After a reload: go on with every upload that was cut, and forget files nobody waits for. */
  function boot() {
    const wanted = new Set();
    for (const item of outbox.all()) for (const f of filesOf(item)) if (!f.upload) wanted.add(f.key);
    for (const item of outbox.uploading()) resume(item);
    const d = drafts();
    for (const place of Object.keys(d)) {
      for (const entry of d[place] || []) {
        if (entry.upload || entry.error) continue;
        wanted.add(entry.key);
        restart(entry.key, entry.name);
      }
    }
    blobs.prune((key) => wanted.has(key));
    renderComposer();
  }

  // -- chips ------------------------------------------------------------------------------

  /** A file on its way: its preview, name, size, progress or failure, and a button that removes it. */
  function chip(entry, { removable, testid }) {
    const run = running.get(entry.key);
    const uploading = !entry.upload && !entry.error;
    const li = el("li", {
      class: "file-chip is-" + (entry.error ? "failed" : uploading ? "uploading" : "ready"),
      "data-upload-key": entry.key,
      "data-testid": testid,
      "data-state": entry.error ? "failed" : uploading ? "uploading" : "ready",
    });
    const thumb = el("img", { class: "file-thumb", alt: "", hidden: !previews.has(entry.key) });
    if (previews.has(entry.key)) thumb.src = previews.get(entry.key);
    li.appendChild(thumb);
    if (!previews.has(entry.key)) li.appendChild(fileIcon());
    const text = el("span", { class: "file-text" }, [
      el("span", { class: "file-name", "data-testid": "file-name", text: entry.name }),
      el("span", { class: "file-size", text: sizeText(entry.size) }),
    ]);
    li.appendChild(text);
    if (uploading) {
      const bar = el("progress", {
        class: "file-progress",
        max: "100",
        "aria-label": interpolate(gettext("Uploading %(name)s"), { name: entry.name }),
        "data-testid": "upload-progress",
      });
      bar.value = run && run.total ? Math.round((run.sent / run.total) * 100) : 0;
      text.appendChild(bar);
      text.appendChild(el("span", { class: "file-note", "aria-live": "polite" }));
    }
    if (entry.error) text.appendChild(el("span", { class: "file-error", "data-testid": "file-error", text: entry.error }));
    if (removable) {
      const remove = el("button", {
        type: "button",
        class: "chip-remove",
        "data-testid": "file-remove",
        "aria-label": interpolate(uploading ? gettext("Cancel the upload of %(name)s") : gettext("Remove %(name)s"), {
          name: entry.name,
        }),
        title: uploading ? gettext("Cancel the upload") : gettext("Remove"),
        text: "×",
      });
      remove.addEventListener("click", (event) => {
        event.stopPropagation();
        const next = li.nextElementSibling || li.previousElementSibling;
        cancel(entry.key);
        const again = next && next.isConnected ? next.querySelector('[data-testid="file-remove"]') : null;
        (again || ui.input).focus();
      });
      li.appendChild(remove);
    }
    return li;
  }

  function renderComposer() {
    const files = draftFiles();
    list.replaceChildren(...files.map((entry) => chip(entry, { removable: true, testid: "composer-file" })));
    list.hidden = !files.length;
  }

  /** The files of a message still in the outbox, with their progress and a cancel button each. */
  function pendingFiles(item) {
    const files = filesOf(item);
    if (!files.length) return null;
    const sending = isReady(item) && item.state === "pending";
    return el(
      "ul",
      { class: "pending-files", "aria-label": gettext("Files"), "data-testid": "pending-files" },
      files.map((entry) => chip(entry, { removable: !sending, testid: "pending-file" }))
    );
  }

  // -- files in messages ------------------------------------------------------------------

  /** A message's files: pictures as thumbnails that open whole, others as download chips. */
  function render(m) {
    const files = Array.isArray(m.attachments) ? m.attachments : [];
    if (m.deleted || !files.length) return null;
    const box = el("div", { class: "attachments", "data-testid": "attachments" });
    for (const file of files) {
      if (isPicture(file)) {
        const size = fitted(file.width, file.height, THUMB_BOX);
        const img = el("img", {
          class: "thumb-image",
          src: file.thumbnail_url,
          alt: file.name,
          width: size.width,
          height: size.height,
          loading: "lazy",
          decoding: "async",
        });
        const button = el(
          "button",
          {
            type: "button",
            class: "thumb",
            "data-testid": "attachment-image",
            "data-name": file.name,
            title: interpolate(gettext("Open %(name)s"), { name: file.name }),
          },
          [img]
        );
        button.addEventListener("click", (event) => {
          event.stopPropagation();
          openViewer(file, button);
        });
        box.appendChild(button);
        continue;
      }
      const link = el(
        "a",
        {
          class: "file-chip file-link",
          href: file.url,
          download: file.name,
          "data-testid": "attachment-file",
          "data-name": file.name,
          title: interpolate(gettext("Download %(name)s"), { name: file.name }),
        },
        [
          fileIcon(),
          el("span", { class: "file-text" }, [
            el("span", { class: "file-name", text: file.name }),
            el("span", { class: "file-size", text: sizeText(file.size) }),
          ]),
        ]
      );
      link.addEventListener("click", (event) => event.stopPropagation());
      box.appendChild(link);
    }
    return box;
  }

  function openViewer(file, from) {
    viewer.returnTo = from;
    viewer.title.textContent = file.name;
    viewer.image.alt = file.name;
    viewer.image.src = file.url;
    if (file.width && file.height) {
      viewer.image.width = file.width;
      viewer.image.height = file.height;
    } else {
      viewer.image.removeAttribute("width");
      viewer.image.removeAttribute("height");
    }
    viewer.download.href = file.url;
    viewer.download.setAttribute("download", file.name);
    viewer.download.setAttribute("aria-label", interpolate(gettext("Download %(name)s"), { name: file.name }));
    viewer.dialog.showModal();
    viewer.dialog.querySelector("[data-close]").focus();
  }

  // -- choosing, dropping, pasting --------------------------------------------------------

  function carriesFiles(event) {
    const types = event.dataTransfer ? Array.from(event.dataTransfer.types || []) : [];
    return types.includes("Files");
  }

  function bind() {
    attach.addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      add(Array.from(picker.files || []));
      picker.value = "";
      ui.input.focus();
    });
    ui.input.addEventListener("paste", (event) => {
      const data = event.clipboardData;
      const files = data ? Array.from(data.files || []) : [];
      if (!files.length) return;
      // A copied picture often comes with its address as text too: the picture is what was meant.
      if (!Array.from(data.types || []).includes("text/plain")) event.preventDefault();
      add(files);
    });
    let depth = 0;
    ui.conversation.addEventListener("dragenter", (event) => {
      if (!carriesFiles(event) || ui.composer.hidden) return;
      depth += 1;
      dropZone.hidden = false;
    });
    ui.conversation.addEventListener("dragover", (event) => {
      if (!carriesFiles(event) || ui.composer.hidden) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    ui.conversation.addEventListener("dragleave", (event) => {
      if (!carriesFiles(event)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) dropZone.hidden = true;
    });
    ui.conversation.addEventListener("drop", (event) => {
      depth = 0;
      dropZone.hidden = true;
      if (!carriesFiles(event) || ui.composer.hidden) return;
      event.preventDefault();
      add(Array.from(event.dataTransfer.files || []));
      ui.input.focus();
    });
    for (const button of viewer.dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => viewer.dialog.close());
    }
    viewer.dialog.addEventListener("click", (event) => {
      if (event.target === viewer.dialog) viewer.dialog.close();
    });
    viewer.dialog.addEventListener("close", () => {
      viewer.image.removeAttribute("src");
      const back = viewer.returnTo;
      viewer.returnTo = null;
      if (back && back.isConnected) back.focus({ preventScroll: true });
    });
    window.addEventListener("online", () => {
      // Back online: uploads waiting to try again go now.
      for (const run of running.values()) if (run.wake) run.wake();
    });
  }

  return {
    bind,
    boot,
    draftFiles,
    takeDraft,
    renderComposer,
    pendingFiles,
    render,
    resume,
    cancel,
    /** Forget the files kept in the browser (the person logged out). */
    forget: () => blobs.clear(),
  };
}
