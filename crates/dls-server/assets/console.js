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
