"""The customers both halves call: the customer replica (``GET /customers/{id}``, from the
directory's events) and a customer's contacts (``GET /customers/{id}/contacts``: calls in,
follow-up attempts out, entries still to call), call routing's part of the gateway's customer
view. A singleton: each list is bounded by ``?limit=`` (20) and gives its own total."""

from __future__ import annotations

from datetime import datetime

from flask import jsonify
from flask.views import MethodView
from marshmallow import Schema, fields, validate
from sqlalchemy import Connection, bindparam, func, select

from shared.events import isoformat_utc
from shared.replicas import customer_replica_blueprint, resolve_customer_id
from shared.schemas import Timestamp
from shared.unit_of_work import UnitOfWork
from shared.web import unit_of_work

from .models import Call, CallAttempt, CallEntry, Campaign, CustomerReplica

CONTACTS_LIMIT = 20  # items per list; the totals count them all
OPEN_ENTRY_STATES = ("pending", "leased")

_calls, _attempts, _entries, _campaigns = (
    Call.__table__.c,
    CallAttempt.__table__.c,
    CallEntry.__table__.c,
    Campaign.__table__.c,
)
# Each reads the customer's entries of an index (ix_calls_customer_received,
# ix_call_attempts_customer_ended, call_entries.customer_id), newest first.
_INBOUND = (
    select(
        _calls.call_id,
        _calls.from_number,
        _calls.queue,
        _calls.state,
        _calls.result,
        _calls.agent_id,
        _calls.reason,
        _calls.notes,
        _calls.ticket_id,
        _calls.received_at,
        _calls.answered_at,
        _calls.ended_at,
        _calls.wait_seconds,
        _calls.talk_seconds,
    )
    .where(_calls.customer_id == bindparam("customer_id"))
    .order_by(_calls.received_at.desc(), _calls.call_id.desc())
    .limit(bindparam("limit"))
)
_INBOUND_TOTAL = select(func.count()).where(_calls.customer_id == bindparam("customer_id"))
_OUTBOUND = (
    select(
        _attempts.attempt_id,
        _attempts.entry_id,
        _attempts.campaign_id,
        _campaigns.name.label("campaign"),
        _campaigns.purpose,
        _attempts.agent_id,
        _attempts.attempt,
        _attempts.outcome,
        _attempts.offer_accepted,
        _attempts.notes,
        _attempts.callback_at,
        _attempts.started_at,
        _attempts.ended_at,
    )
    .join_from(CallAttempt, Campaign, _campaigns.campaign_id == _attempts.campaign_id, isouter=True)
    .where(_attempts.customer_id == bindparam("customer_id"))
    .order_by(_attempts.ended_at.desc(), _attempts.attempt_id.desc())
    .limit(bindparam("limit"))
)
_OUTBOUND_TOTAL = select(func.count()).where(_attempts.customer_id == bindparam("customer_id"))
_PENDING = (
    select(
        _entries.entry_id,
        _entries.campaign_id,
        _campaigns.name.label("campaign"),
        _campaigns.purpose,
        _campaigns.talking_point,
        _entries.state,
        _entries.due_at,
        _entries.attempts,
        _entries.last_outcome,
        _entries.leased_by,
        _entries.purchase_id,
        _entries.origin,
    )
    .join_from(CallEntry, Campaign, _campaigns.campaign_id == _entries.campaign_id)
    .where(_entries.customer_id == bindparam("customer_id"), _entries.state.in_(OPEN_ENTRY_STATES))
    .order_by(_entries.due_at, _entries.entry_id)
    .limit(bindparam("limit"))
)
_PENDING_TOTAL = select(func.count()).where(
    _entries.customer_id == bindparam("customer_id"), _entries.state.in_(OPEN_ENTRY_STATES)
)


def _json_row(row) -> dict:
    return {
        name: isoformat_utc(value) if isinstance(value, datetime) else value for name, value in row._mapping.items()
    }


def _listed(connection: Connection, query, total_query, params: dict) -> dict:
    """At most ``limit`` rows and the total, counted only when the page does not already tell."""
    items = [_json_row(row) for row in connection.execute(query, params)]
    total = len(items) if len(items) < params["limit"] else connection.execute(total_query, params).scalar_one()
    return {"items": items, "total": total}


