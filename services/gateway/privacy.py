"""Customer data protection at the one door: export, erasure, their progress, and the audit log.

- ``GET /api/customers/{id}/export``: one JSON document of everything every service holds about
  the customer, assembled from each service's own ``GET /privacy/customers/{id}/export`` and the
  gateway's. A service that does not answer fails the export (503 naming it): an export is never
  silently partial.
- ``POST /api/customers/{id}/erase``: the directory (tickets) records the request, applies it and
  announces ``customer.erased``; every service applies it in its own database (``privacy.py`` in
  each), the gateway too (its replica).
- ``GET /api/privacy/requests[/{id}]``: per request, ``done`` or ``pending`` in each service, and
  ``overdue`` once its due time passed with a service still pending (the dashboard shows those).
- ``GET /api/audit``: who exported, erased or viewed a customer's data, and when (admins). The log is
  append-only: there is no route that changes or deletes it, and an erasure keeps it.

Export and erasure need the ``privacy`` role (or admin); progress is for supervisors too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, g, has_request_context
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.auth import User, acting_user, rule
from shared.privacy import as_record, erasure_handler, scrub_customer_replicas
from shared.problems import problem
from shared.schemas import Timestamp, page, page_args, page_of, page_schema
from shared.web import unit_of_work

from .models import AuditEntry, CustomerReplica, CustomerReplicaPhone, PrivacyErasure
from .reports import json_getter
from .upstream import BACKENDS, UpstreamUnavailable, upstreams

privacy = Blueprint("privacy", __name__, description="Customer data: export, erasure, requests, audit log.")

ACCESS = [
    rule("/api/customers/<customer_id>/export", "privacy"),
    rule("/api/customers/<customer_id>/erase", "privacy"),
    rule("/api/privacy/*", "supervisor", also=("privacy",)),
    rule("/api/audit", "admin"),
]

SERVICES = (*BACKENDS, "gateway")


# --- the audit log ---------------------------------------------------------------------------


def audit_row(
    actor: User,
    action: str,
    customer_id: str | None,
    *,
    request_id: str | None = None,
    at: datetime | None = None,
    **detail,
) -> dict:
    """One row of the audit log (table ``audit_log``), by ``actor``. The log is the gateway's own:
    nothing is announced."""
    return {
        "at": at or datetime.now(UTC),
        "actor_id": actor.id,
        "actor_role": actor.role,
        "action": action,
        "customer_id": customer_id,
        "request_id": request_id,
        "detail": detail,
    }


def audit(action: str, customer_id: str | None, **detail) -> None:
    """Add one row to the audit log for the signed-in user, committed before this returns.

    Not in the request's unit of work (it must not claim the request's Idempotency-Key): the rows
    of the requests of this process that audit at the same moment share one commit
    (shared/group_commit.py), so that a look at a cached customer view does not wait in line for a
    transaction of its own.
    """
    request_id = g.get("request_id") if has_request_context() else None
    row = audit_row(acting_user(), action, customer_id, request_id=request_id, **detail)
    current_app.extensions["audit_log"].add(row)


# --- what the gateway itself holds ---------------------------------------------------------------


def export_customer(session: Session, customer_id: str) -> dict:
    return {
        "customer_replicas": [
            as_record(row)
            for row in session.scalars(select(CustomerReplica).where(CustomerReplica.customer_id == customer_id))
        ],
        "audit_log": [
            as_record(row)
            for row in session.scalars(
                select(AuditEntry).where(AuditEntry.customer_id == customer_id).order_by(AuditEntry.id)
            )
        ],
    }


def erase_customer(session: Session, data: dict) -> None:
    """The replica loses the details; the audit log keeps its rows (ids and times, no personal data)."""
    from shared.privacy import erased_customer_ids

    session.flush()
    scrub_customer_replicas(session, CustomerReplica, CustomerReplicaPhone, erased_customer_ids(data))


on_customer_erased = erasure_handler(PrivacyErasure, erase_customer)


# --- routes ----------------------------------------------------------------------------------


def _deadline() -> float:
    return float(current_app.extensions["settings"].option("PRIVACY_EXPORT_DEADLINE_SECONDS", "30"))


class CustomerExportOut(Schema):
    customer_id = fields.String()
    exported_at = Timestamp()
    services = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(),
        metadata={
            "description": "service -> its export {service, customer_id, exported_at, records: {kind: [record, ...]}} "
            "(each service's GET /privacy/customers/{id}/export): every record it holds"
        },
    )


@privacy.route("/api/customers/<customer_id>/export")
class CustomerExport(MethodView):
    @privacy.response(200, CustomerExportOut)
    @privacy.alt_response(503, description="A service did not answer: no partial export; `missing` names it")
    def get(self, customer_id):
        """Everything every service holds about the customer, as one document (privacy role or admin)."""
        front = upstreams()
        limit = _deadline()
        ask = json_getter(front, timeout=limit)
        path = f"/privacy/customers/{customer_id}/export"
        parts, missing = front.fan_out({service: ask(service, path) for service in BACKENDS}, limit)
        if missing:
            audit("customer.export_failed", customer_id, missing=missing)
            return problem(
                503,
                "Service Unavailable",
                "The export is incomplete, so none is given: " + ", ".join(f"{s} {r}" for s, r in missing.items()),
                missing=missing,
            )
        if not parts["tickets"]["records"].get("customers"):
            return problem(404, "Not Found", f"No customer {customer_id}.")
        with unit_of_work(read_only=True) as uow:
            parts["gateway"] = {
                "service": "gateway",
                "customer_id": customer_id,
                "exported_at": datetime.now(UTC).isoformat(),
                "records": export_customer(uow.session, customer_id),
            }
        audit("customer.exported", customer_id, kinds={s: sorted(p["records"]) for s, p in parts.items()})
        return {"customer_id": customer_id, "exported_at": datetime.now(UTC), "services": parts}


class ServiceProgress(Schema):
    state = fields.String(validate=validate.OneOf(("done", "pending", "unknown")))
    applied_at = Timestamp(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "why the state is unknown"})


class PrivacyRequestProgress(Schema):
    request_id = fields.String()
    customer_id = fields.String()
    kind = fields.String()
    requested_by = fields.String(allow_none=True)
    requested_at = Timestamp()
    due_at = Timestamp()
    state = fields.String(
        validate=validate.OneOf(("done", "pending", "overdue")),
        metadata={"description": "done everywhere; pending; overdue: past due_at with a service not done"},
    )
    services = fields.Dict(keys=fields.String(), values=fields.Nested(ServiceProgress))


PrivacyRequestPage = page_schema(PrivacyRequestProgress, "PrivacyRequestPage")


def _progress(requests: list[dict]) -> list[dict]:
    """Each request with its state in every service (asked at once, one call per service)."""
    if not requests:
        return []
    ids = [request["request_id"] for request in requests]
    front = upstreams()
    ask = json_getter(front, timeout=min(front.read_timeout, 5.0))
    query = "&".join(f"ids={request_id}" for request_id in ids)
    answers, missing = front.fan_out({s: ask(s, f"/privacy/erasures?{query}") for s in BACKENDS}, 5.0)
    with unit_of_work(read_only=True) as uow:
        local = {
            row.request_id: row.applied_at.isoformat()
            for row in uow.session.scalars(select(PrivacyErasure).where(PrivacyErasure.request_id.in_(ids)))
        }
    states: dict[str, dict[str, dict]] = {request_id: {} for request_id in ids}
    for service in BACKENDS:
        if service in missing:
            for request_id in ids:
                states[request_id][service] = {"state": "unknown", "applied_at": None, "reason": missing[service]}
            continue
        for each in answers[service]["erasures"]:
            states[each["request_id"]][service] = {"state": each["state"], "applied_at": each["applied_at"]}
    for request_id in ids:
        done = request_id in local
        states[request_id]["gateway"] = {"state": "done" if done else "pending", "applied_at": local.get(request_id)}
    now = datetime.now(UTC)
    out = []
    for request in requests:
        services = states[request["request_id"]]
        everywhere = all(each["state"] == "done" for each in services.values())
        due = datetime.fromisoformat(request["due_at"])
        state = "done" if everywhere else ("overdue" if now > due else "pending")
        out.append({**request, "state": state, "services": services})
    return out


def _tickets_get(path: str):
    answer = upstreams().call("tickets", "GET", path)
    return answer


class RequestListArgs(page_args(default=50, maximum=200, name="PrivacyRequestPageArgs")):
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=3660))
    state = fields.String(
        load_default=None,
        validate=validate.OneOf(("done", "pending", "overdue")),
        metadata={"description": "only these"},
    )


@privacy.route("/api/privacy/requests")
class PrivacyRequests(MethodView):
    @privacy.arguments(RequestListArgs, location="query")
    @privacy.response(200, PrivacyRequestPage)
    def get(self, args):
        """Erasure requests of the last ``days`` days with their progress in every service (newest first)."""
        try:
            items, total = requests_page(args["days"], args["state"], args["limit"], args["offset"])
        except UpstreamUnavailable as error:
            return problem(503, "Service Unavailable", f"tickets: {error.reason}", missing={"tickets": error.reason})
        return page(items, total, args)


@privacy.route("/api/privacy/requests/<request_id>")
class PrivacyRequestById(MethodView):
    @privacy.response(200, PrivacyRequestProgress)
    def get(self, request_id):
        """One erasure request: ``done`` / ``pending`` per service, and ``overdue`` past its due time."""
        try:
            answer = _tickets_get(f"/privacy/requests/{request_id}")
        except UpstreamUnavailable as error:
            return problem(503, "Service Unavailable", f"tickets: {error.reason}", missing={"tickets": error.reason})
        if answer.status_code == 404:
            return problem(404, "Not Found", f"No privacy request {request_id}.")
        if answer.status_code != 200:
            return problem(answer.status_code, "Upstream refused", answer.text[:200])
        return _progress([answer.json()])[0]


@privacy.route("/api/customers/<customer_id>/erase")
class CustomerErase(MethodView):
    @privacy.response(201, PrivacyRequestProgress)
    @privacy.alt_response(200, schema=PrivacyRequestProgress, description="Erased already: the earlier request")
    def post(self, customer_id):
        """Erase the customer's personal data in every service (privacy role or admin). Counted rows stay,
        anonymised, so reports do not change; the customer goes on the do-not-call list by their numbers' hashes."""
        try:
            return erase(customer_id)
        except Refusal as refusal:
            return problem(refusal.status, refusal.title, refusal.detail, **refusal.extra)


