// Gennaker console: the little behaviour htmx does not give. No inline scripts (the CSP forbids them).
"use strict";
document.addEventListener("submit", function (event) {
  // Destructive forms carry data-confirm: ask first (without JavaScript they simply post).
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);
document.addEventListener("htmx:sseMessage", function (event) {
  // Keep a followed log scrolled to its end as lines arrive.
  var log = document.getElementById("log");
  if (log && event.target === log) {
    log.scrollTop = log.scrollHeight;
  }
});
