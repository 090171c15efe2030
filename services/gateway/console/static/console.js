// The console's own JavaScript, kept small: htmx does the requests and swaps; this file adds
// the live stream (the screen-pop, my state, notices) and a few keyboard helpers.
// It never puts received text into innerHTML: fragments come from the server's escaped templates,
// and anything built here uses textContent.
(function () {
  "use strict";

  var body;

  function toast(text, kind) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var item = document.createElement("div");
    item.className = "toast" + (kind ? " toast-" + kind : "");
    item.setAttribute("role", "status");
    item.textContent = text;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 12000);
  }

  // The screen-pop: the server renders the caller's card (GET /desk/pop), this shows it.
  function popCall(data) {
    var box = document.getElementById("screen-pop");
    if (!box || !window.htmx) return;
    var query = "call_id=" + encodeURIComponent(data.call_id || "");
    if (data.customer_id) query += "&customer_id=" + encodeURIComponent(data.customer_id);
    if (data.from_number) query += "&from_number=" + encodeURIComponent(data.from_number);
    if (data.queue) query += "&queue=" + encodeURIComponent(data.queue);
    htmx.ajax("GET", "/desk/pop?" + query, { target: box, swap: "innerHTML" }).then(function () {
      box.hidden = false;
      box.dataset.callId = data.call_id || "";
      box.dataset.poppedAt = String(Date.now());
      var heading = box.querySelector("h2, h1");
      (heading || box).focus();
    });
  }

  function startLive() {
    if (!window.EventSource) return;
    var source = new EventSource("/api/live");
    body.dataset.live = "connecting";
    source.onopen = function () { body.dataset.live = "open"; };
    source.onerror = function () { body.dataset.live = "reconnecting"; };
    source.addEventListener("call.ringing", function (event) { popCall(JSON.parse(event.data)); });
    source.addEventListener("agent.state", function (event) {
      var data = JSON.parse(event.data);
      htmx.trigger(body, "agent-state", data);
    });
    source.addEventListener("ticket.assigned", function (event) {
      var data = JSON.parse(event.data);
      toast("Ticket " + (data.ticket_id || "") + " was assigned to you" + (data.subject ? ": " + data.subject : "."));
      htmx.trigger(body, "ticket-assigned", data);
    });
    source.addEventListener("recovery.opened", function (event) {
      var data = JSON.parse(event.data);
      toast("Service-recovery case opened" + (data.customer_id ? " for customer " + data.customer_id : "") + ".", "warn");
      htmx.trigger(body, "recovery-opened", data);
    });
    source.addEventListener("ready", function () {
      body.dataset.live = "ready";
      htmx.trigger(body, "live-ready");
    });
    window.addEventListener("beforeunload", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    body = document.body;
    // A new request clears the last alert; a refused one puts its own there (HX-Retarget #flash).
    body.addEventListener("htmx:beforeRequest", function (event) {
      var flash = document.getElementById("flash");
      if (flash && !(event.detail && event.detail.elt && flash.contains(event.detail.elt))) flash.textContent = "";
    });
    // A lost connection is said, not swallowed.
    body.addEventListener("htmx:sendError", function () { toast("The gateway is not answering; try again.", "error"); });
    body.addEventListener("click", function (event) {
      var target = event.target;
      if (target.closest && target.closest(".dismiss")) {
        var removable = target.closest(".alert, .toast, #screen-pop > *");
        if (removable) removable.remove();
        var box = document.getElementById("screen-pop");
        if (box && !box.children.length) box.hidden = true;
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        var box = document.getElementById("screen-pop");
        if (box && !box.hidden && box.contains(document.activeElement)) { box.hidden = true; box.textContent = ""; }
      }
    });
    if (body.dataset.userId) startLive();
  });

  window.consoleToast = toast;
})();
