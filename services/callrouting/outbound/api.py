"""HTTP routes of the call lists (outbound): the agents registry, campaigns, entries, the hand-out, outcomes,
the do-not-call list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from shared.auth import ensure_acting_for
from shared.event_catalog import CALL_OUTCOMES, ENTRY_STATES
from shared.phones import NotAPhoneNumber, to_e164
from shared.replicas import CustomerReplicaOut
from shared.schemas import Timestamp, page, page_args, page_schema
from shared.web import unit_of_work

from . import domain, handout, service, views

agents = Blueprint("agents", __name__, url_prefix="/agents", description="The agents registry and the next call")
campaigns = Blueprint("campaigns", __name__, url_prefix="/campaigns", description="Follow-up call lists")
entries = Blueprint("entries", __name__, url_prefix="/entries", description="Call-list entries and their outcomes")

do_not_call = Blueprint(
    "do_not_call", __name__, url_prefix="/do-not-call", description="The do-not-call list every campaign obeys"
)

# --- schemas ----------------------------------------------------------------------------------


class AgentIn(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._@:\-]{1,64}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    skills = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)), load_default=list, validate=validate.Length(max=50)
    )


class AgentOut(Schema):
    id = fields.String(attribute="agent_id", metadata={"description": "the gateway's user id"})
    name = fields.String()
    skills = fields.List(fields.String())
    state = fields.String()
    state_changed_at = Timestamp(allow_none=True)
    created_at = Timestamp()


class RetryRule(Schema):
    delay_minutes = fields.Integer()
    max_attempts = fields.Integer()


class CampaignFields(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    purpose = fields.String(validate=validate.OneOf(domain.PURPOSES))
    delay_days = fields.Integer(validate=validate.Range(min=0, max=3650))
    script = fields.String(validate=validate.Length(max=20_000))
    talking_point = fields.String(validate=validate.Length(max=5_000))
    retry_policy = fields.Dict(
        metadata={"description": 'outcome -> {"delay_minutes", "max_attempts"}, e.g. {"no_answer": {...}}'}
    )
    calling_window = fields.Dict(
        metadata={
            "description": 'weekday -> ["HH:MM", "HH:MM"] in the customer\'s local time; a day left out: no calls'
        }
    )
    contact_frequency_days = fields.Integer(validate=validate.Range(min=0, max=3650))
    required_skill = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    survey_delivery = fields.String(
        validate=validate.OneOf(domain.SURVEY_DELIVERIES),
        metadata={
            "description": "on_call: the agent asks the survey (its link is mailed when the call ends without "
            "one); link_by_email: the survey's signed link is mailed once the entry ends"
        },
    )
    active = fields.Boolean()

    @validates("retry_policy")
    def _retry_policy(self, value, **_):
        errors = domain.retry_policy_errors(value)
        if errors:
            raise ValidationError(errors)

    @validates("calling_window")
    def _calling_window(self, value, **_):
        errors = domain.calling_window_errors(value)
        if errors:
            raise ValidationError(errors)


class CampaignIn(CampaignFields):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class CampaignOut(Schema):
    id = fields.String(attribute="campaign_id")
    name = fields.String()
    purpose = fields.String()
    delay_days = fields.Integer()
    script = fields.String()
    talking_point = fields.String()
    retry_policy = fields.Dict(keys=fields.String(), values=fields.Nested(RetryRule))
    calling_window = fields.Dict()
    contact_frequency_days = fields.Integer()
    required_skill = fields.String(allow_none=True)
    survey_delivery = fields.String()
    active = fields.Boolean()
    created_at = Timestamp()
    updated_at = Timestamp()


AgentQuery = page_args(name="AgentQuery")


AgentPage = page_schema(AgentOut, "AgentPage")


class CampaignQuery(page_args(name="CampaignQuery")):
    purpose = fields.String(validate=validate.OneOf(domain.PURPOSES))
    active = fields.Boolean()


class EntryIn(Schema):
    customer_id = fields.UUID(required=True)
    purchase_id = fields.UUID(load_default=None, allow_none=True)
    due_at = Timestamp(load_default=None, allow_none=True)


class EntryOut(Schema):
    id = fields.String(attribute="entry_id")
    campaign_id = fields.String()
    customer_id = fields.String()
    purchase_id = fields.String(allow_none=True)
    followup_request_id = fields.String(allow_none=True)
    origin = fields.String()
    state = fields.String()
    due_at = Timestamp()
    time_zone = fields.String()
    attempts = fields.Integer()
    leased_by = fields.String(allow_none=True)
    leased_at = Timestamp(allow_none=True)
    lease_expires_at = Timestamp(allow_none=True)
    last_outcome = fields.String(allow_none=True)
    offer_accepted = fields.Boolean(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()
    closed_at = Timestamp(allow_none=True)


CampaignPage = page_schema(CampaignOut, "CampaignPage")
EntryPage = page_schema(EntryOut, "EntryPage")


class EntryQuery(page_args(name="EntryQuery")):
    state = fields.String(validate=validate.OneOf(ENTRY_STATES))
    customer_id = fields.UUID()
    due_before = Timestamp()


class ImportRowError(Schema):
    line = fields.Integer()
    reason = fields.String()


class ImportOut(Schema):
    created = fields.Integer()
    entry_ids = fields.List(fields.String())
    errors = fields.List(fields.Nested(ImportRowError))


class AttemptOut(Schema):
    id = fields.String(attribute="attempt_id")
    entry_id = fields.String()
    agent_id = fields.String()
    attempt = fields.Integer()
    outcome = fields.String()
    offer_accepted = fields.Boolean(allow_none=True)
    notes = fields.String(allow_none=True)
    callback_at = Timestamp(allow_none=True)
    started_at = Timestamp(allow_none=True)
    ended_at = Timestamp()


class EntryWithAttempts(EntryOut):
    history = fields.List(fields.Nested(AttemptOut))


class CampaignBrief(Schema):
    id = fields.String(attribute="campaign_id")
    name = fields.String()
    purpose = fields.String()
    script = fields.String()
    talking_point = fields.String()
    survey_delivery = fields.String(metadata={"description": "link_by_email: the agent does not ask the survey"})


class NextCallOut(Schema):
    entry = fields.Nested(EntryOut)
    attempt = fields.Integer(metadata={"description": "which attempt on the entry this call is"})
    campaign = fields.Nested(CampaignBrief)
    customer = fields.Nested(CustomerReplicaOut, allow_none=True)
    lease_renewed = fields.Boolean(metadata={"description": "the agent already held this entry"})


class OutcomeIn(Schema):
    agent_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    outcome = fields.String(required=True, validate=validate.OneOf(CALL_OUTCOMES))
    offer_accepted = fields.Boolean(load_default=None, allow_none=True)
    notes = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=5_000))
    callback_at = Timestamp(load_default=None, allow_none=True)


class OutcomeOut(Schema):
    entry = fields.Nested(EntryOut)
    attempt = fields.Nested(AttemptOut)


class ReportQuery(Schema):
    from_ = fields.Date(data_key="from")
    to = fields.Date()

    @validates_schema
    def _span(self, data, **_):
        first, last = data.get("from_"), data.get("to")
        if first and last and first > last:
            raise ValidationError("must not be after 'to'", "from")
        if first and last and (last - first).days > 366:
            raise ValidationError("a report spans at most 367 days", "from")


class ReportTotals(Schema):
    due = fields.Integer()
    attempted = fields.Integer()
    attempts = fields.Integer()
    reached = fields.Integer()
    reached_rate = fields.Float(allow_none=True)
    attempts_per_reach = fields.Float(allow_none=True)
    offers_accepted = fields.Integer()
    do_not_call = fields.Integer()


class ReportDay(ReportTotals):
    date = fields.String()


class ReportOut(Schema):
    campaign_id = fields.String()
    name = fields.String()
    from_ = fields.String(data_key="from", attribute="from")  # the report dict's key is "from" too
    to = fields.String()
    totals = fields.Nested(ReportTotals)
    days = fields.List(fields.Nested(ReportDay))


class DoNotCallIn(Schema):
    customer_id = fields.UUID(load_default=None, allow_none=True)
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=3, max=32))

    @validates("phone")
    def _phone(self, value, **_):
        if value is not None:
            try:
                to_e164(value)
            except NotAPhoneNumber as error:
                raise ValidationError(f"not a phone number ({error})") from error

    @validates_schema
    def _something(self, data, **_):
        if not data.get("customer_id") and not data.get("phone"):
            raise ValidationError("give a customer_id, a phone, or both", "customer_id")


class DoNotCallOut(Schema):
    id = fields.Integer(attribute="dnc_id")
    customer_id = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    source = fields.String(metadata={"description": "consent (the directory), outcome (a call), manual"})
    created_at = Timestamp()


class DoNotCallQuery(page_args(name="DoNotCallQuery")):
    customer_id = fields.UUID()
    phone = fields.String()


DoNotCallPage = page_schema(DoNotCallOut, "DoNotCallPage")


# --- agents --------------------------------------------------------------------------------------


@agents.route("")
class Agents(MethodView):
    @agents.arguments(AgentIn)
    @agents.response(200, AgentOut)
    def post(self, body):
        """Register an agent, or update an existing agent's name and skills (its state is kept)."""
        with unit_of_work() as uow:
            return service.register_agent(uow, body["id"], body["name"], body["skills"])

    @agents.arguments(AgentQuery, location="query")
    @agents.response(200, AgentPage)
    def get(self, query):
        """Every agent, by id."""
        with unit_of_work(read_only=True) as uow:
            found, total = views.list_agents(uow, query["limit"], query["offset"])
            return page(found, total, query)


