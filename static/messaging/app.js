/*
 * Every page of a signed-in person (base.html): registers the service worker (/sw.js) for
 * the whole site, so that the chat can be installed and started offline, asks it to keep
 * the chat page's shell of this person, and forgets all of that when they log out.
 */

import { forgetOffline } from "./state/offline.js";

async function register(url) {
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return;
  try {
    await navigator.serviceWorker.register(url, { scope: "/" });
    const registration = await navigator.serviceWorker.ready;
    if (registration.active) registration.active.postMessage({ type: "shell" });
  } catch (e) {
    // No worker (storage off, a private window that refuses it): online, the chat works all the same.
  }
}

/** Forget the offline copy as a logout form goes (the logout's answer clears the rest). */
function forgetOnLogout(logoutPath) {
  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (form instanceof HTMLFormElement && new URL(form.action, location.href).pathname === logoutPath) {
        forgetOffline();
      }
    },
    true
  );
}

const script = document.querySelector("script[data-service-worker]");
if (script) {
  forgetOnLogout(script.dataset.logout || "/accounts/logout/");
  register(script.dataset.serviceWorker);
}
