"""The campaigns screen (supervisors): the follow-up call lists, one list's settings, report and entries.

- ``GET /campaigns``: every call list with its status (active or paused) and its entries by state;
- ``GET/POST /campaigns/new``: a new list; ``GET /campaigns/<id>``: its settings (an htmx form
  posting to ``POST /campaigns/<id>``), pause and resume, its report (call routing's
  ``/campaigns/<id>/report``) as tables, the latest entries and the CSV import;
- ``POST /campaigns/<id>/import``: a CSV file (multipart) handed to call routing's own import
  (``POST /campaigns/<id>/entries`` as ``text/csv``), which keeps the good rows and names each bad
  one by line; the console checks only size and encoding first.

Every write is an htmx request (the CSRF header rides on them); call routing validates what the
form sends and its field errors come back as the alert's list.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from urllib.parse import quote

from flask import make_response, request

from shared.auth import rule

from ..upstream import UpstreamUnavailable, upstreams
from .base import Refused, ServiceDown, ask, console, is_htmx, page, refused, render
from .i18n import N_

ACCESS: list = [rule("/campaigns*", "supervisor")]

# Call routing's vocabulary (docs/callrouting.md, "Call lists"); the service stays the judge of it.
PURPOSES = ("post_purchase", "resurvey", "callback")
WEEKDAYS = (
    ("mon", N_("Monday")),
    ("tue", N_("Tuesday")),
    ("wed", N_("Wednesday")),
    ("thu", N_("Thursday")),
    ("fri", N_("Friday")),
    ("sat", N_("Saturday")),
    ("sun", N_("Sunday")),
)
RETRYABLE_OUTCOMES = (
    ("no_answer", N_("No answer")),
    ("busy", N_("Busy")),
    ("voicemail", N_("Voicemail")),
    ("callback_requested", N_("Callback requested")),
)
ENTRY_STATES = ("pending", "leased", "completed", "exhausted", "cancelled")
SURVEY_DELIVERIES = (
    ("on_call", N_("Asked on the call (else a link by e-mail)")),
    ("link_by_email", N_("A link by e-mail after the call")),
)
# What a new list starts with in the form: call routing's own defaults, so the form shows them.
NEW_CAMPAIGN = {
    "name": "",
    "purpose": "post_purchase",
    "delay_days": 30,
    "contact_frequency_days": 30,
    "required_skill": None,
    "survey_delivery": "on_call",
    "script": "",
    "talking_point": "",
    "calling_window": {
        **{day: ["09:00", "20:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
        "sat": ["10:00", "16:00"],
    },
    "retry_policy": {
        "no_answer": {"delay_minutes": 240, "max_attempts": 3},
        "busy": {"delay_minutes": 30, "max_attempts": 5},
        "voicemail": {"delay_minutes": 1440, "max_attempts": 2},
        "callback_requested": {"delay_minutes": 0, "max_attempts": 3},
    },
    "active": True,
}
# An import is one transaction in call routing: a bounded file keeps it short.
MAX_IMPORT_BYTES = 1_000_000
MAX_IMPORT_ROWS = 5_000


def _path(campaign_id: str) -> str:
    return "/campaigns/" + quote(campaign_id, safe="")


def _invalid(errors: dict, detail: str = "Check the fields named below.") -> Refused:
    return Refused(422, {"title": "Not saved", "detail": detail, "errors": errors})


# --- reading the form --------------------------------------------------------------------------


def _whole_number(form, name: str, errors: dict, low: int = 0, high: int = 1_000_000) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        errors[name] = "Enter a whole number."
        return None
    try:
        value = int(text)
    except ValueError:
        errors[name] = f"{text[:20]!r} is not a whole number."
        return None
    if not low <= value <= high:
        errors[name] = f"Must be between {low} and {high}."
        return None
    return value


def campaign_from_form(form) -> dict:
    """The campaign's fields as call routing takes them; a form that cannot be read is a 422."""
    errors: dict = {}
    fields: dict = {
        "name": form.get("name", "").strip(),
        "purpose": form.get("purpose", "post_purchase"),
        "script": form.get("script", "").replace("\r\n", "\n"),
        "talking_point": form.get("talking_point", "").replace("\r\n", "\n"),
        "required_skill": form.get("required_skill", "").strip() or None,
        "survey_delivery": form.get("survey_delivery", "on_call"),
        "delay_days": _whole_number(form, "delay_days", errors, 0, 3650),
        "contact_frequency_days": _whole_number(form, "contact_frequency_days", errors, 0, 3650),
    }
    window = {}
    for day, label in WEEKDAYS:
        start, end = form.get(f"window_{day}_start", "").strip(), form.get(f"window_{day}_end", "").strip()
        if start and end:
            window[day] = [start, end]
        elif start or end:
            errors[f"calling_window.{day}"] = f"{label}: give both the start and the end, or neither (no calls)."
    fields["calling_window"] = window
    policy = {}
    for outcome, _label in RETRYABLE_OUTCOMES:
        delay = _whole_number(form, f"retry_{outcome}_delay", errors, 0, 60 * 24 * 90)
        most = _whole_number(form, f"retry_{outcome}_max", errors, 1, 100)
        if delay is not None and most is not None:
            policy[outcome] = {"delay_minutes": delay, "max_attempts": most}
    fields["retry_policy"] = policy
    if errors:
        raise _invalid(errors)
    return fields


