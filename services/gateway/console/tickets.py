"""The tickets screen: my tickets and the team's queues, one ticket with its history, a new ticket.

- ``GET /tickets``: a queue (mine, unassigned, all open, all) narrowed by the tickets API's own
  filters (status, priority, category, assignee, breached or due soon, text), paged as the API
  pages. The filters are a GET form, so every view is a bookmarkable URL; htmx swaps only the
  results table (``HX-Target: ticket-results``).
- ``GET/POST /tickets/new``: a new ticket; the desk's wrap-up links here with ``customer_id``,
  ``call_id``, ``category`` and ``subject`` to prefill.
- ``GET /tickets/<id>``: the ticket, its SLA clocks, comments and history; a reply or a note
  (``POST /tickets/<id>/comments``) and status, priority and assignee (``POST /tickets/<id>``,
  a PATCH of what changed). Both answer the ticket's detail fragment for htmx.

The ticket list and ``GET /tickets/<id>`` carry due times and breach times but not the SLA
state the customer overview computes, so :func:`sla_of` judges it here the same way
(services/tickets/service.py ``sla_state``): a due time passed unmet is a breach at once, before
the breach job flags it, and a pending ticket's resolution clock is paused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

from flask import current_app, make_response, redirect, request
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import NotFound

from shared.auth import acting_user
from shared.event_catalog import TICKET_CATEGORIES, TICKET_PRIORITIES, TICKET_STATUSES

from .. import view as customer_views
from .base import Refused, ServiceDown, ask, console, is_htmx, page, render
from .i18n import N_, _, when, word

# Which role these routes need beyond an agent: none (supervisors see what agents see, and more).
ACCESS: list = []

OPEN_STATUSES = "new,open,pending"
QUEUES = {
    "mine": N_("My tickets"),
    "unassigned": N_("Unassigned"),
    "open": N_("All open"),
    "all": N_("All tickets"),
}
SORTS = {
    "due": N_("Resolution due, soonest first"),
    "-created_at": N_("Newest first"),
    "created_at": N_("Oldest first"),
    "priority": N_("Most urgent first"),
}
SLA_FILTERS = {"breached": N_("Breached"), "due_soon": N_("Due within 2 hours")}
# "Due soon": an SLA due time still open within this window.
DUE_SOON = timedelta(hours=2)
PER_PAGE = 25
THREAD_LIMIT = 1000  # a ticket's page shows its whole thread and history (the tickets API's maximum)
SIDE_VIEW_DEADLINE_SECONDS = 1.0
# The list filters passed on to the tickets API as they are (comma-separated lists allowed there).
PASSED_ON = ("status", "priority", "category", "assignee", "q")
TICKET_CHANNELS = ("phone", "email", "web", "survey")


# --- time and SLA ------------------------------------------------------------------------------


def moment(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def shown_time(text: str | None) -> str:
    """An ISO time as the console shows it: in the viewer's zone, for their language, the zone named."""
    return when(text)


