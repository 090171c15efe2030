"""The customer view, assembled from every service.

``GET /api/customers/<customer_id>/view`` and ``GET /api/customers/lookup?phone=`` ask the
three services at once, one request each, under one overall deadline
(``VIEW_DEADLINE_SECONDS``, 1 s):

- tickets ``GET /customers/<id>/overview``: profile and segment, purchases, open and recent
  tickets with their SLA state, open service-recovery cases;
- call routing ``GET /customers/<id>/contacts``: calls in and out with reasons, outcomes and
  agents, pending follow-ups (call-list entries);
- surveys ``GET /customers/<id>/survey-summary``: the latest responses, score trend.

Each call has its own timeout (what is left of the deadline) and goes through the service's
circuit breaker (``upstream``). A service that is down, slow, failing or whose breaker is open
does not fail the view: its parts are ``null``, ``partial`` is true and ``missing`` names the
service and why (``{"surveys": "timed out (deadline)"}``). When tickets is missing the profile
comes from the gateway's own customer replica (kept from ``customer.*`` events).

Complete views are cached per process (``VIEW_CACHE_SECONDS``, 5; ``VIEW_CACHE_SIZE``, 2,000
customers; 0 seconds turns it off): an event naming the customer (``live_hub``) drops theirs,
the time limit bounds the staleness should an event be missed, and the cache is used only
while this process's hub listens to the broker. What a view holds does not depend on who
asks (every role sees the same three reads), so one entry per customer serves everybody.
While a customer's view is being fetched, the process's other requests for it wait for that
fetch and share its answer (no stampede on the services when an entry expires under load).
Answers say ``X-Cache: hit`` (no service asked for this request) or ``miss``.

The live stream's screen-pop calls :func:`customer_view` directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import orjson
from flask import Response, current_app, jsonify, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from shared.errors import Invalid, NotFound
from shared.events import isoformat_utc
from shared.phones import NotAPhoneNumber, to_e164
from shared.problems import problem
from shared.replicas import find_customers_by_phone
from shared.schemas import Timestamp
from shared.web import unit_of_work

from .live_hub import Flight, LiveHub, hub_of
from .models import CustomerReplica, CustomerReplicaPhone
from .upstream import UpstreamUnavailable, upstreams

customer_views = Blueprint(
    "customer_view",
    __name__,
    url_prefix="/api/customers",
    description="The customer view, assembled from every service.",
)

# Which role these routes need beyond an agent (shared.auth rules; collected by app.py).
ACCESS: list = []

DEFAULT_DEADLINE_SECONDS = 1.0
DEFAULT_CACHE_SECONDS = 5.0
# The answer's headers, for the spec.
CACHE_HEADER = {
    "X-Cache": {
        "description": "`hit`: from this gateway process's view cache; `miss`: assembled now",
        "schema": {"type": "string", "enum": ["hit", "miss"]},
    }
}
CALL_GRACE_SECONDS = 0.05
# What each service is asked, by the name ``missing`` uses for it.
PARTS = {
    "tickets": "/customers/{id}/overview",
    "callrouting": "/customers/{id}/contacts",
    "surveys": "/customers/{id}/survey-summary",
}
# Outbound attempts in which somebody spoke with the customer (the others are no contact).
_SPOKEN_OUTCOMES = frozenset(("reached", "callback_requested", "do_not_call"))


class CustomerNotFound(NotFound):
    """No such customer: neither the tickets service nor the gateway's replica knows the id.

    A plain ``shared.errors.NotFound``: the API answers it as a 404 problem (``shared.problems``),
    the console as its 404 page.
    """

    def __init__(self, customer_id: str):
        super().__init__(f"No customer {customer_id}.")
        self.customer_id = customer_id


class _Unknown(Exception):
    """The tickets service answered 404 for the customer."""


def deadline_seconds() -> float:
    return float(current_app.extensions["settings"].option("VIEW_DEADLINE_SECONDS", str(DEFAULT_DEADLINE_SECONDS)))


@dataclass(frozen=True)
class _Known:
    """What the gateway's replica says of an id: the customer that now stands for it (merges
    followed) and their replica row (None when unknown or not arrived yet)."""

    survivor: str
    replica: CustomerReplica | None = None


def _known(customer_id: str) -> _Known:
    with unit_of_work(read_only=True) as uow:
        session = uow.session
        seen: set[str] = set()
        replica = session.get(CustomerReplica, customer_id)
        while replica is not None and replica.merged_into_id and replica.merged_into_id not in seen:
            seen.add(replica.customer_id)
            survivor = session.get(CustomerReplica, replica.merged_into_id)
            if survivor is None:  # the survivor's record has not arrived yet: ask for it anyway
                return _Known(replica.merged_into_id)
            replica = survivor
        if replica is None:
            return _Known(customer_id)
        session.expunge(replica)
        return _Known(replica.customer_id, replica)


def _numbers_of(replica: CustomerReplica) -> list[str]:
    """Every number of a replicated customer, the primary one first (only needed when tickets,
    which has them in its overview, is missing)."""
    with unit_of_work(read_only=True) as uow:
        phones = uow.session.scalars(
            select(CustomerReplicaPhone.phone).where(CustomerReplicaPhone.customer_id == replica.customer_id)
        ).all()
    return sorted(phones, key=lambda phone: phone != replica.phone)


_UNKNOWN = object()  # the tickets service answered 404 for the customer


@dataclass(frozen=True)
class _Answer:
    """A view, its JSON text (made once, also for the cache) and whether it came from the cache."""

    view: dict
    body: str
    cache: str  # "hit" | "miss"

    def response(self) -> Response:
        response = current_app.response_class(self.body, mimetype="application/json")
        response.headers["X-Cache"] = self.cache
        return response


@dataclass(frozen=True)
class _Cache:
    hub: LiveHub
    max_age: float


def _cache() -> _Cache | None:
    """This process's view cache, or None when ``VIEW_CACHE_SECONDS`` is 0. Asking counts as
    use: the hub (which keeps the cache true) stays up, or starts."""
    max_age = float(current_app.extensions["settings"].option("VIEW_CACHE_SECONDS", str(DEFAULT_CACHE_SECONDS)))
    if max_age <= 0:
        return None
    hub = hub_of(current_app)
    hub.use_views()
    return _Cache(hub, max_age)


def _cached(cache: _Cache | None, customer_id: str) -> _Answer | None:
    # An entry is only ever stored under a survivor's own id, and a merge drops both ids: a hit
    # needs no look at the replica.
    hit = cache.hub.cached_view(customer_id, cache.max_age) if cache else None
    return _Answer(hit.view, hit.body, "hit") if hit else None


def _fetched(customer_id: str, known: _Known, deadline: float | None, started: float, cache: _Cache | None) -> _Answer:
    began = cache.hub.begin_view() if cache else None
    joined = cache.hub.view_flight(customer_id) if began is not None else None
    if joined is not None and not joined[1]:
        # The same view is being fetched for another request of this process: share its answer.
        if shared := _shared(joined[0], customer_id, deadline, started):
            return shared
        joined = None
    try:
        view = _view(customer_id, known, deadline, started)
        answer = _Answer(view, current_app.json.dumps(view), "miss")
    except BaseException as error:
        if joined:
            cache.hub.views.land(customer_id, joined[0], error=error)
        raise
    # Only a complete view, asked for by the survivor's own id (a merge tickets followed but the
    # replica has not heard of yet would file it under the wrong customer's events).
    if began is not None and not view["partial"] and view["customer_id"] == customer_id == known.survivor:
        cache.hub.store_view(customer_id, answer, began, started)  # its age counts from before the reads
    if joined:
        cache.hub.views.land(customer_id, joined[0], answer)
    return answer


def _shared(flight: Flight, customer_id: str, deadline: float | None, started: float) -> _Answer | None:
    """What another request's fetch of the same view answered, if it does within our deadline
    (None: it failed otherwise or outlasted the deadline, and this request fetches alone)."""
    deadline = deadline_seconds() if deadline is None else deadline
    if not flight.done.wait(max(0.0, deadline - (time.monotonic() - started))):
        return None
    if isinstance(flight.error, CustomerNotFound):
        raise CustomerNotFound(customer_id)
    if flight.error is not None or flight.value is None:
        return None
    return _Answer(flight.value.view, flight.value.body, "hit")


def customer_view(customer_id: str, *, deadline: float | None = None) -> dict:
    """The whole view of a customer, as ``GET /api/customers/<id>/view`` answers it (a merged id
    gives the survivor's view, ``merged_from`` naming the id asked for; the route redirects).

    Runs in a request (or app) context: the services are asked as ``acting_user()``. Returns
    within ``deadline`` seconds (``VIEW_DEADLINE_SECONDS`` by default) plus a few milliseconds,
    whatever the services do; at once from this process's cache when it holds the customer.
    Raises :class:`CustomerNotFound` (a 404) when the tickets service says the customer does not
    exist, or cannot answer and the gateway's replica does not know the id either. The dict
    returned may be shared with the cache: do not change it.
    """
    answer = _customer_view(customer_id, deadline).view
    audit_view(customer_id)
    return answer


def audit_view(customer_id: str) -> None:
    """Every look at a customer's data is in the audit log (services/gateway/privacy.py)."""
    from .privacy import audit

    audit("customer.viewed", customer_id)


def _customer_view(customer_id: str, deadline: float | None = None) -> _Answer:
    started = time.monotonic()
    cache = _cache()
    return _cached(cache, customer_id) or _fetched(customer_id, _known(customer_id), deadline, started, cache)


def _view(customer_id: str, known: _Known, deadline: float | None, started: float) -> dict:
    deadline = deadline_seconds() if deadline is None else deadline
    front = upstreams()  # read here: the calls run in the pool's threads, outside the app context
    quoted = quote(known.survivor, safe="")

    def ask(service: str, path: str):
        def call(user, request_id):
            # What is left of the deadline, and a little more: the view stops waiting at the
            # deadline ("timed out (deadline)"), and the call ends just after, counted against the
            # service's breaker instead of holding a thread of the pool.
            timeout = max(0.01, deadline - (time.monotonic() - started)) + CALL_GRACE_SECONDS
            response = front.call(service, "GET", path, user=user, request_id=request_id, timeout=timeout)
            if service == "tickets" and response.status_code == 404:
                return _UNKNOWN
            if response.status_code != 200:
                raise UpstreamUnavailable(service, f"answered {response.status_code}", response)
            return orjson.loads(response.content)  # half the time of requests' json() on these parts

        return call

    calls = {service: ask(service, path.format(id=quoted)) for service, path in PARTS.items()}
    results, missing = front.fan_out(calls, max(0.0, deadline - (time.monotonic() - started)))
    if results.get("tickets") is _UNKNOWN or ("tickets" in missing and known.replica is None):
        raise CustomerNotFound(customer_id)
    return _assemble(customer_id, known, results, missing)


def _assemble(asked: str, known: _Known, results: dict, missing: dict) -> dict:
    survivor, replica = known.survivor, known.replica
    tickets, contacts, surveys = results.get("tickets"), results.get("callrouting"), results.get("surveys")
    if tickets is not None:
        profile = {**tickets["customer"], "source": "tickets"}
        survivor = profile["id"]
    elif replica is not None:
        profile = {
            "id": replica.customer_id,
            "name": replica.name,
            "phone": replica.phone,
            "phones": _numbers_of(replica),
            "email": replica.email,
            "time_zone": replica.time_zone,
            "do_not_call": replica.do_not_call,
            "marketing_consent": replica.marketing_consent,
            "segment": replica.segment,
            "language": replica.language,
            "source": "gateway replica",
        }
    else:
        profile = None
    view = {
        "customer_id": survivor,
        "merged_from": asked if asked != survivor else None,
        "partial": bool(missing),
        "missing": missing,
        "profile": profile,
        "segment": profile["segment"] if profile else None,
        "purchases": tickets["purchases"] if tickets else None,
        "tickets": tickets["tickets"] if tickets else None,
        "service_recovery": tickets["service_recovery"] if tickets else None,
        "calls": {"inbound": contacts["inbound"], "outbound": contacts["outbound"]} if contacts else None,
        "follow_ups": contacts["pending"] if contacts else None,
        "surveys": _surveys_part(surveys) if surveys else None,
        "mails": _mails(tickets, surveys),
        "last_contact": _last_contact(tickets, contacts, surveys),
        "generated_at": isoformat_utc(datetime.now(UTC)),
    }
    return view


def _surveys_part(summary: dict) -> dict:
    """Surveys' ``survey-summary``, as the view has it beside the tickets part: the latest responses
    (``recent``, at most ``recent_limit``), how many in all (``total``), complete ones, the trend."""
    return {
        "recent": summary["recent"],
        "recent_limit": summary["recent_limit"],
        "total": summary["response_count"],
        "completed": summary["completed_count"],
        "trend": summary["trend"],
    }


def _mails(tickets: dict | None, surveys: dict | None) -> list[dict] | None:
    """The service desk's mails (in and out, on tickets) and the survey invitations, newest first;
    None when neither service answered (a service that did not shows as ``missing``)."""
    if tickets is None and surveys is None:
        return None
    mails = [*(tickets or {}).get("mails", []), *(surveys or {}).get("mails", [])]
    return sorted(mails, key=lambda mail: _moment(mail.get("sent_at") or mail["created_at"]), reverse=True)


def _last_contact(tickets: dict | None, contacts: dict | None, surveys: dict | None) -> dict | None:
    """The latest moment the customer was in touch, among the parts at hand: a call in, a
    follow-up call in which someone spoke with them, a ticket opened, a survey answered."""
    candidates = []
    if contacts:
        if contacts["inbound"]["items"]:
            call = contacts["inbound"]["items"][0]
            candidates.append(("call_in", call["received_at"], call["call_id"], call.get("agent_id")))
        spoken = [item for item in contacts["outbound"]["items"] if item["outcome"] in _SPOKEN_OUTCOMES]
        if spoken:
            candidates.append(("call_out", spoken[0]["ended_at"], spoken[0]["attempt_id"], spoken[0]["agent_id"]))
    if tickets and tickets["tickets"]["recent"]:
        ticket = tickets["tickets"]["recent"][0]
        candidates.append(("ticket", ticket["created_at"], ticket["id"], ticket.get("assignee_id")))
    if surveys:
        answered = [r for r in surveys["recent"] if r.get("completed_at") or r.get("started_at")]
        if answered:
            latest = max(answered, key=lambda r: _moment(r.get("completed_at") or r["started_at"]))
            at = latest.get("completed_at") or latest["started_at"]
            candidates.append(("survey", at, latest["id"], latest.get("agent_id")))
    if not candidates:
        return None
    kind, at, ref, agent_id = max(candidates, key=lambda candidate: _moment(candidate[1]))
    return {"kind": kind, "at": at, "id": ref, "agent_id": agent_id}


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- routes ---------------------------------------------------------------------------------


class CustomerViewOut(Schema):
    customer_id = fields.String(metadata={"description": "the customer shown (the survivor of a merge)"})
    merged_from = fields.String(allow_none=True, metadata={"description": "the merged-away id that was asked for"})
    partial = fields.Boolean(metadata={"description": "some service did not answer in time or at all"})
    missing = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": 'service -> why its parts are null, e.g. {"surveys": "timed out (deadline)"}'},
    )
    profile = fields.Dict(allow_none=True, metadata={"description": "tickets' customer, or the gateway's replica"})
    segment = fields.String(allow_none=True)
    purchases = fields.Dict(allow_none=True, metadata={"description": "tickets: {items, total, limit}, newest first"})
    tickets = fields.Dict(
        allow_none=True, metadata={"description": "tickets: {open, open_total, recent, total, limit}, with SLA states"}
    )
    service_recovery = fields.Dict(allow_none=True, metadata={"description": "tickets: open service_recovery cases"})
    calls = fields.Dict(allow_none=True, metadata={"description": "call routing: {inbound, outbound}, newest first"})
    follow_ups = fields.Dict(allow_none=True, metadata={"description": "call routing: pending call-list entries"})
    surveys = fields.Dict(
        allow_none=True, metadata={"description": "surveys: {recent, recent_limit, total, completed, trend}"}
    )
    last_contact = fields.Dict(
        allow_none=True, metadata={"description": "{kind: call_in | call_out | ticket | survey, at, id, agent_id}"}
    )
    generated_at = Timestamp()