class Refusal(Exception):
    def __init__(self, status: int, title: str, detail: str, **extra):
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def erase(customer_id: str) -> tuple[dict, int]:
    """(the request's progress, 201 new or 200 erased already); raises Refusal. The API and the console use it."""
    try:
        answer = upstreams().call("tickets", "POST", f"/privacy/customers/{customer_id}/erase")
    except UpstreamUnavailable as error:
        raise Refusal(
            503, "Service Unavailable", f"tickets: {error.reason}", missing={"tickets": error.reason}
        ) from None
    if answer.status_code not in (200, 201):
        body = answer.json() if answer.headers.get("Content-Type", "").endswith("json") else {}
        raise Refusal(answer.status_code, body.get("title", "Refused"), body.get("detail", answer.text[:200]))
    request = answer.json()
    audit("customer.erased", customer_id, privacy_request_id=request["request_id"], new=answer.status_code == 201)
    return _progress([request])[0], answer.status_code


TICKETS_PAGE = 200  # erasure requests asked of tickets (and of every service's progress) at a time


def _tickets_requests(days: int, limit: int, offset: int) -> tuple[list[dict], int]:
    """One page of tickets' erasure requests of the last ``days`` days and how many there are."""
    query = f"days={days}&limit={limit}" + (f"&offset={offset}" if offset else "")
    answer = _tickets_get(f"/privacy/requests?{query}")
    if answer.status_code != 200:
        raise UpstreamUnavailable("tickets", f"answered {answer.status_code}", answer)
    body = answer.json()
    return body["items"], body["total"]


