// Tollgate console: the little the pages need beyond HTML. No inline script anywhere (the
// content security policy forbids it), no library.
"use strict";

function fmt(s) {
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}

// Countdowns tick down every second from what the server rendered.
function tick() {
  document.querySelectorAll(".countdown[data-left]").forEach((el) => {
    const left = Math.max(0, parseInt(el.dataset.left, 10) - 1);
    el.dataset.left = String(left);
    el.textContent = fmt(left);
  });
}

// A list with data-refresh fetches its rows again every two seconds: new requests appear without
// reloading the page, and the rows that are new are marked for a moment.
function refresh(table) {
  const url = table.dataset.refresh;
  const body = table.tBodies[0];
  let busy = false;
  setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (res.status === 401) { window.location.href = "/console/login?why=expired"; return; }
      if (!res.ok) return;
      const html = await res.text();
      const seen = new Set(Array.from(body.rows).map((r) => r.dataset.id).filter(Boolean));
      const scratch = document.createElement("tbody");
      scratch.innerHTML = html;
      const ids = Array.from(scratch.rows).map((r) => r.dataset.id).filter(Boolean);
      if (ids.join() !== Array.from(seen).join()) {
        body.replaceChildren(...scratch.rows);
        Array.from(body.rows).forEach((r) => { if (r.dataset.id && !seen.has(r.dataset.id)) r.classList.add("fresh"); });
        const count = document.getElementById("pending-count");
        if (count) count.textContent = String(ids.length);
      }
    } catch (e) {
      // The next round tries again.
    } finally {
      busy = false;
    }
  }, 2000);
}

// On an approval's page: a approves, d moves to the deny reason (Enter then denies).
function shortcuts() {
  const approve = document.getElementById("approve");
  const denyReason = document.getElementById("deny-reason");
  if (!approve || !denyReason) return;
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
    if (e.key === "a") { e.preventDefault(); approve.requestSubmit(); }
    if (e.key === "d") { e.preventDefault(); denyReason.focus(); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setInterval(tick, 1000);
  document.querySelectorAll("table[data-refresh]").forEach(refresh);
  shortcuts();
});
