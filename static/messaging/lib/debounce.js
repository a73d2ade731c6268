/** Call `fn` once `wait` ms after the last call; `cancel()` forgets it, `flush()` runs it now. */
export function debounce(fn, wait) {
  let timer = null;
  const wrapped = function () {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, wait);
  };
  wrapped.cancel = function () {
    clearTimeout(timer);
    timer = null;
  };
  wrapped.flush = function () {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
      fn();
    }
  };
  return wrapped;
}
