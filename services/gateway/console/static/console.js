// The console's own JavaScript, kept small: htmx does the requests and swaps; this file adds
// the live stream (the screen-pop, my state, notices) and a few keyboard helpers.
// It never puts received text into innerHTML: fragments come from the server's escaped templates,
// and anything built here uses textContent.
(function () {
  "use strict";

  var body;

  // The page's words in the viewer's language (base.html puts them on <body> as JSON).
  function text(key, fallback) {
    try { return JSON.parse(body.dataset.texts || "{}")[key] || fallback; } catch (e) { return fallback; }
  }

  // Notices sit in their own region below the top bar, in the page's flow: they never cover a button.
  function toast(message, kind, href) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var item = document.createElement("div");
    item.className = "toast" + (kind ? " toast-" + kind : "");
    item.setAttribute("role", "status");
    var words = document.createElement(href ? "a" : "span");
    words.textContent = message;
    if (href) words.href = href;
    item.appendChild(words);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "link dismiss";
    close.setAttribute("aria-label", text("dismiss", "Dismiss"));
    close.textContent = "×";
    item.appendChild(close);
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 12000);
  }

  // --- the screen-pop: ringing -> connected -> ended, with a running timer --------------------------

  var popTimer = null;

  function clock(seconds) {
    var whole = Math.max(0, Math.floor(seconds));
    var minutes = Math.floor(whole / 60), rest = whole % 60;
    return minutes + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function tick() {
    var box = document.getElementById("screen-pop");
    var timer = box && box.querySelector(".pop-timer");
    if (!timer || !box.dataset.since) return;
    timer.textContent = clock((Date.now() - Number(box.dataset.since)) / 1000);
  }

  function setPopState(state) {
    var box = document.getElementById("screen-pop");
    var pop = box && box.querySelector(".pop");
    if (!pop) return;
    pop.dataset.state = state;
    box.dataset.state = state;
    pop.querySelectorAll(".pop-state").forEach(function (label) { label.hidden = label.dataset.for !== state; });
    // "Wrap up" only once the call is connected (and, ended, it is what is left to do).
    var wrap = pop.querySelector(".pop-wrap-up");
    if (wrap) wrap.hidden = state === "ringing";
    if (state === "connected") box.dataset.since = String(Date.now());
    if (state === "ended") {
      if (popTimer) { clearInterval(popTimer); popTimer = null; }
      if (wrap) wrap.focus();
    }
    tick();
  }

  function clearPop() {
    var box = document.getElementById("screen-pop");
    if (!box) return;
    if (popTimer) { clearInterval(popTimer); popTimer = null; }
    box.hidden = true;
    box.textContent = "";
    delete box.dataset.callId;
    delete box.dataset.state;
  }

  // My state tells where the call offered to me is: reserved (ringing), on_call (connected),
  // wrap_up (ended: the pop becomes the wrap-up), anything else while ringing (missed or abandoned: gone).
  function followCall(data) {
    var box = document.getElementById("screen-pop");
    if (!box || box.hidden || !box.dataset.callId) return;
    if (data.agent_id !== body.dataset.userId) return;
    if (data.call_id && data.call_id !== box.dataset.callId) return;
    var state = box.dataset.state;
    if (data.new_state === "on_call") setPopState("connected");
    else if (data.new_state === "wrap_up") setPopState("ended");
    else if (data.new_state !== "reserved" && state === "ringing") clearPop();
    else if (data.new_state !== "reserved" && state === "connected") setPopState("ended");
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
      box.dataset.since = box.dataset.poppedAt;
      setPopState("ringing");
      if (popTimer) clearInterval(popTimer);
      popTimer = setInterval(tick, 1000);
      var heading = box.querySelector("h2, h1");
      (heading || box).focus();
    });
  }

  // A ticket's notice names its number; the event of a reassignment carries only the id, so the
  // number is read from the tickets API. What I did myself is not announced to me.
  function ticketNotice(data) {
    if (data.assigned_by && data.assigned_by === body.dataset.userId) return;
    var href = "/tickets/" + encodeURIComponent(data.ticket_id || "");
    function say(number, subject) {
      toast(text("ticket_assigned", "Ticket assigned to you") + (number ? " #" + number : "") + (subject ? ": " + subject : ""), "", href);
    }
    if (data.number) { say(data.number, data.subject); return; }
    fetch("/api/tickets/tickets/" + encodeURIComponent(data.ticket_id || ""), { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.json() : {}; })
      .then(function (ticket) { say(ticket.number, ticket.subject); }, function () { say(null, null); });
  }

  var liveRetries = 0;

  function startLive() {
    if (!window.EventSource) return;
    var source = new EventSource("/api/live");
    body.dataset.live = "connecting";
    source.onopen = function () { body.dataset.live = "open"; liveRetries = 0; };
    source.onerror = function () {
      body.dataset.live = "reconnecting";
      // EventSource retries a dropped stream by itself, but gives up for good on a refused one
      // (a 503 from a full gateway process, a 502 while it restarts): start again with backoff.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        liveRetries += 1;
        setTimeout(startLive, Math.min(30000, 1000 * Math.pow(2, liveRetries - 1)) * (0.5 + Math.random()));
      }
    };
    source.addEventListener("call.ringing", function (event) { popCall(JSON.parse(event.data)); });
    source.addEventListener("agent.state", function (event) {
      var data = JSON.parse(event.data);
      followCall(data);
      htmx.trigger(body, "agent-state", data);
    });
    source.addEventListener("ticket.assigned", function (event) {
      var data = JSON.parse(event.data);
      ticketNotice(data);
      htmx.trigger(body, "ticket-assigned", data);
    });
    source.addEventListener("recovery.opened", function (event) {
      var data = JSON.parse(event.data);
      toast(text("recovery_opened", "Service-recovery case opened") + (data.number ? " #" + data.number : "") +
            (data.subject ? ": " + data.subject : ""), "warn", data.ticket_id ? "/tickets/" + encodeURIComponent(data.ticket_id) : null);
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
    body.addEventListener("htmx:sendError", function () { toast(text("offline", "The gateway is not answering; try again."), "error"); });
    body.addEventListener("click", function (event) {
      var target = event.target;
      if (target.closest && target.closest(".dismiss")) {
        var removable = target.closest(".alert, .toast, #screen-pop > *");
        var box = document.getElementById("screen-pop");
        if (box && removable && box.contains(removable)) { clearPop(); return; }
        if (removable) removable.remove();
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        var box = document.getElementById("screen-pop");
        if (box && !box.hidden && box.contains(document.activeElement)) clearPop();
      }
    });
    // A button with data-confirm asks first (the "Do not call" outcome): cancelled, nothing is sent.
    body.addEventListener("htmx:confirm", function (event) {
      var asker = event.detail && event.detail.elt;
      var submitter = event.detail && event.detail.triggeringEvent && event.detail.triggeringEvent.submitter;
      var question = (submitter && submitter.dataset.confirm) || (asker && asker.dataset && asker.dataset.confirm);
      if (!question) return;
      event.preventDefault();
      if (window.confirm(question)) event.detail.issueRequest(true);
    });
    // On a phone the filters fold away; the summary opens them.
    if (window.matchMedia && window.matchMedia("(max-width: 700px)").matches) {
      document.querySelectorAll("details[data-fold-narrow]").forEach(function (fold) { fold.open = false; });
    }
    if (body.dataset.userId) startLive();
  });

  window.consoleToast = toast;
})();
