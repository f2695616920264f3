// Steward dashboard: keeps pages live by re-fetching server-rendered fragments.
// An element with data-poll="URL" has its contents replaced by URL's HTML every 2 s while the
// tab is visible; a run page stops polling once the run has ended (the fragment says so).
"use strict";
(function () {
  const PERIOD_MS = 2000;

  function poll(element) {
    let url = element.dataset.poll;
    let timer = null;
    async function refresh() {
      if (document.hidden) { schedule(); return; }
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
        if (response.redirected || response.status === 401) { window.location = "/ui/login"; return; }
        if (response.ok) {
          const html = await response.text();
          // Keep a decision form the person is typing in: skip the swap while one has focus.
          if (!element.contains(document.activeElement) || document.activeElement === document.body) {
            element.innerHTML = html;
          }
          if (element.id === "run-live" && !element.querySelector(".live")) {
            element.dataset.done = "1";
            return; // the run ended: its page is final
          }
        }
      } catch (error) {
        // A network blip: try again on the next tick.
      }
      schedule();
    }
    function schedule() { timer = window.setTimeout(refresh, PERIOD_MS); }
    schedule();
    return () => window.clearTimeout(timer);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-poll]").forEach(poll);
  });
})();