class LookupQuery(Schema):
    phone = fields.String(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata={"description": "any of the customer's numbers, in any format"},
    )
    region = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[A-Za-z]{2}$"),
        metadata={"description": "ISO 3166 region for a number without country code (DEFAULT_PHONE_REGION)"},
    )


@customer_views.route("/<customer_id>/view")
class CustomerView(MethodView):
    @customer_views.response(200, CustomerViewOut, headers=CACHE_HEADER)
    @customer_views.alt_response(308, description="Merged: the Location is the surviving customer's view")
    def get(self, customer_id):
        """Everything about a customer from every service; partial (and said so) when one is down."""
        started = time.monotonic()
        cache = _cache()
        if hit := _cached(cache, customer_id):
            audit_view(customer_id)
            return hit.response()
        known = _known(customer_id)
        if known.survivor != customer_id:
            response = jsonify(id=customer_id, merged_into=known.survivor)
            response.status_code = 308
            response.headers["Location"] = url_for("customer_view.CustomerView", customer_id=known.survivor)
            return response
        answer = _fetched(customer_id, known, None, started, cache).response()
        audit_view(customer_id)
        return answer


@customer_views.route("/lookup")
class CustomerLookup(MethodView):
    @customer_views.arguments(LookupQuery, location="query")
    @customer_views.response(200, CustomerViewOut, headers=CACHE_HEADER)
    @customer_views.alt_response(409, description="Several customers share the number: `candidates` lists them")
    def get(self, args):
        """The view of the customer with this number (any format); 404 when nobody has it, 409
        with the candidates when several customers share it."""
        try:
            e164 = to_e164(args["phone"], args["region"])
        except NotAPhoneNumber as error:
            raise Invalid({"phone": f"Not a phone number: {error}"}) from None
        with unit_of_work(read_only=True) as uow:
            matches = find_customers_by_phone(uow.session, CustomerReplica, CustomerReplicaPhone, e164)
            candidates = [
                {"customer_id": m.customer_id, "name": m.name, "phone": m.phone, "segment": m.segment} for m in matches
            ]
        if not candidates:
            return problem(404, "Not Found", f"No customer has the number {e164}.", phone=e164)
        if len(candidates) > 1:
            return problem(
                409,
                "Conflict",
                f"{len(candidates)} customers have the number {e164}; ask for one by id.",
                phone=e164,
                candidates=candidates,
            )
        answer = _customer_view(candidates[0]["customer_id"])
        audit_view(candidates[0]["customer_id"])
        response = jsonify({**answer.view, "matched_phone": e164})
        response.headers["X-Cache"] = answer.cache
        return response
