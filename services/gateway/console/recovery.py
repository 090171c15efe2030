"""The service-recovery queue (supervisors): the open cases a low survey score opened.

A complete survey response that meets the low-score rule makes the tickets service open one
urgent ``service_recovery`` ticket (channel ``survey``, ``survey_response_id`` set; docs/tickets.md,
"Closed loop"). This screen lists the open ones, the most urgent due first, with the customer,
the scores that opened the case (read from surveys), its age, the SLA's due time and a breached
badge, and the assignee; a supervisor assigns a case to an agent or takes it.

- ``GET /recovery`` the page; ``GET /recovery/queue`` the queue alone, refreshed on the live
  ``recovery-opened`` event and every minute;
- ``POST /recovery/<ticket_id>/assign``: ``assignee_id`` (an agent, or ``me``);
- the loop-closure figure: of the cases resolved in the last 30 days, the share resolved within
  their SLA (``resolved_at`` by ``resolution_due_at``, never flagged breached).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from flask import current_app, request
from sqlalchemy import select

from shared.auth import acting_user, rule

from ..models import CustomerReplica
from ..upstream import upstreams
from .agents import time_in_state
from .base import Refused, ask, console, page, render
from .i18n import N_, _

ACCESS: list = [rule("/recovery*", "supervisor")]

CATEGORY = "service_recovery"
OPEN_STATUSES = "new,open,pending"
QUEUE_SIZE = 100
LOOP_DAYS = 30
SURVEYS_DEADLINE_SECONDS = 2.0
FILTERS = (
    ("all", N_("All open")),
    ("unassigned", N_("Unassigned")),
    ("mine", N_("Mine")),
    ("breached", N_("Breached")),
)


def _parse(moment: str | None) -> datetime | None:
    if not moment:
        return None
    parsed = datetime.fromisoformat(moment)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sla_of(ticket: dict, at: datetime) -> dict:
    """The case's SLA as the queue shows it: the next due time still open and whether it is broken.

    A due time that passed unmet counts at once, before the tickets service's breach job flags it.
    """
    first_due, resolution_due = _parse(ticket.get("first_response_due_at")), _parse(ticket.get("resolution_due_at"))
    responded = ticket.get("first_responded_at") is not None
    first_broken = ticket.get("first_response_breached_at") is not None or (
        not responded and first_due is not None and first_due <= at
    )
    resolution_broken = ticket.get("resolution_breached_at") is not None or (
        resolution_due is not None and resolution_due <= at and ticket["status"] != "pending"
    )
    due, target = (first_due, _("first response")) if not responded and first_due else (resolution_due, _("resolution"))
    return {
        "due": due,
        "target": target,
        "breached": bool(ticket.get("breached")) or first_broken or resolution_broken,
        "paused": ticket["status"] == "pending",
        "left": _left(due, at) if due else None,
    }


def _left(due: datetime, at: datetime) -> str:
    seconds = int((due - at).total_seconds())
    span = abs(seconds)
    said = f"{span // 60} min" if span < 3600 else f"{span // 3600} h {span % 3600 // 60} min"
    if span >= 86400:
        said = f"{span // 86400} d {span % 86400 // 3600} h"
    return _("in %(span)s", span=said) if seconds >= 0 else _("%(span)s ago", span=said)


def _customer_names(customer_ids: set[str]) -> dict[str, str]:
    """Names from the gateway's own customer replica: one query, no call per row."""
    if not customer_ids:
        return {}
    query = select(CustomerReplica.customer_id, CustomerReplica.name).where(
        CustomerReplica.customer_id.in_(customer_ids)
    )
    with current_app.extensions["database"].read_sessions() as session:
        return {row.customer_id: row.name for row in session.execute(query)}


def _survey_answers(customer_ids: set[str]) -> dict[str, dict]:
    """The responses of these customers, by response id, asked of surveys in parallel.

    A customer surveys cannot answer for just now leaves their cases without scores, not the queue.
    """
    front = upstreams()

    def reader(customer_id: str):
        def read(user, request_id):
            answer = front.call(
                "surveys",
                "GET",
                "/responses",
                params={"customer_id": customer_id, "limit": 500},
                user=user,
                request_id=request_id,
            )
            return answer.json()["items"] if answer.status_code == 200 else []

        return read

    found, _missing = front.fan_out({each: reader(each) for each in customer_ids}, SURVEYS_DEADLINE_SECONDS)
    responses = {}
    for listing in found.values():
        for response in listing:
            responses[response["id"]] = response
    return responses