@agents.route("/<agent_id>")
class AgentById(MethodView):
    @agents.response(200, AgentOut)
    def get(self, agent_id):
        with unit_of_work(read_only=True) as uow:
            return service.get_agent(uow, agent_id)


@agents.route("/<agent_id>/next-call")
class NextCall(MethodView):
    @agents.response(200, NextCallOut)
    @agents.alt_response(204, description="Nothing is due and callable now.")
    def post(self, agent_id):
        """Lease the agent one due entry, chosen uniformly at random among those callable now.

        An agent who already holds a lease gets the same entry again (``lease_renewed``).
        The lease lasts ``CALLROUTING_LEASE_SECONDS`` (900); then the entry returns to the pool.
        """
        lease_seconds = float(current_app.extensions["settings"].option("CALLROUTING_LEASE_SECONDS", "900"))
        with unit_of_work() as uow:
            handed = handout.next_call(uow, agent_id, lease_seconds=lease_seconds)
            if handed is None:
                return "", 204
            return {
                "entry": handed.entry,
                "attempt": handed.attempt,
                "campaign": handed.campaign,
                "customer": handed.customer,
                "lease_renewed": handed.renewed,
            }


# --- campaigns -----------------------------------------------------------------------------------


@campaigns.route("")
class Campaigns(MethodView):
    @campaigns.arguments(CampaignIn)
    @campaigns.response(201, CampaignOut)
    def post(self, body):
        """Create a call list. Defaults: post_purchase, 30 days after the purchase, weekdays 09:00-20:00 and
        Saturdays 10:00-16:00 local time, no answer retried after 4 h up to 3 times, busy after 30 min up to 5."""
        with unit_of_work() as uow:
            return service.create_campaign(uow, **body)

    @campaigns.arguments(CampaignQuery, location="query")
    @campaigns.response(200, CampaignPage)
    def get(self, query):
        """Call lists, oldest first."""
        with unit_of_work(read_only=True) as uow:
            found, total = views.list_campaigns(
                uow, query.get("purpose"), query.get("active"), limit=query["limit"], offset=query["offset"]
            )
            return page(found, total, query)


