/* Times in the reader's own time zone and the page's language: "Today", "Yesterday", "Tue", "Mar 4". */

import { gettext, language } from "./i18n.js";

const lang = language();

const fmtTime = new Intl.DateTimeFormat(lang, { hour: "numeric", minute: "2-digit" });
const fmtFull = new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "short" });
const fmtWeekday = new Intl.DateTimeFormat(lang, { weekday: "short" });
const fmtShortDate = new Intl.DateTimeFormat(lang, { month: "short", day: "numeric" });
const fmtShortDateYear = new Intl.DateTimeFormat(lang, {
  year: "numeric",
  month: "short",
  day: "numeric",
});
const fmtDay = new Intl.DateTimeFormat(lang, { weekday: "long", month: "long", day: "numeric" });
const fmtDayYear = new Intl.DateTimeFormat(lang, {
  weekday: "long",
  year: "numeric",
  month: "long",
  day: "numeric",
});

/** Milliseconds since the epoch of an ISO time; 0 for anything that is not one. */
export function ms(iso) {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : 0;
}

function startOfDay(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

function daysBefore(date, now) {
  return Math.round((startOfDay(now) - startOfDay(date)) / 86400000);
}

/** The clock time alone ("3:07 PM"). */
export function clockTime(date) {
  return fmtTime.format(date);
}

/** Date and time in full, for a tooltip. */
export function fullTime(date) {
  return fmtFull.format(date);
}

/** The heading of a day in a conversation: "Today", "Yesterday", "Monday, March 3". */
export function dayLabel(date, now = new Date()) {
  const diff = daysBefore(date, now);
  if (diff === 0) return gettext("Today");
  if (diff === 1) return gettext("Yesterday");
  return date.getFullYear() === now.getFullYear() ? fmtDay.format(date) : fmtDayYear.format(date);
}

/** A short stamp for lists: the time today, "Yesterday", a weekday this week, else a date. */
export function shortStamp(date, now = new Date()) {
  const diff = daysBefore(date, now);
  if (diff === 0) return fmtTime.format(date);
  if (diff === 1) return gettext("Yesterday");
  if (diff > 1 && diff < 7) return fmtWeekday.format(date);
  return date.getFullYear() === now.getFullYear()
    ? fmtShortDate.format(date)
    : fmtShortDateYear.format(date);
}
