/** Call `fn` once `wait` ms after the last call; `cancel()` forgets it. */
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
  return wrapped;
}
