/*
 * What a screen reader hears of incoming messages: the first of a quiet moment at once, and
 * whatever follows within the window as one line (the one message, or how many came), so a
 * busy group is not read out message by message.
 */

/**
 * `say(text)` speaks; `summary(count)` words a burst of `count` messages. `timers` holds
 * `setTimeout`, `clearTimeout` and `now` (the page's by default; tests pass their own).
 */
export function createBurst({ windowMs, say, summary, timers = null }) {
  const t = timers || { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (id) => clearTimeout(id), now: () => Date.now() };
  let lastSpoken = -Infinity;
  let held = [];
  let timer = null;

  function flush() {
    timer = null;
    const texts = held;
    held = [];
    if (!texts.length) return;
    lastSpoken = t.now();
    say(texts.length === 1 ? texts[0] : summary(texts.length));
  }

  return {
    /** Messages just arrived, in order, each as the sentence that would announce it. */
    add(texts) {
      if (!texts.length) return;
      const quiet = timer === null && t.now() - lastSpoken >= windowMs;
      if (quiet && texts.length === 1) {
        lastSpoken = t.now();
        say(texts[0]);
        return;
      }
      held.push(...texts);
      if (timer === null) timer = t.setTimeout(flush, quiet ? 0 : windowMs);
    },
    /** Drop what waits to be said (another conversation was opened). */
    clear() {
      if (timer !== null) t.clearTimeout(timer);
      timer = null;
      held = [];
    },
  };
}
