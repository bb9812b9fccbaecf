// Lantern's dashboard: a page whose <main> has data-live (the period in
// milliseconds) shows builds that are still running. This script fetches
// the page again now and then and puts the new <main> in place of the old,
// until a fetched page no longer says data-live. While nothing changes it
// waits longer between fetches, up to a minute. Without this script, the
// page reloads itself through a <noscript> refresh.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.fetch || !window.DOMParser) {
    return;
  }
  var base = parseInt(main.getAttribute("data-live"), 10);
  if (!(base > 0)) {
    base = 3000;
  }
  var wait = base;
  function schedule() {
    window.setTimeout(tick, wait);
  }
  function tick() {
    fetch(window.location.href, { headers: { "Accept": "text/html" }, cache: "no-store", credentials: "same-origin" })
      .then(function (resp) {
        if (!resp.ok) {
          throw new Error("status " + resp.status);
        }
        return resp.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main");
        var current = document.querySelector("main");
        if (!fresh || !current) {
          return;
        }
        if (fresh.innerHTML === current.innerHTML) {
          wait = Math.min(wait * 1.5, 60000);
        } else {
          wait = base;
          current.replaceWith(document.adoptNode(fresh));
          document.title = doc.title;
        }
        if (fresh.hasAttribute("data-live")) {
          schedule();
        }
      })
      .catch(function () {
        wait = Math.min(wait * 2, 60000);
        schedule();
      });
  }
  schedule();
})();
