// The jobs page follows its jobs (no inline scripts: the Content-Security-Policy allows only files).
// It asks GET /api/jobs every second while a job is active (every 5 s otherwise) and updates each
// row's progress, counts, rate and ETA in place; when a job changes state or a new one appears
// (a schedule's run, another user's), it loads the page again for the buttons that state offers,
// unless you are filling in one of its forms or an error is shown.
(function () {
  "use strict";
  var table = document.getElementById("jobs-table");
  if (!table || !window.fetch) { return; }
  var ACTIVE = ["queued", "scanning", "running"];
  var FAST = 1000, SLOW = 5000;
  var reloadWanted = false;

  function duration(seconds) {  // as the page's `duration` filter writes it
    if (seconds === null || seconds === undefined) { return ""; }
    var s = Math.round(seconds);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (s < 60) { return s + "s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m" + two(s % 60) + "s"; }
    return Math.floor(s / 3600) + "h" + two(Math.floor((s % 3600) / 60)) + "m";
  }
  function setText(row, selector, text) {
    var el = row.querySelector(selector);
    if (el && el.textContent !== String(text)) { el.textContent = text; }
  }
  function busyWithAForm() {
    var el = document.activeElement;
    if (el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA") && el.closest(".job-form")) { return true; }
    return Array.prototype.some.call(document.querySelectorAll(".job-form textarea, .job-form input"),
                                     function (f) { return f.value !== f.defaultValue; });
  }
  function update(jobs) {
    var rows = {};
    Array.prototype.forEach.call(table.querySelectorAll("tbody tr[data-job-id]"), function (row) {
      rows[row.getAttribute("data-job-id")] = row;
    });
    var changed = jobs.length !== Object.keys(rows).length;
    jobs.forEach(function (job) {
      var row = rows[String(job.id)];
      if (!row) { changed = true; return; }
      if (row.getAttribute("data-state") !== job.state) { changed = true; }
      setText(row, ".done", job.done);
      setText(row, ".total", job.total);
      setText(row, ".failed", job.failed);
      setText(row, ".rate", job.rate_img_s.toFixed(1) + " img/s");
      setText(row, ".eta", duration(job.eta_s));
      var bar = row.querySelector("progress");
      if (bar && job.total > 0) {
        bar.max = job.total;
        bar.value = job.done + job.failed;
      }
    });
    return changed;
  }
  function poll() {
    if (document.hidden) { window.setTimeout(poll, SLOW); return; }
    fetch(table.getAttribute("data-api"), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (resp) { if (!resp.ok) { throw new Error(String(resp.status)); } return resp.json(); })
      .then(function (body) {
        if (update(body.jobs)) { reloadWanted = true; }
        if (reloadWanted && !busyWithAForm() && !document.getElementById("jobs-error")) {
          // GET the page again (never re-send a form: a page answering one has another address)
          var page = table.getAttribute("data-page") || "/jobs";
          window.location.replace(window.location.pathname === page ? window.location.href : page);
          return;
        }
        var active = body.jobs.some(function (job) { return ACTIVE.indexOf(job.state) >= 0; });
        table.setAttribute("data-active", active ? "1" : "0");
        window.setTimeout(poll, active ? FAST : SLOW);
      })
      .catch(function () { window.setTimeout(poll, SLOW); });
  }
  window.setTimeout(poll, table.getAttribute("data-active") === "1" ? FAST : SLOW);
}());
