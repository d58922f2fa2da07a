// kabin's own few lines: copy buttons, and times shown relative to now ("in 1 h 59 min",
// "3 min ago"), refreshed each 30 s in the page (no request to the server).
(function () {
  "use strict";
  function span(seconds) {
    var s = Math.abs(Math.round(seconds));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min";
    var h = Math.floor(m / 60);
    if (h < 48) return h + " h " + (m % 60) + " min";
    return Math.floor(h / 24) + " days";
  }
  function relative(root) {
    (root || document).querySelectorAll("time[data-relative]").forEach(function (t) {
      var when = Date.parse(t.getAttribute("datetime"));
      if (isNaN(when)) return;
      var left = (when - Date.now()) / 1000;
      t.textContent = t.dataset.relative === "until"
        ? (left > 0 ? "in " + span(left) : "now")
        : span(-left) + " ago";
      t.title = new Date(when).toLocaleString();
    });
  }
  document.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-copy]");
    if (!button) return;
    navigator.clipboard.writeText(button.dataset.copy).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    });
  });
  document.addEventListener("DOMContentLoaded", function () { relative(); });
  document.addEventListener("htmx:afterSwap", function (e) { relative(e.target); });
  document.addEventListener("htmx:sseMessage", function () { relative(); });
  setInterval(relative, 30000);
})();
