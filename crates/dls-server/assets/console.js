// The console's only script (no inline script: the Content-Security-Policy forbids it).
// * Times: every <time datetime="…"> is shown in the browser's time zone.
// * Destructive actions: a form with data-confirm asks first.
// * The audit filter: the browser's time zone offset, so that the times typed are the
//   browser's.
"use strict";
function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) { t.textContent = d.toLocaleString(); t.title = t.getAttribute("datetime"); }
  }
}
document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  for (const tz of document.querySelectorAll("input[data-tz]")) { tz.value = String(new Date().getTimezoneOffset()); }
});
document.addEventListener("htmx:afterSettle", (e) => localTimes(e.target));
document.addEventListener("submit", (e) => {
  const message = e.target.getAttribute && e.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) { e.preventDefault(); }
}, true);
// The PIN sheet's print button.
document.addEventListener("click", (e) => {
  if (e.target.closest && e.target.closest("[data-print]")) { window.print(); }
});

// Uploads (the files page): the file itself is the body of a POST to the form's
// data-upload address, its fields in the query, the page's CSRF token in X-CSRF-Token;
// XMLHttpRequest's upload progress drives the <progress> bar. A file over data-max-bytes
// is refused before sending; the service's answer (JSON {"error"}) is shown as text.
function uploadError(form, message) {
  const p = form.querySelector(".upload-error");
  p.textContent = message;
  p.hidden = false;
}
document.addEventListener("submit", (e) => {
  const form = e.target;
  if (e.defaultPrevented || !form.getAttribute || !form.getAttribute("data-upload")) { return; }
  e.preventDefault();
  const file = form.querySelector("input[type=file]").files[0];
  form.querySelector(".upload-error").hidden = true;
  if (!file) { uploadError(form, "Choose a file."); return; }
  const max = Number(form.getAttribute("data-max-bytes"));
  if (max && file.size > max) {
    uploadError(form, `The file is ${file.size} bytes: larger than this service accepts (at most ${max} bytes, --max-file-bytes).`);
    return;
  }
  const q = new URLSearchParams();
  q.set("name", form.elements["name"].value.trim() || file.name);
  q.set("type", form.elements["type"].value);
  for (const f of ["device-type", "software-version"]) {
    const v = form.elements[f].value.trim();
    if (v) { q.set(f, v); }
  }
  const bar = form.querySelector("progress");
  const percent = form.querySelector(".percent");
  const button = form.querySelector("button[type=submit]");
  form.querySelector(".progress").hidden = false;
  bar.value = 0;
  percent.textContent = "0 %";
  button.disabled = true;
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `${form.getAttribute("data-upload")}?${q}`);
  xhr.setRequestHeader("X-CSRF-Token", form.elements["csrf"].value);
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.addEventListener("progress", (p) => {
    if (p.lengthComputable) {
      bar.value = Math.floor((p.loaded * 100) / p.total);
      percent.textContent = `${bar.value} %`;
    }
  });
  xhr.addEventListener("load", () => {
    button.disabled = false;
    let answer = {};
    try { answer = JSON.parse(xhr.responseText); } catch (_) { answer = {}; }
    if (xhr.status === 201 && answer.id !== undefined) {
      bar.value = 100;
      percent.textContent = "100 %";
      window.location.assign(`/files?added=${encodeURIComponent(answer.id)}`);
    } else if (xhr.status === 401) {
      window.location.assign("/login?ended=1");
    } else {
      uploadError(form, answer.error || `The upload failed (${xhr.status}).`);
    }
  });
  xhr.addEventListener("error", () => {
    button.disabled = false;
    uploadError(form, "The upload was broken off (the connection closed); nothing was stored.");
  });
  xhr.send(file);
});