# --- pages ---------------------------------------------------------------------------------------


def _entry_counts(campaign_id: str) -> dict[str, int]:
    counts = {}
    for state in ("pending", "leased"):
        found = ask("callrouting", "GET", _path(campaign_id) + "/entries", params={"state": state, "limit": 1})
        counts[state] = found["total"]
    everything = ask("callrouting", "GET", _path(campaign_id) + "/entries", params={"limit": 1})
    counts["all"] = everything["total"]
    return counts


@console.route("/campaigns")
@page
def campaigns_page():
    found = ask("callrouting", "GET", "/campaigns", params={"limit": 500})["items"]
    campaigns = sorted(found, key=lambda each: (not each["active"], each["name"].casefold()))
    counts = {each["id"]: _entry_counts(each["id"]) for each in campaigns}
    return render("console/campaigns/list.html", campaigns=campaigns, counts=counts)


@console.route("/campaigns/new", methods=["GET"])
@page
def new_campaign_page():
    return render("console/campaigns/new.html", campaign=NEW_CAMPAIGN, **_form_context())


@console.route("/campaigns/new", methods=["POST"])
@page
def create_campaign():
    fields = campaign_from_form(request.form)
    created = ask("callrouting", "POST", "/campaigns", json=fields, idempotency_key=request.form.get("key") or None)
    target = _path(created["id"])
    if is_htmx():
        answer = make_response("", 201)
        answer.headers["HX-Redirect"] = target
        return answer
    answer = make_response("", 303)
    answer.headers["Location"] = target
    return answer


@console.route("/campaigns/<campaign_id>", methods=["GET"])
@page
def campaign_page(campaign_id: str):
    campaign = ask("callrouting", "GET", _path(campaign_id))
    report_range = _report_range(request.args)
    return render(
        "console/campaigns/detail.html",
        campaign=campaign,
        report=_report(campaign_id, report_range),
        report_range=report_range,
        entries=_entries(campaign_id, request.args.get("state")),
        **_form_context(),
    )


@console.route("/campaigns/<campaign_id>", methods=["POST"])
@page
def update_campaign(campaign_id: str):
    fields = campaign_from_form(request.form)
    campaign = ask("callrouting", "PATCH", _path(campaign_id), json=fields)
    return render("console/campaigns/_settings.html", campaign=campaign, saved=True, **_form_context())


@console.route("/campaigns/<campaign_id>/pause", methods=["POST"])
@page
def pause_campaign(campaign_id: str):
    campaign = ask("callrouting", "PATCH", _path(campaign_id), json={"active": False})
    return render("console/campaigns/_status.html", campaign=campaign)


@console.route("/campaigns/<campaign_id>/resume", methods=["POST"])
@page
def resume_campaign(campaign_id: str):
    campaign = ask("callrouting", "PATCH", _path(campaign_id), json={"active": True})
    return render("console/campaigns/_status.html", campaign=campaign)


