// The supervisor's long pages (a campaign's settings, report and import; the agents; the recovery
// queue): a refusal lands in the alert region at the top of the page (#flash), which may be far
// above the form that was sent, so it is brought into view and focused for screen readers too.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    document.body.addEventListener("htmx:afterSwap", function (event) {
      var flash = document.getElementById("flash");
      if (!flash || event.detail.target !== flash || !flash.firstElementChild) return;
      flash.scrollIntoView({ block: "start", behavior: "smooth" });
    });
  });
})();