def _all_tickets_requests(days: int) -> list[dict]:
    requests, total = _tickets_requests(days, TICKETS_PAGE, 0)
    while len(requests) < total:
        more, total = _tickets_requests(days, TICKETS_PAGE, len(requests))
        if not more:
            break
        requests += more
    return requests


def _progress_of_all(requests: list[dict]) -> list[dict]:
    chunks = (requests[at : at + TICKETS_PAGE] for at in range(0, len(requests), TICKETS_PAGE))
    return [each for chunk in chunks for each in _progress(chunk)]


def requests_page(days: int, state: str | None, limit: int, offset: int) -> tuple[list[dict], int]:
    """One page of the erasure requests of the last ``days`` days (in ``state``, if given) with
    their progress, and how many match; raises UpstreamUnavailable when tickets is down.

    ``days`` bounds the requests; a state is known only from every service's progress, so with
    ``state`` every request of those days is asked about, without it only the page's."""
    requests = _all_tickets_requests(days)
    if state is None:
        return _progress(requests[offset : offset + limit]), len(requests)
    matching = [each for each in _progress_of_all(requests) if each["state"] == state]
    return matching[offset : offset + limit], len(matching)


def requests_with_progress(days: int = 30) -> list[dict]:
    """Every erasure request of the last ``days`` days with its progress; raises
    UpstreamUnavailable when tickets is down."""
    return _progress_of_all(_all_tickets_requests(days))


class AuditArgs(page_args(default=100, maximum=1000, name="AuditPageArgs")):
    customer_id = fields.String(validate=validate.Length(min=1, max=36))
    action = fields.String(validate=validate.Length(min=1, max=32))
    actor_id = fields.String(validate=validate.Length(min=1, max=64))


class AuditEntryOut(Schema):
    id = fields.Integer()
    at = Timestamp()
    actor_id = fields.String(allow_none=True)
    actor_role = fields.String(allow_none=True)
    action = fields.String()
    customer_id = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)
    detail = fields.Dict()


AuditEntryPage = page_schema(AuditEntryOut, "AuditEntryPage")


@privacy.route("/api/audit")
class Audit(MethodView):
    @privacy.arguments(AuditArgs, location="query")
    @privacy.response(200, AuditEntryPage)
    def get(self, args):
        """The audit log, newest first (admins): exports, erasures and views of customers' data."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc())
        for name in ("customer_id", "action", "actor_id"):
            if name in args:
                query = query.where(getattr(AuditEntry, name) == args[name])
        with unit_of_work(read_only=True) as uow:
            items, total = page_of(uow.session, query, args["limit"], args["offset"], scalars=True)
        return page(items, total, args)
