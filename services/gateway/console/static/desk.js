// The desk's keyboard helpers. The survey: inside a question, a digit key picks the score (1-9,
// 0 for 10) and moves focus to the next question (after the last, to the comment); Enter
// submits from a score, Ctrl+Enter from the comment. A new panel in the work area gets focus at
// once, so that the first keys land; htmx binds a swapped-in form's hx-post only once the swap has
// settled (20 ms later), so a survey sent before that is bound first (else the browser would send
// it natively, as a GET of the desk).
// A callback time typed in the browser's local time goes to the server with its UTC offset.
// The wrap-up's ticket subject names the reason picked.
(function () {
  "use strict";

  function questionsOf(form) {
    return Array.prototype.slice.call(form.querySelectorAll("fieldset.question"));
  }

  function focusQuestion(fieldset) {
    var radio = fieldset.querySelector("input[type=radio]:checked") || fieldset.querySelector("input[type=radio]");
    if (radio) radio.focus();
  }

  function send(form) {
    if (window.htmx) window.htmx.process(form);  // idempotent: a form already bound stays as it is
    form.requestSubmit();
  }

  function onSurveyKey(event) {
    var target = event.target;
    var form = target.closest && target.closest("form.survey-form");
    if (!form || event.altKey || event.metaKey) return;
    if (event.key === "Enter" && target.tagName === "TEXTAREA") {
      if (event.ctrlKey) { event.preventDefault(); send(form); }
      return;
    }
    var fieldset = target.closest("fieldset.question");
    if (!fieldset || event.ctrlKey) return;
    if (event.key === "Enter") { event.preventDefault(); send(form); return; }
    if (!/^[0-9]$/.test(event.key)) return;
    event.preventDefault();
    var value = event.key === "0" ? "10" : event.key;
    var radio = fieldset.querySelector("input[type=radio][value='" + value + "']");
    if (!radio) return;
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    var questions = questionsOf(form);
    var next = questions[questions.indexOf(fieldset) + 1];
    if (next) { focusQuestion(next); return; }
    var after = form.querySelector("textarea, button[type=submit]");
    if (after) after.focus();
  }

  function focusNewPanel(event) {
    var area = event.detail && event.detail.target;
    if (!area || area.id !== "desk-work" && area.id !== "wrap-up-area") return;
    var survey = area.querySelector("form.survey-form fieldset.question");
    if (survey) { focusQuestion(survey); return; }
    var first = area.querySelector("[data-focus]");
    if (first) first.focus();
  }

  function localTimeWithOffset(event) {
    var parameters = event.detail && event.detail.parameters;
    if (!parameters) return;
    var typed = parameters.callback_at;
    // A customer with a known zone: the time is theirs, and the server reads it in that zone.
    if (parameters.callback_zone) return;
    if (typeof typed === "string" && typed && !/[zZ]|[+-]\d\d:\d\d$/.test(typed)) {
      var moment = new Date(typed);  // a datetime-local value is read in the browser's zone
      if (!isNaN(moment.getTime())) parameters.callback_at = moment.toISOString();
    }
  }

  // The wrap-up's ticket subject follows the reason ("Refund: phone call from …") until the agent edits it.
  function subjectFromReason(event) {
    var reason = event.target;
    if (reason.id !== "wrap-up-reason") return;
    var subject = document.getElementById("ticket-subject");
    if (!subject || subject.dataset.edited === "true") return;
    var base = subject.dataset.subject || "";
    var label = reason.value ? reason.options[reason.selectedIndex].text : "";
    subject.value = label ? label + ": " + base.charAt(0).toLowerCase() + base.slice(1) : base;
  }

  function subjectEdited(event) {
    if (event.target.id === "ticket-subject") event.target.dataset.edited = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.addEventListener("change", subjectFromReason);
    document.addEventListener("input", subjectEdited);
    document.addEventListener("keydown", onSurveyKey);
    document.body.addEventListener("htmx:afterSwap", focusNewPanel);
    document.body.addEventListener("htmx:configRequest", localTimeWithOffset);
  });
})();
