// The console's only script. Pages work without it; it adds:
// - live regions: an element with data-live="URL" is refreshed from URL every
//   2 s while its content says data-active="true" (jobs waiting or running);
//   the server renders the fragment, so every value is escaped there;
// - the mirror form's Connect button tests the remote without reloading the
//   page (and so without losing the typed password);
// - a confirmation before forms with data-confirm are submitted.
"use strict";

function refresh(box) {
  const url = box.getAttribute("data-live");
  let timer = null;
  const tick = async () => {
    timer = null;
    try {
      const resp = await fetch(url, { headers: { "X-Console-Fragment": "1" }, credentials: "same-origin", cache: "no-store" });
      if (resp.ok) {
        const html = await resp.text();
        const doc = new DOMParser().parseFromString(html, "text/html");
        const fresh = doc.body.firstElementChild;
        if (fresh) box.replaceChildren(...doc.body.childNodes);
      }
    } catch (e) { /* the next tick retries */ }
    schedule();
  };
  const schedule = () => {
    const active = box.querySelector("[data-active]");
    if (active && active.getAttribute("data-active") === "true" && timer === null) timer = setTimeout(tick, 2000);
  };
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
