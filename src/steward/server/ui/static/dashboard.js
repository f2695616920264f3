// Steward dashboard: keeps pages live without a framework.
// - An element with data-poll="URL" has its contents replaced by URL's HTML every 2 s while
//   the tab is visible; a run page stops polling once the run has ended.
// - An element with data-events="URL" shows a run's Server-Sent Events as they arrive: text
//   deltas in #stream-text, steps in #stream-events; it closes on {"event": "end"}.
"use strict";
(function () {
  const PERIOD_MS = 2000;
  const refreshers = [];

  function poll(element) {
    const url = element.dataset.poll;
    let timer = null;
    async function refresh() {
      window.clearTimeout(timer);
      if (document.hidden) { schedule(); return; }
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
        if (response.redirected) { window.location = "/ui/login"; return; }
        if (response.ok) {
          const html = await response.text();
          // Keep a decision form the person is typing in: skip the swap while one has focus.
          if (!element.contains(document.activeElement)) {
            element.innerHTML = html;
          }
          if (element.id === "run-live" && !element.querySelector(".live")) {
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
    refreshers.push(refresh);
  }

  function summary(message) {
    const data = message.data || {};
    if (message.event === "updates") {
      const [kind, step] = Object.entries(data)[0] || ["update", {}];
      if (kind === "tool") return `step ${step.step}: tool ${step.name} answered`;
      if (kind === "model") return `step ${step.step}: model answered`;
      return `${kind}: ${JSON.stringify(step).slice(0, 200)}`;
    }
    if (message.event === "values") return "run ended with output";
    if (message.event === "error") return `run failed: ${data.message || data.error || ""}`;
    return `${message.event}: ${JSON.stringify(data).slice(0, 200)}`;
  }

  function stream(element) {
    const text = element.querySelector("#stream-text");
    const list = element.querySelector("#stream-events");
    const state = element.querySelector("#stream-state");
    const source = new EventSource(element.dataset.events);
    source.onopen = () => { state.textContent = "live"; };
    source.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.event === "end") {
        source.close();
        state.textContent = "ended";
        refreshers.forEach((refresh) => refresh());
        return;
      }
      if (message.event === "messages") {
        text.textContent += (message.data && message.data.delta) || "";
        return;
      }
      const item = document.createElement("li");
      item.textContent = summary(message);
      list.appendChild(item);
    };
    source.onerror = () => { source.close(); state.textContent = "disconnected"; };
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("[data-events]").forEach(stream);
  });
})();