def relative(text: str | None, now: datetime | None = None) -> str:
    """'in 1 h 20 min' or '35 min ago'."""
    value = moment(text)
    if value is None:
        return ""
    delta = value - (now or datetime.now(UTC))
    minutes = int(abs(delta.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours and len(parts) < 2:
        parts.append(f"{hours} h")
    if not days and (minutes or not parts):
        parts.append(f"{minutes} min")
    span = " ".join(parts)
    return _("in %(span)s", span=span) if delta.total_seconds() >= 0 else _("%(span)s ago", span=span)


@dataclass(frozen=True)
class Sla:
    """Where a ticket stands against its SLA now (as the tickets service's ``sla_state``)."""

    state: str  # breached, met, paused, running, none
    first_response_due_at: str | None
    first_response_breached: bool
    first_response_done: bool
    resolution_due_at: str | None
    resolution_breached: bool
    paused: bool
    due_soon: bool
    next_due_at: str | None

    @property
    def breached(self) -> bool:
        return self.state == "breached"

    @property
    def badge(self) -> str:
        return {"breached": "bad", "running": "warn" if self.due_soon else "", "met": "ok"}.get(self.state, "")

    @property
    def label(self) -> str:
        if self.state == "running" and self.due_soon:
            return _("SLA due soon")
        return _("SLA %(state)s", state=word(self.state))


def sla_of(ticket: dict, now: datetime | None = None) -> Sla:
    now = now or datetime.now(UTC)
    status = ticket.get("status")
    resolved = bool(ticket.get("resolved_at")) and status in ("resolved", "closed")
    first_due, resolution_due = moment(ticket.get("first_response_due_at")), moment(ticket.get("resolution_due_at"))
    responded = bool(ticket.get("first_responded_at"))
    first_open = not responded and not resolved and first_due is not None
    resolution_open = not resolved and status != "pending" and resolution_due is not None
    first_breached = bool(ticket.get("first_response_breached_at")) or (first_open and first_due <= now)
    resolution_breached = bool(ticket.get("resolution_breached_at")) or (resolution_open and resolution_due <= now)
    breached = bool(ticket.get("breached")) or first_breached or resolution_breached
    if breached:
        state = "breached"
    elif resolved:
        state = "met"
    elif first_due is None and resolution_due is None:
        state = "none"
    elif status == "pending":
        state = "paused"
    else:
        state = "running"
    open_dues = [due for due, still_open in ((first_due, first_open), (resolution_due, resolution_open)) if still_open]
    next_due = min(open_dues) if open_dues else None
    return Sla(
        state=state,
        first_response_due_at=ticket.get("first_response_due_at"),
        first_response_breached=first_breached,
        first_response_done=responded,
        resolution_due_at=ticket.get("resolution_due_at"),
        resolution_breached=resolution_breached,
        paused=status == "pending" and not resolved,
        due_soon=bool(next_due and not breached and next_due - now <= DUE_SOON),
        next_due_at=next_due.isoformat() if next_due else None,
    )


HISTORY_LABELS = {
    "assignee_id": N_("Assignee"),
    "first_responded_at": N_("First response"),
    "first_response_breached_at": N_("First response SLA breached"),
    "resolution_breached_at": N_("Resolution SLA breached"),
    "resolution_due_at": N_("Resolution due"),
    "customer_id": N_("Customer"),
    "status": N_("Status"),
    "priority": N_("Priority"),
    "category": N_("Category"),
    "subject": N_("Subject"),
    "tags": N_("Tags"),
}
ISO_MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def _history_value(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "—"
    if isinstance(value, str) and ISO_MOMENT.match(value):
        return shown_time(value)
    return word(value) if isinstance(value, str) else str(value)


def history_line(change: dict) -> str:
    """One row of a ticket's history as a sentence: "Status: new → open", "Public reply added"."""
    field = change["field"]
    if field == "created":
        return _("Created")
    if field in ("public_reply", "internal_note"):
        return _("Public reply added") if field == "public_reply" else _("Internal note added")
    if field.endswith("_breached_at"):
        return str(HISTORY_LABELS.get(field, field))
    label = str(HISTORY_LABELS.get(field, field.replace("_", " ").capitalize()))
    if field == "first_responded_at":
        return f"{label}: {_history_value(change.get('new'))}"
    return f"{label}: {_history_value(change.get('old'))} → {_history_value(change.get('new'))}"


def _helpers() -> dict:
    return {"shown_time": shown_time, "relative": relative, "sla_of": sla_of, "history_line": history_line}


def _invalid(field: str, message: str) -> Refused:
    return Refused(422, {"title": "Unprocessable Entity", "detail": "Check the form.", "errors": {field: [message]}})


# --- the list ------------------------------------------------------------------------------------


def _list_query(args) -> tuple[dict, dict]:
    """(what the form shows, what the tickets API is asked) for the list's query string."""
    user = acting_user()
    # An agent starts on their own tickets; a supervisor (who is assigned none as a rule) on all open ones.
    queue = args.get("queue") or ("mine" if user.role == "agent" else "open")
    if queue not in QUEUES:
        raise _invalid("queue", f"One of: {', '.join(QUEUES)}.")
    form = {name: ",".join(value for value in args.getlist(name) if value) for name in PASSED_ON}
    form.update(
        queue=queue, sla=args.get("sla", ""), sort=args.get("sort") or ("-created_at" if queue == "all" else "due")
    )
    if form["sla"] and form["sla"] not in SLA_FILTERS:
        raise _invalid("sla", f"One of: {', '.join(SLA_FILTERS)}.")
    params = {name: form[name] for name in PASSED_ON if form[name]}
    if queue == "mine":
        params["assignee"] = user.id
    elif queue == "unassigned":
        params.pop("assignee", None)
        params["unassigned"] = "true"
    if queue != "all" and "status" not in params:
        params["status"] = OPEN_STATUSES
    if form["sla"] == "breached":
        params["breached"] = "true"
    elif form["sla"] == "due_soon":
        params["breached"] = "false"
        params["due_before"] = (datetime.now(UTC) + DUE_SOON).isoformat()
    params["sort"] = form["sort"]
    # the console's own pages (?page=&per_page=) are the tickets API's limit and offset
    per_page = _positive(args.get("per_page"), PER_PAGE)
    params["limit"] = per_page
    params["offset"] = (_positive(args.get("page"), 1) - 1) * per_page
    return form, params


def _positive(value: str | None, default: int) -> int:
    """A page number or size from the console's query (the tickets API judges its range)."""
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise _invalid("page", "A whole number.") from None


def _page_url(form: dict, page_number: int, per_page: int) -> str:
    query = {name: value for name, value in form.items() if value}
    query.update(page=page_number, per_page=per_page)
    return "/tickets?" + urlencode(query)


@console.route("/tickets")
@page
def tickets_page():
    """My tickets, or a team queue, filtered; htmx asks for the results table alone."""
    fragment = request.headers.get("HX-Target") == "ticket-results" and not request.headers.get(
        "HX-History-Restore-Request"
    )
    form, params = _list_query(request.args)
    listed = ask("tickets", "GET", "/tickets", params=params)
    total, per_page = listed["total"], listed["limit"]
    page_number = listed["offset"] // per_page + 1
    last_page = max(1, -(-total // per_page))
    context = {
        "form": form,
        "tickets": listed["items"],
        "total": total,
        "page_number": page_number,
        "last_page": last_page,
        "previous_url": _page_url(form, page_number - 1, per_page) if page_number > 1 else None,
        "next_url": _page_url(form, page_number + 1, per_page) if page_number < last_page else None,
        "queues": QUEUES,
        "sorts": SORTS,
        "sla_filters": SLA_FILTERS,
        "statuses": TICKET_STATUSES,
        "priorities": TICKET_PRIORITIES,
        "categories": TICKET_CATEGORIES,
        "now": datetime.now(UTC),
        "names": customer_names(ticket.get("customer_id") for ticket in listed["items"]),
        **_helpers(),
    }
    if fragment:
        return render("console/tickets/_results.html", **context)
    return render("console/tickets/list.html", counts=queue_counts(form), **context)


# --- a new ticket --------------------------------------------------------------------------------

NEW_FIELDS = ("subject", "description", "category", "priority", "channel", "customer_id", "call_id", "assignee_id")


@console.route("/tickets/new")
@page
def new_ticket_page():
    """The new-ticket form, prefilled from the query (the desk's wrap-up links here)."""
    prefill = {name: request.args.get(name, "") for name in NEW_FIELDS}
    prefill["priority"] = prefill["priority"] or "normal"
    prefill["channel"] = prefill["channel"] or ("phone" if prefill["call_id"] else "web")
    return render(
        "console/tickets/new.html",
        prefill=prefill,
        categories=TICKET_CATEGORIES,
        priorities=TICKET_PRIORITIES,
        channels=TICKET_CHANNELS,
    )


@console.route("/tickets/new", methods=["POST"])
@page
def create_ticket():
    """Open the ticket (the tickets API validates it: its 422 names the fields) and show it."""
    body = {name: request.form.get(name, "").strip() for name in NEW_FIELDS}
    body["description"] = request.form.get("description", "")  # kept as typed
    if body["assignee_id"] == "me":
        body["assignee_id"] = acting_user().id
    body = {name: value for name, value in body.items() if value}
    created = ask("tickets", "POST", "/tickets", json=body, idempotency_key=request.form.get("idempotency_key"))
    target = f"/tickets/{quote(created['id'], safe='')}"
    if is_htmx():
        answer = make_response("", 201)  # the form swaps nothing: htmx goes to the new ticket's page
        answer.headers["HX-Redirect"] = target
        return answer
    return redirect(target, 303)


# --- one ticket ----------------------------------------------------------------------------------


def _ticket_path(ticket_id: str) -> str:
    return f"/tickets/{quote(ticket_id, safe='')}"


def _ticket_or_404(ticket_id: str) -> dict:
    ticket = ask("tickets", "GET", _ticket_path(ticket_id), missing_ok=True)
    if ticket is None:
        raise NotFound(f"No ticket {ticket_id}.")
    return ticket


def _agents() -> list[dict]:
    """Who a ticket may be assigned to: call routing's agents (none listed when it is down: the
    form still offers me and unassigned)."""
    try:
        agents = (ask("callrouting", "GET", "/agents", params={"limit": 500}) or {}).get("items", [])
        return sorted(agents, key=lambda agent: agent["id"])
    except (Refused, ServiceDown):
        return []


def _detail_context(ticket: dict, notice: str | None = None) -> dict:
    path = _ticket_path(ticket["id"])
    comments = ask("tickets", "GET", path + "/comments", params={"limit": THREAD_LIMIT})["items"]
    history = ask("tickets", "GET", path + "/history", params={"limit": THREAD_LIMIT})["items"]
    customer = None
    if ticket.get("customer_id"):
        # a merged customer answers 308 with {"id", "merged_into"}: no name, the link still leads on
        customer = ask("tickets", "GET", "/customers/" + quote(ticket["customer_id"], safe=""), missing_ok=True)
    return {
        "ticket": ticket,
        "customer": customer or {},
        "customer_view": _side_view(ticket.get("customer_id")),
        "sla": sla_of(ticket),
        "comments": comments,
        "history": list(reversed(history)),  # newest first
        "agents": _agents(),
        "statuses": TICKET_STATUSES,
        "priorities": TICKET_PRIORITIES,
        "notice": notice,
        **_helpers(),
    }


def _side_view(customer_id: str | None) -> dict | None:
    """The customer side panel (purchases, last scores, open tickets, recent calls): the gateway's
    customer view, with a short deadline so a slow service leaves only its part out."""
    if not customer_id:
        return None
    try:
        return customer_views.customer_view(customer_id, deadline=SIDE_VIEW_DEADLINE_SECONDS)
    except customer_views.CustomerNotFound:
        return None


def customer_names(customer_ids) -> dict[str, str]:
    """The names of these customers from the gateway's own replica (no call to the tickets service)."""
    wanted = {customer_id for customer_id in customer_ids if customer_id}
    if not wanted:
        return {}
    from ..models import CustomerReplica

    with current_app.extensions["database"].read_sessions() as session:
        rows = session.execute(
            select(CustomerReplica.customer_id, CustomerReplica.name).where(CustomerReplica.customer_id.in_(wanted))
        )
        return {customer_id: name for customer_id, name in rows}


def queue_counts(form: dict) -> dict[str, int | None]:
    """How many tickets each queue tab holds (open ones, as the tab lists them by default)."""
    counts: dict[str, int | None] = {}
    for queue in QUEUES:
        _form, params = _list_query(MultiDict({"queue": queue}))
        params["limit"] = 1
        try:
            counts[queue] = ask("tickets", "GET", "/tickets", params=params)["total"]
        except (Refused, ServiceDown):
            counts[queue] = None
    return counts


def _detail_answer(ticket: dict, notice: str | None = None):
    context = _detail_context(ticket, notice)
    if is_htmx():
        return render("console/tickets/_detail.html", **context)
    return render("console/tickets/ticket.html", **context)


@console.route("/tickets/<ticket_id>")
@page
def ticket_page(ticket_id: str):
    return render("console/tickets/ticket.html", **_detail_context(_ticket_or_404(ticket_id)))


@console.route("/tickets/<ticket_id>", methods=["POST"])
@page
def change_ticket(ticket_id: str):
    """Status, priority and assignee: only what differs from the ticket now is sent (the same
    status again would be an illegal transition)."""
    ticket = _ticket_or_404(ticket_id)
    wanted = {name: request.form[name] for name in ("status", "priority") if name in request.form}
    if "assignee_id" in request.form:
        assignee = request.form["assignee_id"].strip()
        wanted["assignee_id"] = acting_user().id if assignee == "me" else (assignee or None)
    changes = {name: value for name, value in wanted.items() if value != ticket.get(name)}
    if not changes:
        return _detail_answer(ticket, _("Nothing to change."))
    changed = ask("tickets", "PATCH", _ticket_path(ticket["id"]), json=changes)
    names = ", ".join(str(HISTORY_LABELS.get(name, name)) for name in changes)
    return _detail_answer(changed, _("Saved: %(fields)s.", fields=names))


@console.route("/tickets/<ticket_id>/comments", methods=["POST"])
@page
def comment_on_ticket(ticket_id: str):
    """A public reply (the customer sees it; the first one is the first response) or an internal note."""
    visibility = request.form.get("visibility", "internal")
    if visibility not in ("public", "internal"):
        raise _invalid("visibility", "public or internal.")
    ask(
        "tickets",
        "POST",
        _ticket_path(ticket_id) + "/comments",
        json={"body": request.form.get("body", ""), "public": visibility == "public"},
        idempotency_key=request.form.get("idempotency_key"),
    )
    notice = _("Reply sent.") if visibility == "public" else _("Note added.")
    return _detail_answer(_ticket_or_404(ticket_id), notice)
