/* Files in words: their sizes, what they are, and why an upload failed. */

import { waitText } from "./errors.js";
import { formatNumber, gettext, interpolate, ngettext } from "./i18n.js";

// At most this many files go with one message (PROTOCOL.md).
export const MAX_FILES = 10;

/** "512 bytes", "12 KB", "3.4 MB": sizes as people read them (1 KB = 1,000 bytes). */
export function sizeText(bytes) {
  const n = Math.max(0, Number(bytes) || 0);
  if (n < 1000) return interpolate(ngettext("%(count)s byte", "%(count)s bytes", n), { count: formatNumber(n) });
  const units = [gettext("%(count)s KB"), gettext("%(count)s MB"), gettext("%(count)s GB"), gettext("%(count)s TB")];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const shown = value < 10 ? Math.round(value * 10) / 10 : Math.round(value);
  return interpolate(units[unit], { count: formatNumber(shown) });
}

/** Whether a file is a picture the page can show: one the server decoded and made a thumbnail of. */
export function isPicture(attachment) {
  return Boolean(attachment && attachment.thumbnail_url && /^image\//.test(attachment.content_type || ""));
}

/** Whether a file chosen on this device looks like a picture (for its preview while it uploads). */
export function looksLikePicture(type) {
  return /^image\/(png|jpeg|gif|webp|bmp|avif)$/.test(String(type || ""));
}

/** What a message with files and no text says in the inbox and notifications. */
export function filesSummary(attachments) {
  const list = Array.isArray(attachments) ? attachments : [];
  if (!list.length) return "";
  const pictures = list.filter(isPicture).length;
  if (list.length === 1) {
    return pictures ? gettext("Photo") : interpolate(gettext("File: %(name)s"), { name: list[0].name });
  }
  const count = formatNumber(list.length);
  if (pictures === list.length) return interpolate(ngettext("%(count)s photo", "%(count)s photos", list.length), { count });
  return interpolate(ngettext("%(count)s file", "%(count)s files", list.length), { count });
}

/**
 * Why an upload failed, from the API's answer ({status, data}): the server's own words
 * when it gave them (too large, empty, not allowed), else what to do.
 */
export function uploadErrorText(res, name) {
  const data = (res && res.data) || {};
  const status = res ? res.status : 0;
  const said = (text, more) => interpolate(text, { name, ...more });
  if (status === 0) return said(gettext("Couldn’t upload “%(name)s”: the connection was lost. It will try again."));
  if (status === 413) {
    return data.detail
      ? said(gettext("Couldn’t upload “%(name)s”: %(detail)s"), { detail: data.detail })
      : said(gettext("“%(name)s” is too large to send."));
  }
  if (status === 429) {
    return said(gettext("Too many uploads for now. Try “%(name)s” again in %(wait)s."), { wait: waitText(data.retry_after || 60) });
  }
  if (status >= 500) return said(gettext("The server couldn’t take “%(name)s” just now. Try again in a moment."));
  if (data.detail) return said(gettext("Couldn’t upload “%(name)s”: %(detail)s"), { detail: data.detail });
  return said(gettext("Couldn’t upload “%(name)s”."));
}

/** Whether an upload that failed this way is worth trying again on its own. */
export function uploadMayRetry(res) {
  const status = res ? res.status : 0;
  return status === 0 || status >= 500;
}