@console.route("/campaigns/<campaign_id>/entries", methods=["GET"])
@page
def campaign_entries(campaign_id: str):
    state = request.args.get("state") or None
    return render("console/campaigns/_entries.html", campaign_id=campaign_id, entries=_entries(campaign_id, state))


@console.route("/campaigns/<campaign_id>/import", methods=["POST"])
@page
def import_entries(campaign_id: str):
    # Said before the body is read: a huge upload is refused without parsing it.
    if request.content_length is not None and request.content_length > MAX_IMPORT_BYTES + 10_000:
        raise Refused(413, {"title": "File too large", "detail": _too_large()})
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise _invalid({"file": "Choose a CSV file."}, "Nothing to import.")
    raw = upload.stream.read(MAX_IMPORT_BYTES + 1)
    if len(raw) > MAX_IMPORT_BYTES:
        raise Refused(413, {"title": "File too large", "detail": _too_large()})
    text = _csv_text(raw)
    result = _post_csv(campaign_id, text)
    return render(
        "console/campaigns/_import_result.html",
        campaign_id=campaign_id,
        filename=upload.filename,
        result=result,
        entries=_entries(campaign_id, None),
    )


# --- helpers ---------------------------------------------------------------------------------------


def _too_large() -> str:
    return f"A CSV import takes at most {MAX_IMPORT_BYTES // 1000:,} kB and {MAX_IMPORT_ROWS:,} rows; split the file."


def _csv_text(raw: bytes) -> str:
    """The upload as text, with its header checked: what call routing could only refuse as a whole."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _invalid({"file": f"Not UTF-8 text (byte {error.start}); save the file as CSV UTF-8."}) from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header or "customer_id" not in [name.strip() for name in header]:
        raise _invalid(
            {"file": "The first line must name the columns: customer_id, and optionally purchase_id, due_at."},
            "The file has no customer_id column.",
        )
    if sum(1 for _ in rows) > MAX_IMPORT_ROWS:
        raise Refused(413, {"title": "File too large", "detail": _too_large()})
    return text


def _post_csv(campaign_id: str, text: str) -> dict:
    """Call routing's CSV import (``ask`` sends JSON only): the same refusals as ``ask``."""
    try:
        answer = upstreams().call(
            "callrouting",
            "POST",
            _path(campaign_id) + "/entries",
            data=text.encode("utf-8"),
            headers={"Content-Type": "text/csv; charset=utf-8"},
            timeout=30,  # thousands of rows in one transaction
        )
    except UpstreamUnavailable as error:
        raise ServiceDown("callrouting", error.reason) from None
    if answer.status_code >= 400:
        raise refused(answer)
    return answer.json()


def _report_range(args) -> dict:
    """The report's days from the query (both or neither); call routing judges them."""
    first, last = args.get("from", "").strip(), args.get("to", "").strip()
    errors = {}
    for name, value in (("from", first), ("to", last)):
        if value:
            try:
                date.fromisoformat(value)
            except ValueError:
                errors[name] = "A date: YYYY-MM-DD."
    if errors:
        raise _invalid(errors, "The report's dates cannot be read.")
    return {"from": first, "to": last}


def _report(campaign_id: str, report_range: dict) -> dict:
    params = {name: value for name, value in report_range.items() if value}
    report = ask("callrouting", "GET", _path(campaign_id) + "/report", params=params)
    figures = ("due", "attempts", "attempted", "reached", "offers_accepted", "do_not_call")
    report["active_days"] = [day for day in report["days"] if any(day.get(name) for name in figures)]
    return report


def _entries(campaign_id: str, state: str | None) -> dict:
    params = {"limit": 25}
    if state:
        params["state"] = state
    page_ = ask("callrouting", "GET", _path(campaign_id) + "/entries", params=params)
    page_["state"] = state or ""
    return page_


def _form_context() -> dict:
    return {
        "purposes": PURPOSES,
        "weekdays": WEEKDAYS,
        "retryable_outcomes": RETRYABLE_OUTCOMES,
        "survey_deliveries": SURVEY_DELIVERIES,
        "entry_states": ENTRY_STATES,
        "max_import_kb": MAX_IMPORT_BYTES // 1000,
        "max_import_rows": MAX_IMPORT_ROWS,
    }
