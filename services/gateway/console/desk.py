"""The agent's desk: my state, the next follow-up call (script, outcome, the five 1-10 questions),
the screen-pop of a ringing call and the wrap-up of an inbound call.

Every action is the signed-in agent's own: the console always names ``acting_user().id`` to
call routing and surveys (and the services check it again). What the services refuse comes
back as the blueprint's alert (``Refused``) with their field errors; what the console checks
itself before asking (a wrap-up form, a state) is refused the same way, as a 422 naming the
field.

- ``GET /desk``: the page; ``GET /desk/state`` and ``POST /desk/state``: the state in the top bar;
  ``GET /desk/wrap-ups``: my calls waiting for a wrap-up.
- ``POST /desk/next-call`` → the follow-up panel: the customer view card, the campaign's script
  and talking point, the outcome buttons → ``POST /desk/entries/<entry_id>/outcome``; "reached"
  answers the survey form → ``POST /desk/surveys``, whose answer shows the scores and, for a low
  score, the service-recovery ticket (``GET /desk/surveys/<response_id>/recovery`` waits for it).
- ``GET /desk/pop``: the screen-pop fragment for a ringing call (console.js asks for it).
- ``GET`` and ``POST /desk/calls/<call_id>/wrap-up``: the reason, notes and an optional ticket.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import request

from shared.auth import acting_user
from shared.event_catalog import (
    CALL_OUTCOMES,
    CALL_REASONS,
    NO_SURVEY_MAIL_OUTCOMES,
    SURVEY_MAIL_ENTRY_STATES,
    TICKET_PRIORITIES,
)

from .. import view as customer_views
from .base import Refused, ServiceDown, ask, console, new_key, page, render
from .dashboard import duration
from .i18n import _, catalog_for, valid_zone
from .wall import clock

# No rule: every desk route needs an agent (the default), and supervisors may use it too.
ACCESS: list = []

# What an agent sets themselves; reserved, on_call and wrap_up belong to call routing's engine.
SETTABLE_STATES = ("available", "on_break", "offline")
ENGINE_STATES = ("reserved", "on_call", "wrap_up")
# The survey every follow-up call asks: surveys' default template (docs/surveys.md, migration
# surveys_0003), the one POST /responses answers when no template is named.
SURVEY_TEMPLATE_ID = "6f1c3a52-3d0e-5b8a-9c41-2f6d7e8a9b10"
SURVEY_LANGUAGE = "en"
# The screen-pop must show quickly: a slow service leaves its part of the card out (partial).
POP_VIEW_DEADLINE_SECONDS = 0.5
# How long one request for the recovery ticket waits for the tickets service to open it (from
# survey.low_score, through the broker), and how many such requests the page makes at most.
RECOVERY_WAIT_SECONDS = 2.0
RECOVERY_POLL_SECONDS = 0.2
RECOVERY_TRIES = 15
MAX_NOTES = 5000
MAX_SUBJECT = 200


def _me() -> str:
    return acting_user().id


def _invalid(errors: dict[str, str], detail: str = "Check the fields named below.") -> Refused:
    """A 422 shown like the services' own validation errors (alert with field errors)."""
    return Refused(422, {"title": "Unprocessable Entity", "detail": detail, "errors": errors})


def _path_id(value: str) -> str:
    """An id from a URL or form put back into a service path: quoted, so it stays one segment."""
    return quote(value, safe="")


# --- the page, my state, my wrap-ups ------------------------------------------------------------


@console.route("/desk")
@page
def desk_page():
    """The desk; htmx (the "End call" and "Back to the desk" buttons) gets only the idle work area."""
    if request.headers.get("HX-Request") == "true":
        return render("console/desk/idle.html")
    return render("console/desk/page.html", wrap_ups=_my_wrap_ups())


@console.route("/desk/state", methods=["GET"])
@page
def desk_state():
    agent = ask("callrouting", "GET", f"/agents/{_path_id(_me())}", missing_ok=True)
    return render("console/desk/state.html", agent=agent, settable=SETTABLE_STATES)


@console.route("/desk/state", methods=["POST"])
@page
def desk_set_state():
    state = request.form.get("state", "")
    if state not in SETTABLE_STATES:
        raise _invalid({"state": f"Must be one of: {', '.join(SETTABLE_STATES)}."})
    ask("callrouting", "PUT", f"/agents/{_path_id(_me())}/state", json={"state": state})
    # Read back what the service holds now (the state and when it changed), as the GET shows it.
    agent = ask("callrouting", "GET", f"/agents/{_path_id(_me())}", missing_ok=True)
    return render("console/desk/state.html", agent=agent, settable=SETTABLE_STATES)


