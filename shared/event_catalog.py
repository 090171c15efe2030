"""The event catalog: every event type, its data contract, who publishes and who consumes it.

This is the single source of truth for the contracts between services; ``docs/events.md``
describes the same entries for people and a test keeps the two in step. The broker
topology is derived from the ``consumers`` column, so a consumer's queue is bound before
anything is published to it (see ``shared.topology``).

To change a contract incompatibly, add a new version beside the old one; additive
changes (a new optional field) keep the version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

E164 = r"^\+[1-9]\d{6,14}$"


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    schema: type[Schema]
    publisher: str
    consumers: tuple[str, ...]
    summary: str
    publishing_schema: Schema = field(init=False, repr=False, compare=False)
    receiving_schema: Schema = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # A publisher sends exactly the contract; a consumer ignores fields it does not know.
        object.__setattr__(self, "publishing_schema", self.schema(unknown=RAISE))
        object.__setattr__(self, "receiving_schema", self.schema(unknown=EXCLUDE))


TICKET_CATEGORIES = (
    "complaint",
    "quality_issue",
    "replacement",
    "refund",
    "question",
    "technical_support",
    "registration",
    "suggestion",
    "service_recovery",
    "other",
)
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_STATUSES = ("new", "open", "pending", "resolved", "closed")
CALL_REASONS = (
    "complaint",
    "quality_issue",
    "replacement",
    "refund",
    "question",
    "technical_support",
    "registration",
    "other",
)
CALL_OUTCOMES = ("reached", "no_answer", "busy", "voicemail", "wrong_number", "callback_requested", "do_not_call")
ENTRY_STATES = ("pending", "leased", "completed", "exhausted", "cancelled")
AGENT_STATES = ("offline", "available", "on_break", "reserved", "on_call", "wrap_up")
SURVEY_CHANNELS = ("agent", "keypad", "link")
# How a call list's survey reaches the customer: asked by the agent on the call (a link by mail
# when the call ends without one), or its signed link by mail once the entry ends.
SURVEY_DELIVERIES = ("on_call", "link_by_email")
# A follow-up entry's survey link is mailed once the entry is over (reached, or out of attempts),
# never after these outcomes: the number was not theirs, or they asked for no calls.
SURVEY_MAIL_ENTRY_STATES = ("completed", "exhausted")
NO_SURVEY_MAIL_OUTCOMES = ("wrong_number", "do_not_call")
SEGMENTS = ("A", "B", "C")


def _optional(field_class, **kwargs):
    return field_class(load_default=None, allow_none=True, **kwargs)


def _one_of(choices):
    return validate.OneOf(choices)


# --- the customer directory (tickets) ---------------------------------------------------


class CustomerFields(Schema):
    """What every consumer may keep of a customer; sent whole on create and update."""

    customer_id = fields.UUID(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phone = _optional(fields.String, validate=validate.Regexp(E164))
    email = _optional(fields.Email)
    phones = fields.List(fields.String(validate=validate.Regexp(E164)), load_default=list)
    time_zone = _optional(fields.String, validate=validate.Length(max=64))
    do_not_call = fields.Boolean(load_default=False)
    marketing_consent = fields.Boolean(load_default=False)
    segment = _optional(fields.String, validate=_one_of(SEGMENTS))
    # BCP 47 ("zh-Hant", "tl", "de"): the language surveys and agents use with them; optional for older events
    language = _optional(fields.String, validate=validate.Length(max=16))


class CustomerCreatedV1(CustomerFields):
    pass


class CustomerUpdatedV1(CustomerFields):
    changed = fields.List(fields.String(), required=True)


class CustomerMergedV1(Schema):
    merged_customer_id = fields.UUID(required=True)
    into_customer_id = fields.UUID(required=True)


class CustomerErasedV1(Schema):
    """A customer asked to be erased: every service removes their personal data (services/*/privacy.py)."""

    request_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    # the customer and every duplicate merged into them: all are erased
    customer_ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1))
    # keyed hashes of every number they had (shared.privacy.number_hash), for the do-not-call list
    number_hashes = fields.List(fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$")), load_default=list)
    requested_at = fields.DateTime(required=True)


class PurchaseRecordedV1(Schema):
    purchase_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    sku = fields.String(required=True, validate=validate.Length(min=1, max=64))
    product = fields.String(required=True, validate=validate.Length(min=1, max=200))
    amount = fields.Decimal(required=True, as_string=True, validate=validate.Range(min=0))
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    purchased_at = fields.DateTime(required=True)
    source = fields.String(required=True, validate=validate.Length(min=1, max=64))
    order_ref = fields.String(required=True, validate=validate.Length(min=1, max=128))


# --- tickets ------------------------------------------------------------------------------


class TicketCreatedV1(Schema):
    ticket_id = fields.UUID(required=True)
    number = fields.Integer(required=True)
    customer_id = _optional(fields.UUID)
    subject = fields.String(required=True)
    category = fields.String(required=True, validate=_one_of(TICKET_CATEGORIES))
    priority = fields.String(required=True, validate=_one_of(TICKET_PRIORITIES))
    channel = fields.String(required=True)
    status = fields.String(required=True, validate=_one_of(TICKET_STATUSES))
    assignee_id = _optional(fields.String)
    group = _optional(fields.String)
    call_id = _optional(fields.String)
    survey_response_id = _optional(fields.UUID)
    first_response_due_at = _optional(fields.DateTime)
    resolution_due_at = _optional(fields.DateTime)
    created_at = fields.DateTime(required=True)
    created_by = _optional(fields.String)  # who opened it (none: the system), so their own console stays quiet


class FieldChange(Schema):
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)


class TicketUpdatedV1(Schema):
    ticket_id = fields.UUID(required=True)
    customer_id = _optional(fields.UUID)
    actor_id = _optional(fields.String)
    changes = fields.Dict(keys=fields.String(), values=fields.Nested(FieldChange), required=True)


class TicketStatusChangedV1(Schema):
    ticket_id = fields.UUID(required=True)
    customer_id = _optional(fields.UUID)
    category = fields.String(required=True, validate=_one_of(TICKET_CATEGORIES))
    old_status = fields.String(required=True, validate=_one_of(TICKET_STATUSES))
    new_status = fields.String(required=True, validate=_one_of(TICKET_STATUSES))
    actor_id = _optional(fields.String)
    changed_at = fields.DateTime(required=True)


class TicketResolvedV1(Schema):
    ticket_id = fields.UUID(required=True)
    customer_id = _optional(fields.UUID)
    category = fields.String(required=True, validate=_one_of(TICKET_CATEGORIES))
    priority = fields.String(required=True, validate=_one_of(TICKET_PRIORITIES))
    assignee_id = _optional(fields.String)
    call_id = _optional(fields.String)
    survey_response_id = _optional(fields.UUID)
    resolved_at = fields.DateTime(required=True)
    within_sla = _optional(fields.Boolean)


class TicketSlaBreachedV1(Schema):
    ticket_id = fields.UUID(required=True)
    customer_id = _optional(fields.UUID)
    category = fields.String(required=True, validate=_one_of(TICKET_CATEGORIES))
    priority = fields.String(required=True, validate=_one_of(TICKET_PRIORITIES))
    assignee_id = _optional(fields.String)
    group = _optional(fields.String)
    target = fields.String(required=True, validate=_one_of(("first_response", "resolution")))
    due_at = fields.DateTime(required=True)
    breached_at = fields.DateTime(required=True)


# --- call routing -------------------------------------------------------------------------


class CallEntryCompletedV1(Schema):
    entry_id = fields.UUID(required=True)
    campaign_id = fields.UUID(required=True)
    campaign_purpose = fields.String(required=True)
    customer_id = fields.UUID(required=True)
    purchase_id = _optional(fields.UUID)
    agent_id = fields.String(required=True)
    attempt = fields.Integer(required=True, validate=validate.Range(min=1))
    outcome = fields.String(required=True, validate=_one_of(CALL_OUTCOMES))
    offer_accepted = _optional(fields.Boolean)
    entry_state = fields.String(required=True, validate=_one_of(ENTRY_STATES))
    started_at = _optional(fields.DateTime)
    ended_at = fields.DateTime(required=True)
    # added later, optional: an event without it is an on-call campaign's
    survey_delivery = _optional(fields.String, validate=_one_of(SURVEY_DELIVERIES))


class CallStartedV1(Schema):
    call_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    from_number = _optional(fields.String)
    to_number = _optional(fields.String)
    customer_id = _optional(fields.UUID)
    queue = _optional(fields.String)
    agent_id = _optional(fields.String)
    started_at = fields.DateTime(required=True)


class CallAnsweredV1(Schema):
    call_id = fields.String(required=True)
    customer_id = _optional(fields.UUID)
    queue = _optional(fields.String)
    agent_id = fields.String(required=True)
    enqueued_at = _optional(fields.DateTime)
    answered_at = fields.DateTime(required=True)


class CallCompletedV1(Schema):
    call_id = fields.String(required=True)
    customer_id = _optional(fields.UUID)
    queue = _optional(fields.String)
    agent_id = _optional(fields.String)
    reason = _optional(fields.String, validate=_one_of(CALL_REASONS))
    ticket_id = _optional(fields.UUID)
    enqueued_at = _optional(fields.DateTime)
    answered_at = _optional(fields.DateTime)
    ended_at = fields.DateTime(required=True)
    talk_seconds = fields.Float(required=True, validate=validate.Range(min=0))
    wrap_up_seconds = fields.Float(required=True, validate=validate.Range(min=0))


class CallAbandonedV1(Schema):
    call_id = fields.String(required=True)
    customer_id = _optional(fields.UUID)
    queue = _optional(fields.String)
    enqueued_at = _optional(fields.DateTime)
    abandoned_at = fields.DateTime(required=True)
    wait_seconds = fields.Float(required=True, validate=validate.Range(min=0))
    short_abandon = fields.Boolean(required=True)


class AgentStateChangedV1(Schema):
    agent_id = fields.String(required=True)
    old_state = fields.String(required=True, validate=_one_of(AGENT_STATES))
    new_state = fields.String(required=True, validate=_one_of(AGENT_STATES))
    reason = _optional(fields.String)
    call_id = _optional(fields.String)
    changed_at = fields.DateTime(required=True)


# --- surveys ------------------------------------------------------------------------------


class SurveyProvenance(Schema):
    response_id = fields.UUID(required=True)
    customer_id = fields.UUID(required=True)
    template_id = fields.UUID(required=True)
    template_version = fields.Integer(required=True)
    channel = fields.String(required=True, validate=_one_of(SURVEY_CHANNELS))
    agent_id = _optional(fields.String)
    call_id = _optional(fields.String)
    entry_id = _optional(fields.UUID)
    campaign_id = _optional(fields.UUID)
    purchase_id = _optional(fields.UUID)
    product = _optional(fields.String)
    answers = fields.Dict(
        keys=fields.String(), values=fields.Integer(validate=validate.Range(min=1, max=10)), required=True
    )
    comment = _optional(fields.String)
    completed_at = fields.DateTime(required=True)


class SurveyCompletedV1(SurveyProvenance):
    pass


class SurveyLowScoreV1(SurveyProvenance):
    low_questions = fields.List(fields.String(), required=True, validate=validate.Length(min=1))


class FollowupRequestedV1(Schema):
    request_id = fields.UUID(required=True)
    purpose = fields.String(required=True, validate=_one_of(("resurvey", "callback")))
    customer_id = fields.UUID(required=True)
    purchase_id = _optional(fields.UUID)
    survey_response_id = _optional(fields.UUID)
    ticket_id = _optional(fields.UUID)
    due_at = fields.DateTime(required=True)


_EVERYONE_WHO_KNOWS_CUSTOMERS = ("callrouting", "surveys", "gateway")

CATALOG: dict[tuple[str, int], EventType] = {
    (entry.name, entry.version): entry
    for entry in [
        EventType(
            "customer.created",
            1,
            CustomerCreatedV1,
            "tickets",
            _EVERYONE_WHO_KNOWS_CUSTOMERS,
            "A customer was added to the directory.",
        ),
        EventType(
            "customer.updated",
            1,
            CustomerUpdatedV1,
            "tickets",
            _EVERYONE_WHO_KNOWS_CUSTOMERS,
            "A customer's details or consent changed; carries the whole current record.",
        ),
        EventType(
            "customer.merged",
            1,
            CustomerMergedV1,
            "tickets",
            _EVERYONE_WHO_KNOWS_CUSTOMERS,
            "A duplicate customer was merged into another; the merged id now redirects.",
        ),
        EventType(
            "customer.erased",
            1,
            CustomerErasedV1,
            "tickets",
            _EVERYONE_WHO_KNOWS_CUSTOMERS,
            "A customer's personal data is to be erased everywhere; report counts stay as they are.",
        ),
        EventType(
            "purchase.recorded",
            1,
            PurchaseRecordedV1,
            "tickets",
            ("callrouting", "surveys"),
            "A purchase was recorded for a customer (once per source and order reference).",
        ),
        EventType("ticket.created", 1, TicketCreatedV1, "tickets", (), "A ticket was opened."),
        EventType("ticket.updated", 1, TicketUpdatedV1, "tickets", (), "Fields of a ticket other than status changed."),
        EventType("ticket.status_changed", 1, TicketStatusChangedV1, "tickets", (), "A ticket moved to a new status."),
        EventType(
            "ticket.resolved", 1, TicketResolvedV1, "tickets", ("surveys",), "A ticket reached the resolved status."
        ),
        EventType(
            "ticket.sla_breached", 1, TicketSlaBreachedV1, "tickets", (), "A ticket passed an SLA due time unmet."
        ),
        EventType(
            "callentry.completed",
            1,
            CallEntryCompletedV1,
            "callrouting",
            ("surveys",),
            "An agent recorded the outcome of a follow-up call attempt.",
        ),
        EventType("call.started", 1, CallStartedV1, "callrouting", (), "An inbound call started ringing."),
        EventType("call.answered", 1, CallAnsweredV1, "callrouting", (), "An agent answered an inbound call."),
        EventType(
            "call.completed",
            1,
            CallCompletedV1,
            "callrouting",
            ("tickets",),
            "An answered call ended and its wrap-up is done (reason, agent, linked ticket).",
        ),
        EventType("call.abandoned", 1, CallAbandonedV1, "callrouting", (), "A caller hung up before an answer."),
        EventType("agent.state_changed", 1, AgentStateChangedV1, "callrouting", (), "An agent's state changed."),
        EventType(
            "survey.completed",
            1,
            SurveyCompletedV1,
            "surveys",
            ("callrouting",),
            "A customer answered every required question of a survey.",
        ),
        EventType(
            "survey.low_score",
            1,
            SurveyLowScoreV1,
            "surveys",
            ("tickets",),
            "A completed survey met the low-score rule; the closed loop starts here.",
        ),
        EventType(
            "followup.requested",
            1,
            FollowupRequestedV1,
            "surveys",
            ("callrouting",),
            "Somebody must call the customer again (a re-survey after service recovery).",
        ),
    ]
}


def lookup(name: str, version: int) -> EventType | None:
    return CATALOG.get((name, version))


def consumed_by(service: str) -> list[str]:
    """The event types (routing keys) a service's queue is bound to."""
    return sorted({entry.name for entry in CATALOG.values() if service in entry.consumers})


def consuming_services() -> list[str]:
    return sorted({service for entry in CATALOG.values() for service in entry.consumers})
