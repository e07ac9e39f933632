// The console's one script (progressive enhancement: every page works without it).
// A block marked data-live="SECONDS" is fetched again and swapped in place while it is live:
// a running job, a bulk action's progress bar. The new copy drops the attribute once it is done.
(function () {
  "use strict";
  function refresh(block) {
    var seconds = parseFloat(block.getAttribute("data-live")) || 2;
    window.setTimeout(function () {
      fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
        .then(function (answer) { return answer.ok ? answer.text() : Promise.reject(answer.status); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(block.id);
          if (!fresh) { return; }
          block.replaceWith(fresh);
          if (fresh.hasAttribute("data-live")) { refresh(fresh); }
        })
        .catch(function () { refresh(block); });
    }, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live][id]").forEach(refresh);
  });
})();