def _low_scores(response: dict | None) -> list[tuple[str, int]]:
    """The response's answers, lowest first: the ones that opened the case lead."""
    if not response:
        return []
    return sorted(response.get("answers", {}).items(), key=lambda pair: (pair[1], pair[0]))


def _tickets(params: dict) -> dict:
    return ask("tickets", "GET", "/tickets", params={"category": CATEGORY, **params})


def _queue_context(view: str) -> dict:
    me = acting_user().id
    if view not in dict(FILTERS):
        raise Refused(422, {"title": "Unknown filter", "errors": {"view": f"One of {', '.join(dict(FILTERS))}."}})
    params: dict = {"status": OPEN_STATUSES, "sort": "due", "limit": QUEUE_SIZE}
    if view == "mine":
        params["assignee"] = me
    if view == "breached":
        params["breached"] = "true"
    page_ = _tickets(params)
    cases = page_["items"]
    if view == "unassigned":
        cases = [case for case in cases if not case.get("assignee_id")]
    at = datetime.now(UTC)
    customer_ids = {case["customer_id"] for case in cases if case.get("customer_id")}
    names = _customer_names(customer_ids)
    responses = _survey_answers(customer_ids)
    for case in cases:
        case["sla"] = sla_of(case, at)
        case["age"] = time_in_state(case["created_at"], at)
        case["customer_name"] = names.get(case.get("customer_id") or "")
        case["scores"] = _low_scores(responses.get(case.get("survey_response_id") or ""))
    return {
        "cases": cases,
        "view": view,
        "filters": FILTERS,
        "counts": _counts(at),
        "agents": ask("callrouting", "GET", "/agents", params={"limit": 500})["items"],
        "me": me,
        "at": at,
        "shown_of": page_["total"],
    }


def _counts(at: datetime) -> dict:
    open_total = _tickets({"status": OPEN_STATUSES, "limit": 1})["total"]
    breached = _tickets({"status": OPEN_STATUSES, "breached": "true", "limit": 1})["total"]
    unassigned_page = _tickets({"status": OPEN_STATUSES, "limit": 200})
    unassigned = sum(1 for case in unassigned_page["items"] if not case.get("assignee_id"))
    since = (at - timedelta(days=LOOP_DAYS)).isoformat()
    resolved = _tickets({"status": "resolved,closed", "created_from": since, "limit": 200})["items"]
    within = sum(1 for case in resolved if _resolved_within_sla(case))
    return {
        "open": open_total,
        "breached": breached,
        "unassigned": unassigned,
        "unassigned_exact": unassigned_page["total"] <= 200,
        "resolved": len(resolved),
        "resolved_within_sla": within,
        "loop_share": within / len(resolved) if resolved else None,
        "loop_days": LOOP_DAYS,
    }


def _resolved_within_sla(case: dict) -> bool:
    resolved_at, due = _parse(case.get("resolved_at")), _parse(case.get("resolution_due_at"))
    if resolved_at is None or case.get("resolution_breached_at"):
        return False
    return due is None or resolved_at <= due


@console.route("/recovery")
@page
def recovery_page():
    return render("console/recovery/page.html", **_queue_context(request.args.get("view", "all")))


@console.route("/recovery/queue")
@page
def recovery_queue():
    return render("console/recovery/_queue.html", **_queue_context(request.args.get("view", "all")))


@console.route("/recovery/<ticket_id>/assign", methods=["POST"])
@page
def assign_case(ticket_id: str):
    # "Take it" names no one: the signed-in supervisor takes the case.
    assignee = acting_user().id if request.form.get("take") else request.form.get("assignee_id", "").strip()
    if not assignee:
        raise Refused(422, {"title": "Not assigned", "errors": {"assignee_id": "Choose an agent."}})
    path = "/tickets/" + quote(ticket_id, safe="")
    case = ask("tickets", "GET", path)
    if case.get("category") != CATEGORY:
        raise Refused(404, {"title": "Not a recovery case", "detail": f"Ticket {ticket_id} is not service recovery."})
    changes: dict = {"assignee_id": assignee}
    if case["status"] == "new":
        changes["status"] = "open"  # someone holds it now: it is being worked
    ask("tickets", "PATCH", path, json=changes)
    return render("console/recovery/_queue.html", **_queue_context(request.form.get("view", "all")))
