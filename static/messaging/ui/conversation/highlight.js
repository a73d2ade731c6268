/*
 * A message highlighted: as a search hit (until the search is closed or another hit is
 * shown), or for a moment when a quote was followed to it.
 */

/** Highlight a message as a search hit. */
export function markFound(li) {
  li.classList.add("is-found");
  li.dataset.found = "true";
}

/** Take the highlight off the search hits in a list. */
export function clearFound(list) {
  for (const old of Array.from(list.querySelectorAll(".is-found"))) {
    old.classList.remove("is-found");
    delete old.dataset.found;
  }
}

/** Highlight a message for a moment (steady, without the fade, for those who ask for less motion). */
export function flashMessage(li) {
  li.classList.remove("is-flashed");
  void li.offsetWidth; // start the highlight over when it is shown again
  li.classList.add("is-flashed");
  li.dataset.flashed = "true";
  setTimeout(() => {
    li.classList.remove("is-flashed");
    delete li.dataset.flashed;
  }, 2000);
}