@console.route("/desk/strip")
@page
def desk_strip():
    """The agent status strip on every agent page: calls waiting in my queues and the longest
    wait, my calls and average handle time today, my tickets due within 2 hours. A service that
    does not answer leaves its figure out."""
    me = _me()
    strip: dict = {"waiting": None, "longest": None, "calls": None, "aht": None, "due_soon": None}
    try:
        routing = ask("callrouting", "GET", f"/agents/{_path_id(me)}/routing", missing_ok=True) or {}
        mine = set(routing.get("queues") or ())
        live = ask("callrouting", "GET", "/live")
        queues = [queue for queue in live.get("queues", ()) if not mine or queue["queue"] in mine]
        strip["waiting"] = sum(queue.get("waiting", 0) for queue in queues)
        strip["longest"] = max((queue.get("longest_wait_seconds") or 0 for queue in queues), default=0)
        report = ask("callrouting", "GET", "/reports/daily", params={"date": datetime.now(UTC).date().isoformat()})
        row = next((agent for agent in report.get("agents") or () if agent["agent_id"] == me), None)
        strip["calls"] = row["calls"] if row else 0
        strip["aht"] = row.get("aht_seconds") if row else None
    except (Refused, ServiceDown):
        pass
    try:
        due = ask(
            "tickets",
            "GET",
            "/tickets",
            params={
                "assignee": me,
                "status": "new,open",
                "breached": "false",
                "limit": 1,
                "due_before": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
            },
        )
        strip["due_soon"] = due["total"]
    except (Refused, ServiceDown):
        pass
    return render("console/desk/strip.html", strip=strip, clock=clock, duration=duration)


def _my_wrap_ups() -> list[dict]:
    page_of_calls = ask("callrouting", "GET", "/calls", params={"agent_id": _me(), "state": "wrap_up", "limit": 20})
    return page_of_calls["items"]


@console.route("/desk/wrap-ups")
@page
def desk_wrap_ups():
    return render("console/desk/wrap_ups.html", wrap_ups=_my_wrap_ups())


# --- follow-up calls -----------------------------------------------------------------------------


def _view_or_none(customer_id: str | None, deadline: float | None = None) -> dict | None:
    """The customer view, or None for a customer nobody knows (an unknown caller)."""
    if not customer_id:
        return None
    try:
        return customer_views.customer_view(customer_id, deadline=deadline)
    except customer_views.CustomerNotFound:
        return None


@console.route("/desk/next-call", methods=["POST"])
@page
def desk_next_call():
    handed = ask("callrouting", "POST", f"/agents/{_path_id(_me())}/next-call")
    if handed is None:  # 204: nothing due and callable now
        return render("console/desk/no_call.html")
    entry = handed["entry"]
    return render(
        "console/desk/follow_up.html",
        handed=handed,
        entry=entry,
        campaign=handed["campaign"],
        customer=handed.get("customer"),
        view=_view_or_none(entry["customer_id"]),
        outcomes=CALL_OUTCOMES,
    )


