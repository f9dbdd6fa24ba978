// reqrunner Queue Manager: confirm bulk actions, and keep counts and progress current.
// Plain script, no build step; the page works without it.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  var api = document.body.getAttribute("data-api");
  var everyPage = document.body.hasAttribute("data-refresh");
  var watched = document.querySelectorAll("[data-watch]");
  if (!api || !window.fetch || (!everyPage && watched.length === 0)) return;

  function refresh() {
    if (document.hidden) return;
    var ids = Array.prototype.map.call(watched, function (el) {
      return el.getAttribute("data-watch");
    });
    fetch(api + "?ids=" + ids.join(","), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (!status) return;
        Object.keys(status.counts).forEach(function (state) {
          var el = document.querySelector('[data-count="' + state + '"]');
          if (el && el.textContent !== "—") el.textContent = String(status.counts[state]);
        });
        var changed = false;
        Array.prototype.forEach.call(watched, function (el) {
          var job = status.jobs[el.getAttribute("data-watch")];
          if (!job || job.state !== el.getAttribute("data-state")) { changed = true; return; }
          var bar = el.querySelector("[data-progress]");
          var label = el.querySelector("[data-label]");
          if (bar && job.progress !== null) bar.value = job.progress;
          if (label) label.textContent = job.label ||
            (job.progress === null ? "" : Math.round(job.progress * 100) + "%");
        });
        // A job that started, finished or vanished changes the page's lists: show them anew.
        if (changed) window.location.reload();
      })
      .catch(function () {});
  }
  window.setInterval(refresh, 2000);
})();