@campaigns.route("/<campaign_id>")
class CampaignById(MethodView):
    @campaigns.response(200, CampaignOut)
    def get(self, campaign_id):
        with unit_of_work(read_only=True) as uow:
            return service.get_campaign(uow, campaign_id)

    @campaigns.arguments(CampaignFields)
    @campaigns.response(200, CampaignOut)
    def patch(self, changes, campaign_id):
        """Change settings; ``{"active": false}`` pauses the list's hand-outs, ``true`` resumes them."""
        with unit_of_work() as uow:
            return service.update_campaign(uow, campaign_id, changes)


@campaigns.route("/<campaign_id>/entries")
class CampaignEntries(MethodView):
    @campaigns.doc(
        requestBody={
            "content": {
                "application/json": {"schema": EntryIn},
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "customer_id,purchase_id,due_at\n<uuid>,<uuid>,2026-12-01T09:00:00+01:00\n",
                },
            }
        },
        responses={"200": {"description": "CSV: the rows taken and each refused row with its line and reason"}},
    )
    @campaigns.response(201, EntryOut)
    def post(self, campaign_id):
        """Add one entry (JSON), or import a CSV (``Content-Type: text/csv``; columns customer_id,
        purchase_id, due_at): good rows are kept, every bad row is reported with its line and reason."""
        if request.mimetype == "text/csv":
            text = request.get_data(as_text=True)
            with unit_of_work() as uow:
                result = service.import_entries_csv(uow, campaign_id, text)
            body = {"created": len(result.created), "entry_ids": result.created, "errors": result.errors}
            return jsonify(ImportOut().dump(body))  # a Response: not the 201 entry schema below
        try:
            body = EntryIn().load(request.get_json(silent=False) or {})
        except ValidationError as error:
            abort(422, messages={"json": error.messages})
        with unit_of_work() as uow:
            return service.add_entry(
                uow,
                campaign_id,
                str(body["customer_id"]),
                str(body["purchase_id"]) if body["purchase_id"] else None,
                body["due_at"],
            )

    @campaigns.arguments(EntryQuery, location="query")
    @campaigns.response(200, EntryPage)
    def get(self, query, campaign_id):
        """Entries of a list, by due time; filter by state, customer, due before; page with limit/offset."""
        with unit_of_work(read_only=True) as uow:
            found, total = views.list_entries(
                uow,
                campaign_id,
                state=query.get("state"),
                customer_id=str(query["customer_id"]) if query.get("customer_id") else None,
                due_before=query.get("due_before"),
                limit=query["limit"],
                offset=query["offset"],
            )
            return page(found, total, query)