def _callback_at(text: str, zone: str | None = None) -> str | None:
    """The callback time as ISO 8601: typed in the customer's zone when it is known (``zone``),
    else desk.js sends the browser's local time with its offset."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _invalid({"callback_at": _("Not a date and time.")}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone) if zone and valid_zone(zone) else UTC)
    return moment.isoformat()


@console.route("/desk/entries/<entry_id>/outcome", methods=["POST"])
@page
def desk_outcome(entry_id: str):
    form = request.form
    outcome = form.get("outcome", "")
    if outcome not in CALL_OUTCOMES:
        raise _invalid({"outcome": f"Must be one of: {', '.join(CALL_OUTCOMES)}."})
    offer = {"yes": True, "no": False}.get(form.get("offer_accepted", ""))
    body = {
        "agent_id": _me(),  # always the signed-in agent: call routing accepts only the lease holder
        "outcome": outcome,
        "offer_accepted": offer,
        "notes": form.get("notes", "").strip() or None,
        "callback_at": _callback_at(form.get("callback_at", "").strip(), form.get("callback_zone", "").strip()),
    }
    recorded = ask(
        "callrouting", "POST", f"/entries/{_path_id(entry_id)}/outcome", json=body, idempotency_key=form.get("key")
    )
    entry = recorded["entry"]
    # A campaign whose survey goes by e-mail (surveys mails the link on callentry.completed): no form.
    by_mail = form.get("survey_delivery") == "link_by_email"
    mailed = by_mail and entry["state"] in SURVEY_MAIL_ENTRY_STATES and outcome not in NO_SURVEY_MAIL_OUTCOMES
    if outcome != "reached" or by_mail:
        zone = form.get("callback_zone", "").strip()
        return render(
            "console/desk/outcome_done.html",
            entry=entry,
            attempt=recorded["attempt"],
            callback_zone=zone if valid_zone(zone) else None,
            survey_by_mail=mailed,
        )
    template = ask("surveys", "GET", f"/templates/{SURVEY_TEMPLATE_ID}")
    who = {"name": form.get("customer_name", "")[:200], "number": form.get("customer_number", "")[:40]}
    language = survey_language(template, form.get("customer_language", ""))
    return render("console/desk/survey.html", entry=entry, survey=template, language=language, who=who)


def survey_language(template: dict, wanted: str | None) -> str:
    """The language the questions are read in: the customer's if the template has it (zh-TW finds
    zh-Hant), else the template's first language."""
    offered = template.get("languages") or [key for question in template["questions"][:1] for key in question["texts"]]
    if wanted:
        wanted_catalog = catalog_for(wanted)
        for key in offered:
            if key.lower() == wanted.lower() or (wanted_catalog and catalog_for(key) == wanted_catalog):
                return key
    return offered[0] if offered else SURVEY_LANGUAGE


def _answer_value(text: str):
    """A form's answer as the number it is; anything else goes to surveys as typed, to be refused there."""
    return int(text) if text.isdigit() else text


@console.route("/desk/surveys", methods=["POST"])
@page
def desk_survey():
    form = request.form
    entry_id = form.get("entry_id", "")
    if not entry_id:
        raise _invalid({"entry_id": "Missing: the survey belongs to a follow-up call."})
    entry = ask("callrouting", "GET", f"/entries/{_path_id(entry_id)}")
    # The survey of a follow-up call is asked by the agent who reached the customer on it.
    reached_by = [a["agent_id"] for a in entry.get("history", []) if a["outcome"] == "reached"]
    if _me() not in reached_by:
        raise Refused(403, {"title": "Forbidden", "detail": "You did not reach the customer on this call."})
    template_id = form.get("template_id") or SURVEY_TEMPLATE_ID
    template = ask("surveys", "GET", f"/templates/{_path_id(template_id)}", params=_version(form))
    answers = {}
    for question in template["questions"]:
        given = form.get(f"answer-{question['key']}", "").strip()
        if given:
            answers[question["key"]] = _answer_value(given)
    body = {
        "customer_id": entry["customer_id"],
        "template_id": template["id"],
        "template_version": template["version"],
        "channel": "agent",
        "agent_id": _me(),
        "entry_id": entry["id"],
        "campaign_id": entry["campaign_id"],
        "purchase_id": entry.get("purchase_id"),
        "answers": answers,
        "comment": form.get("comment", "").strip() or None,
        "language": survey_language(template, form.get("language", "")),
    }
    response = ask("surveys", "POST", "/responses", json=body, idempotency_key=form.get("key"))
    return render(
        "console/desk/survey_done.html",
        response=response,
        survey=template,
        language=body["language"],
        low=response.get("low_questions") or [],
    )


def _version(form) -> dict:
    version = form.get("template_version", "")
    return {"version": version} if version.isdigit() else {}


def _recovery_ticket(customer_id: str, response_id: str) -> dict | None:
    found = ask(
        "tickets",
        "GET",
        "/tickets",
        params={"customer": customer_id, "category": "service_recovery", "sort": "-created_at", "limit": 50},
    )
    return next((t for t in found["items"] if t.get("survey_response_id") == response_id), None)


@console.route("/desk/surveys/<response_id>/recovery")
@page
def desk_recovery(response_id: str):
    """The service-recovery ticket the tickets service opens for a low score (from the
    ``survey.low_score`` event): waited for a moment, then asked again by the page."""
    customer_id = request.args.get("customer_id", "")
    tries = request.args.get("try", "1")
    if not customer_id:
        raise _invalid({"customer_id": "Missing."})
    try_number = int(tries) if tries.isdigit() else 1
    deadline = time.monotonic() + RECOVERY_WAIT_SECONDS
    ticket = _recovery_ticket(customer_id, response_id)
    while ticket is None and time.monotonic() < deadline:
        time.sleep(RECOVERY_POLL_SECONDS)
        ticket = _recovery_ticket(customer_id, response_id)
    return render(
        "console/desk/recovery.html",
        ticket=ticket,
        response_id=response_id,
        customer_id=customer_id,
        next_try=try_number + 1 if try_number < RECOVERY_TRIES else None,
    )