def customer_contacts(uow: UnitOfWork, customer_id: str, limit: int = CONTACTS_LIMIT) -> dict:
    """A customer's recent inbound calls (with reasons and agents), outbound follow-up attempts
    (with outcomes and agents) and pending call-list entries, each newest first (pending: the
    next due first), at most ``limit`` of each, with totals.

    A merged-away id is followed to the survivor (this service's customer replica). An id
    nobody called is not an error: its lists are empty (calls come from numbers, and the
    customer may not have reached this service's replica yet).
    """
    survivor = resolve_customer_id(uow.session, CustomerReplica, customer_id)
    connection = uow.session.connection()
    params = {"customer_id": survivor, "limit": limit}
    return {
        "customer_id": survivor,
        "inbound": _listed(connection, _INBOUND, _INBOUND_TOTAL, params),
        "outbound": _listed(connection, _OUTBOUND, _OUTBOUND_TOTAL, params),
        "pending": _listed(connection, _PENDING, _PENDING_TOTAL, params),
    }


customer_replicas = customer_replica_blueprint(CustomerReplica, unit_of_work)


class ContactsQuery(Schema):
    limit = fields.Integer(
        load_default=CONTACTS_LIMIT,
        validate=validate.Range(min=1, max=50),
        metadata={"description": "items per list (each list also gives its total)"},
    )


class InboundContactOut(Schema):
    call_id = fields.String()
    from_number = fields.String(allow_none=True)
    queue = fields.String()
    state = fields.String()
    result = fields.String(allow_none=True, metadata={"description": "answered, abandoned, short_abandon, timeout"})
    agent_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "the wrap-up reason"})
    notes = fields.String(allow_none=True)
    ticket_id = fields.String(allow_none=True)
    received_at = Timestamp()
    answered_at = Timestamp(allow_none=True)
    ended_at = Timestamp(allow_none=True)
    wait_seconds = fields.Float(allow_none=True)
    talk_seconds = fields.Float(allow_none=True)


class OutboundContactOut(Schema):
    attempt_id = fields.String()
    entry_id = fields.String()
    campaign_id = fields.String()
    campaign = fields.String(allow_none=True)
    purpose = fields.String(allow_none=True)
    agent_id = fields.String()
    attempt = fields.Integer()
    outcome = fields.String()
    offer_accepted = fields.Boolean(allow_none=True)
    notes = fields.String(allow_none=True)
    callback_at = Timestamp(allow_none=True)
    started_at = Timestamp(allow_none=True)
    ended_at = Timestamp()


class PendingEntryOut(Schema):
    entry_id = fields.String()
    campaign_id = fields.String()
    campaign = fields.String()
    purpose = fields.String()
    talking_point = fields.String()
    state = fields.String(metadata={"description": "pending, or leased (an agent is calling now)"})
    due_at = Timestamp()
    attempts = fields.Integer()
    last_outcome = fields.String(allow_none=True)
    leased_by = fields.String(allow_none=True)
    purchase_id = fields.String(allow_none=True)
    origin = fields.String()


class InboundContacts(Schema):
    items = fields.List(fields.Nested(InboundContactOut))
    total = fields.Integer()


class OutboundContacts(Schema):
    items = fields.List(fields.Nested(OutboundContactOut))
    total = fields.Integer()


class PendingEntries(Schema):
    items = fields.List(fields.Nested(PendingEntryOut))
    total = fields.Integer()


class CustomerContactsOut(Schema):
    customer_id = fields.String(metadata={"description": "the survivor, when the id asked for was merged away"})
    inbound = fields.Nested(InboundContacts, metadata={"description": "calls in, newest first"})
    outbound = fields.Nested(OutboundContacts, metadata={"description": "follow-up call attempts, newest first"})
    pending = fields.Nested(PendingEntries, metadata={"description": "call-list entries still to call, next due first"})


@customer_replicas.route("/<customer_id>/contacts")
class CustomerContacts(MethodView):
    @customer_replicas.arguments(ContactsQuery, location="query")
    @customer_replicas.response(200, CustomerContactsOut)
    def get(self, query, customer_id):
        """A customer's recent calls in and out, with reasons, outcomes and agents, and the
        follow-ups still pending: call routing's part of the gateway's customer view."""
        with unit_of_work(read_only=True) as uow:
            contacts = customer_contacts(uow, customer_id, query["limit"])
        return jsonify(contacts)  # already JSON values: no marshmallow dump on the view's path
