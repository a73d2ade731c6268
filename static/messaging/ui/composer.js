/*
 * The composer: typing a message (drafts kept per conversation, the length counter, the
 * typing signal), sending it through the outbox (with the reply being written and the
 * files attached: ui/reply.js, ui/attachments.js), and retrying or discarding sends that
 * failed.
 */

import { isReady, sendFrame } from "../state/outbox.js";
import { draftKey } from "../state/storage.js";
import { errorText } from "../text/errors.js";
import { formatNumber, gettext, interpolate } from "../text/i18n.js";
import { codePoints } from "../text/words.js";
import { debounce } from "../lib/debounce.js";

const TYPING_SEND_EVERY = 3000;

/** A new client_id: a UUID, made by hand where the browser offers none (plain http). */
export function newClientId() {
  const c = window.crypto;
  if (c && typeof c.randomUUID === "function") {
    try {
      return c.randomUUID();
    } catch (e) {
      /* not a secure context: fall through */
    }
  }
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
}

/** Where the open pane's draft is kept: by conversation, or by the person of a new one. */
export function draftPlace(cur) {
  return cur.to ? "to:" + cur.to.username : cur.id;
}

export function createComposer(app) {
  const { ui, state, me, store, outbox } = app;
  const maxBody = app.maxBody;
  const counterFrom = Math.max(0, maxBody - Math.max(200, Math.round(maxBody * 0.1)));
  let lastTypingSent = 0;

  function saveDraft() {
    const cur = state.cur;
    if (!cur) return;
    const value = ui.input.value;
    if (value.trim()) store.set(draftKey(me.id, draftPlace(cur)), value);
    else store.remove(draftKey(me.id, draftPlace(cur)));
  }

  const saveDraftSoon = debounce(saveDraft, 250);

  function restoreDraft() {
    const cur = state.cur;
    const value = cur ? store.get(draftKey(me.id, draftPlace(cur)), "") : "";
    ui.input.value = typeof value === "string" ? value : "";
    autosize();
    updateCounter();
    app.mentions.close();
    app.reply.renderBar();
    app.attachments.renderComposer();
  }

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight, 240) + "px";
  }

  function updateCounter() {
    const length = codePoints(ui.input.value.replace(/\s+$/, ""));
    const over = length > maxBody;
    if (length >= counterFrom) {
      ui.counter.hidden = false;
      ui.counter.textContent = over
        ? interpolate(gettext("%(count)s over the limit"), { count: formatNumber(length - maxBody) })
        : interpolate(gettext("%(count)s left"), { count: formatNumber(maxBody - length) });
      ui.counter.title = interpolate(gettext("%(length)s / %(limit)s characters"), {
        length: formatNumber(length),
        limit: formatNumber(maxBody),
      });
    } else {
      ui.counter.hidden = true;
      ui.counter.textContent = "";
    }
    ui.counter.classList.toggle("is-over", over);
    ui.composer.classList.toggle("is-over", over);
    ui.send.disabled = over;
  }

  function onInput() {
    autosize();
    updateCounter();
    saveDraftSoon();
    const cur = state.cur;
    // Nothing exists to type in before a first message: no one is told of it.
    if (!cur || cur.to || !ui.input.value.trim()) return;
    const now = Date.now();
    if (now - lastTypingSent >= TYPING_SEND_EVERY && app.socket.send({ type: "typing", conversation: cur.id })) {
      lastTypingSent = now;
    }
  }

  /** Send an outbox item whose files are all up (one still waiting for them goes once they are). */
  function transmit(item) {
    if (!isReady(item)) return false;
    return app.socket.send(sendFrame(item));
  }

  function send() {
    let cur = state.cur;
    if (!cur || cur.gone || !ui.blockedBar.hidden) return;
    const body = ui.input.value.replace(/^\s*\n/, "").replace(/\s+$/, "");
    const files = app.attachments.draftFiles();
    if (!body.trim() && !files.length) {
      ui.input.focus();
      return;
    }
    if (files.some((f) => f.error)) {
      app.notices.showNotice(gettext("A file couldn’t be uploaded. Remove it to send the rest."));
      return;
    }
    if (codePoints(body) > maxBody) {
      updateCounter();
      app.notices.showNotice(errorText({ code: "too_long" }, maxBody));
      return;
    }
    // A first message to someone goes to their name: the server opens the conversation.
    const reply = app.reply.pending();
    const item = outbox.add({
      clientId: newClientId(),
      conversation: cur.id,
      to: cur.to ? cur.to.username : null,
      body: body.trim() ? body : "",
      createdAt: new Date().toISOString(),
      replyTo: reply ? reply.id : null,
      quote: reply ? { id: reply.id, sender: reply.sender, body: reply.body, deleted: reply.deleted } : null,
      attachments: files,
    });
    app.attachments.takeDraft();
    app.reply.cancel({ focus: false });
    app.mentions.close();
    cur.dividerAfter = null; // answering means the new ones were read
    ui.input.value = "";
    store.remove(draftKey(me.id, draftPlace(cur)));
    if (cur.detached) {
      cur = app.pane.setupConversation(cur.id, null); // back to the newest messages, where this one goes
    }
    autosize();
    updateCounter();
    app.notices.hideNotice();
    app.pane.renderPending(item);
    app.pane.scrollToBottom();
    lastTypingSent = 0;
    transmit(item);
    ui.input.focus();
  }

  function retrySend(clientId, manual) {
    const item = outbox.retry(clientId, { manual, newClientId });
    if (!item) return;
    if (item.client_id !== clientId) app.pane.renamePending(clientId, item);
    else app.pane.renderPending(item);
    if (isReady(item)) transmit(item);
    else app.attachments.resume(item); // its files first: it goes once they are up
  }

  /** Whether there is something to send: the send button says so. */
  function updateSendable() {
    const files = app.attachments.draftFiles();
    ui.composer.classList.toggle("has-files", files.length > 0);
  }

  return {
    saveDraft,
    transmit,
    updateSendable,
    restoreDraft,
    retrySend,
    discardSend(clientId) {
      outbox.discard(clientId);
      app.pane.removePending(clientId);
    },
    /** Send everything waiting in the outbox (the connection is back). */
    flush() {
      for (const item of outbox.unsent()) transmit(item);
    },
    /** Resend every send that failed for a passing reason, oldest first, to keep their order. */
    retryDue() {
      for (const item of outbox.dueForRetry()) retrySend(item.client_id, false);
    },
    /** A failed send: show why, and let the outbox plan its retry. */
    failed(frame) {
      const item = outbox.fail(frame.client_id, frame);
      if (!item) return;
      app.pane.renderPending(item);
      app.notices.status(interpolate(gettext("Message not sent: %(reason)s"), { reason: errorText(frame, app.maxBody) }));
    },
    bind() {
      ui.composer.addEventListener("submit", (event) => {
        event.preventDefault();
        send();
      });
      ui.input.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
          event.preventDefault();
          send();
        }
      });
      ui.input.addEventListener("input", onInput);
    },
  };
}