# --- inbound calls: the screen-pop and the wrap-up ---------------------------------------------


@console.route("/desk/pop")
@page
def desk_pop():
    args = request.args
    call_id = args.get("call_id", "").strip()
    if not call_id:
        raise _invalid({"call_id": "Missing: which call is ringing."})
    customer_id = args.get("customer_id", "").strip() or None
    return render(
        "console/desk/pop.html",
        call_id=call_id,
        from_number=args.get("from_number", "").strip(),
        queue=args.get("queue", "").strip(),
        customer_id=customer_id,
        view=_view_or_none(customer_id, POP_VIEW_DEADLINE_SECONDS),
    )


def _my_call(call_id: str) -> dict:
    """The call record, refused unless it is the signed-in agent's (supervisors wrap up any)."""
    call = ask("callrouting", "GET", f"/calls/{_path_id(call_id)}")
    user = acting_user()
    if user.role == "agent" and call.get("agent_id") != user.id:
        raise Refused(403, {"title": "Forbidden", "detail": "An agent wraps up only their own calls."})
    return call


def _wrap_up_context(call: dict) -> dict:
    customer_id = call.get("customer_id")
    view = _view_or_none(customer_id)
    caller = (view or {}).get("profile") or {}
    who = caller.get("name") or call.get("from_number") or _("unknown caller")
    return {
        "call": call,
        "view": view,
        "reasons": CALL_REASONS,
        "priorities": TICKET_PRIORITIES,
        "subject": _("Phone call from %(caller)s", caller=who)[:MAX_SUBJECT],
    }


@console.route("/desk/calls/<call_id>/wrap-up", methods=["GET"])
@page
def desk_wrap_up_form(call_id: str):
    return render("console/desk/wrap_up.html", **_wrap_up_context(_my_call(call_id)))


def _wrap_up_errors(form) -> dict[str, str]:
    errors = {}
    if form.get("reason", "") not in CALL_REASONS:
        errors["reason"] = f"Choose a reason: {', '.join(CALL_REASONS)}."
    if len(form.get("notes", "")) > MAX_NOTES:
        errors["notes"] = f"At most {MAX_NOTES} characters."
    if form.get("open_ticket") == "on":
        subject = form.get("subject", "").strip()
        if not subject or len(subject) > MAX_SUBJECT:
            errors["subject"] = f"A ticket needs a subject of 1 to {MAX_SUBJECT} characters."
        if form.get("priority", "normal") not in TICKET_PRIORITIES:
            errors["priority"] = f"Must be one of: {', '.join(TICKET_PRIORITIES)}."
    return errors


@console.route("/desk/calls/<call_id>/wrap-up", methods=["POST"])
@page
def desk_wrap_up(call_id: str):
    form = request.form
    errors = _wrap_up_errors(form)
    if errors:
        raise _invalid(errors)
    call = _my_call(call_id)
    if call["state"] != "wrap_up":
        # Checked before a ticket is opened: a call that cannot be wrapped up gets no ticket either.
        raise Refused(409, {"title": "Conflict", "detail": f"The call is {call['state']}, not in wrap-up."})
    reason, notes = form["reason"], form.get("notes", "").strip() or None
    key = form.get("key") or new_key()
    ticket = None
    if form.get("open_ticket") == "on":
        ticket = ask(
            "tickets",
            "POST",
            "/tickets",
            json={
                "subject": form["subject"].strip(),
                "description": notes or "",
                "category": reason,  # every call reason is also a ticket category
                "priority": form.get("priority", "normal"),
                "channel": "phone",
                "customer_id": call.get("customer_id"),
                "call_id": call["id"],
            },
            idempotency_key=f"{key}-ticket",
        )
    wrapped = ask(
        "callrouting",
        "POST",
        f"/calls/{_path_id(call_id)}/wrap-up",
        json={"reason": reason, "notes": notes, "ticket_id": ticket["id"] if ticket else None},
        idempotency_key=f"{key}-wrap-up",
    )
    return render("console/desk/wrap_up_done.html", call=wrapped, ticket=ticket)
