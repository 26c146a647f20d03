// The console's only script. Pages work without it; it adds:
// - live regions: an element with data-live="URL" is refreshed from URL every
//   2 s while its content says data-active="true" (jobs waiting or running),
//   and every data-live-idle ms otherwise when given (the Jobs page), only
//   while the page is visible; the server renders the fragment, so every
//   value is escaped there;
// - the mirror form's Connect button tests the remote without reloading the
//   page (and so without losing the typed password);
// - a confirmation before forms with data-confirm are submitted.
"use strict";

// refresh keeps box (an element with data-live="URL") up to date from URL:
// every 2 s while its content has data-active="true" (a job waits or runs);
// otherwise every data-live-idle milliseconds when the box has that attribute
// (the Jobs page: a job started later, by a schedule or a push, shows without
// a reload), else not at all. It polls only while the page is visible, and
// refreshes at once when the page is shown again; a 401 (the session ended)
// stops it.
function refresh(box) {
  const url = box.getAttribute("data-live");
  const idle = Number(box.getAttribute("data-live-idle")) || 0;
  let timer = null;
  let busy = false;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (busy || stopped) return;
    busy = true;
    try {
      const resp = await fetch(url, { headers: { "X-Console-Fragment": "1" }, credentials: "same-origin", cache: "no-store" });
      if (resp.status === 401) stopped = true;
      if (resp.ok) {
        const html = await resp.text();
        const doc = new DOMParser().parseFromString(html, "text/html");
        const fresh = doc.body.firstElementChild;
        // Unchanged content is left alone: the box is an aria-live region,
        // and replacing it would announce it again every idle tick.
        if (fresh && doc.body.innerHTML.trim() !== box.innerHTML.trim()) box.replaceChildren(...doc.body.childNodes);
      }
    } catch (e) { /* the next tick retries */ }
    busy = false;
    schedule();
  };
  const delay = () => {
    const active = box.querySelector("[data-active]");
    if (active && active.getAttribute("data-active") === "true") return 2000;
    return idle;
  };
  const schedule = () => {
    const ms = delay();
    if (stopped || ms <= 0 || timer !== null || document.visibilityState === "hidden") return;
    timer = setTimeout(tick, ms);
  };
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    } else if (timer === null && delay() > 0) {
      tick();
    }
  });
  schedule();
}

function connectButton(form) {
  const btn = form.querySelector('button[value="connect"]');
  if (!btn) return;
  btn.addEventListener("click", async (ev) => {
    ev.preventDefault();
    const out = form.querySelector("#connect-result");
    form.querySelectorAll(".field-error").forEach((e) => e.remove());
    form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    out.className = "";
    out.textContent = "Connecting…";
    const body = new URLSearchParams(new FormData(form));
    body.set("action", "connect");
    try {
      // form.action would be the button named "action".
      const resp = await fetch(form.getAttribute("action"), { method: "POST", body, credentials: "same-origin",
        headers: { "Accept": "application/json" } });
      const ans = await resp.json();
      out.textContent = ans.connected || "";
      out.className = "ok";
      for (const [field, msg] of Object.entries(ans.errors || {})) {
        const slot = form.querySelector("#err-" + field) || form.querySelector("#err-form");
        const p = document.createElement("p");
        p.className = "error field-error";
        p.setAttribute("role", "alert");
        p.textContent = msg;
        slot.append(p);
        const input = form.querySelector("#" + field);
        if (input) input.setAttribute("aria-invalid", "true");
      }
    } catch (e) {
      out.className = "error";
      out.textContent = "The console could not reach the server.";
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(refresh);
  document.querySelectorAll("form.mirror-form").forEach(connectButton);
  document.querySelectorAll("form[data-confirm]").forEach((f) =>
    f.addEventListener("submit", (ev) => { if (!confirm(f.getAttribute("data-confirm"))) ev.preventDefault(); }));
  // Docker Hub fills the URL; another registry type clears it.
  document.querySelectorAll('input[name="registryType"]').forEach((r) => r.addEventListener("change", () => {
    const host = document.getElementById("remoteHost");
    if (r.value === "dockerhub" && r.checked) { host.value = "https://registry-1.docker.io"; }
    else if (r.checked && host.value === "https://registry-1.docker.io") { host.value = ""; }
  }));
});
