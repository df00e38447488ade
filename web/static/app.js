// Keyboard navigation (no inline scripts: the Content-Security-Policy allows only this file).
//   /          focus the search box
//   arrows     move between result photos (left/right; up/down by a row)
//   Enter      open the focused photo (the browser follows the focused link)
//   on a photo's page: left/right = previous/next result, Escape = back to the results
// On a photo's page, pointing at a line of its text outlines that line's box over the photo.
(function () {
  "use strict";
  function typing(target) {
    return target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable);
  }
  function resultLinks() {
    return Array.prototype.slice.call(document.querySelectorAll("ul.grid li.result > a"));
  }
  function columns(links) {
    if (links.length < 2) { return 1; }
    var top = links[0].getBoundingClientRect().top, n = 0;
    while (n < links.length && Math.abs(links[n].getBoundingClientRect().top - top) < 2) { n += 1; }
    return Math.max(1, n);
  }
  function moveInGrid(key) {
    var links = resultLinks();
    if (!links.length) { return false; }
    var at = links.indexOf(document.activeElement);
    var step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(links), ArrowUp: -columns(links) }[key];
    var next = at < 0 ? 0 : Math.min(links.length - 1, Math.max(0, at + step));
    links[next].focus();
    return true;
  }
  function follow(id) {
    var link = document.getElementById(id);
    if (link) { window.location.href = link.href; return true; }
    return false;
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    var handled = false;
    if (event.key === "/") {
      var box = document.getElementById("q");
      if (box) { box.focus(); box.select(); handled = true; }
    } else if (document.querySelector(".image-page")) {
      if (event.key === "ArrowLeft") { handled = follow("prev"); }
      else if (event.key === "ArrowRight") { handled = follow("next"); }
      else if (event.key === "Escape") { handled = follow("back"); }
    } else if (/^Arrow/.test(event.key)) {
      handled = moveInGrid(event.key);
    }
    if (handled) { event.preventDefault(); }
  });
  function pointAt(event, on) {
    var item = event.target.closest ? event.target.closest("#text-lines li[data-line]") : null;
    if (!item) { return; }
    var box = document.querySelector('#text-boxes polygon[data-line="' + item.getAttribute("data-line") + '"]');
    item.classList.toggle("pointed", on);
    if (box) { box.classList.toggle("pointed", on); }
  }
  document.addEventListener("mouseover", function (event) { pointAt(event, true); });
  document.addEventListener("mouseout", function (event) { pointAt(event, false); });
}());