@campaigns.route("/<campaign_id>/report")
class CampaignReport(MethodView):
    @campaigns.arguments(ReportQuery, location="query")
    @campaigns.response(200, ReportOut)
    def get(self, query, campaign_id):
        """Per UTC day and in total: entries due, attempted, reached rate, attempts per reach, offers
        accepted, do-not-call outcomes. Defaults to the 30 days up to today."""
        last = query.get("to") or datetime.now(UTC).date()
        first = query.get("from_") or last - timedelta(days=29)
        if first > last:
            abort(422, messages={"query": {"from": ["must not be after 'to'"]}})
        with unit_of_work(read_only=True) as uow:
            return views.campaign_report(uow, campaign_id, first, last)


# --- the do-not-call list ---------------------------------------------------------------------------


@do_not_call.route("")
class DoNotCallList(MethodView):
    @do_not_call.arguments(DoNotCallIn)
    @do_not_call.response(201, DoNotCallOut)
    def post(self, body):
        """Put a customer and/or a number on the list by hand; their open entries are cancelled."""
        phone = to_e164(body["phone"]) if body["phone"] else None
        customer_id = str(body["customer_id"]) if body["customer_id"] else None
        with unit_of_work() as uow:
            return service.add_to_do_not_call(uow, customer_id, phone)[0]

    @do_not_call.arguments(DoNotCallQuery, location="query")
    @do_not_call.response(200, DoNotCallPage)
    def get(self, query):
        """The list, newest first: from consent (the directory), call outcomes and by hand."""
        phone = query.get("phone")
        if phone:
            try:
                phone = to_e164(phone)
            except NotAPhoneNumber:
                abort(422, messages={"query": {"phone": ["not a phone number"]}})
        with unit_of_work(read_only=True) as uow:
            customer_id = str(query["customer_id"]) if query.get("customer_id") else None
            rows, total = views.list_do_not_call(uow, customer_id, phone, query["limit"], query["offset"])
            return page(rows, total, query)


# --- entries ---------------------------------------------------------------------------------------


@entries.route("/<entry_id>")
class EntryById(MethodView):
    @entries.response(200, EntryWithAttempts)
    def get(self, entry_id):
        """An entry and every attempt made on it."""
        with unit_of_work(read_only=True) as uow:
            entry, history = views.get_entry(uow, entry_id)
            columns = [field.attribute or name for name, field in EntryOut().fields.items()]
            return {**{column: getattr(entry, column) for column in columns}, "history": history}


@entries.route("/<entry_id>/outcome")
class EntryOutcome(MethodView):
    @entries.arguments(OutcomeIn)
    @entries.response(200, OutcomeOut)
    def post(self, body, entry_id):
        """Record the outcome of the call; the agent must hold the entry. The campaign's retry policy
        decides: retried later (pending), exhausted, completed (reached) or cancelled (wrong number,
        do not call, which also puts the customer on the do-not-call list)."""
        ensure_acting_for(body["agent_id"])
        with unit_of_work() as uow:
            entry, attempt = service.record_outcome(uow, entry_id, **body)
            return {"entry": entry, "attempt": attempt}
