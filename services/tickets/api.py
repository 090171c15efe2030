"""HTTP routes of the tickets service, and the schemas that are also its OpenAPI spec.

A merged customer answers ``GET /customers/{id}`` with ``308 Permanent Redirect`` to the
survivor (``Location``), its body naming ``merged_into``. Lists answer
``{"items", "total", "page", "per_page"}`` and set ``X-Total-Count``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import current_app, jsonify, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema
from webargs.fields import DelimitedList

from shared.auth import acting_user
from shared.errors import Invalid
from shared.event_catalog import SEGMENTS, TICKET_CATEGORIES, TICKET_PRIORITIES, TICKET_STATUSES
from shared.phones import NotAPhoneNumber, to_e164
from shared.privacy import retention_settings
from shared.web import unit_of_work

from . import domain, service

TICKET_CHANNELS = ("phone", "email", "web", "survey")

customers = Blueprint("customers", __name__, url_prefix="/customers", description="The customer directory")
tickets = Blueprint("tickets", __name__, url_prefix="/tickets", description="The service desk")
sla = Blueprint("sla", __name__, url_prefix="", description="SLA policies and business hours")
reports = Blueprint("reports", __name__, url_prefix="/reports", description="Reports")


def _thresholds() -> service.SegmentThresholds:
    return service.SegmentThresholds.from_settings(current_app.extensions["settings"])


def _paged(items: list, total: int, page: int, per_page: int):
    return {"items": items, "total": total, "page": page, "per_page": per_page}, 200, {"X-Total-Count": str(total)}


# List fields are capped (the spec says maxItems): a customer with 10,000 numbers would be
# fanned out in every customer event to every consumer.
MAX_PHONES = 10
MAX_TAGS = 20


class PageArgs(Schema):
    page = fields.Integer(
        load_default=1, validate=validate.Range(min=1, max=1_000_000)
    )  # past any list; PostgreSQL refuses a huge OFFSET
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=200))


# --- customers ------------------------------------------------------------------------------


def _time_zone(name: str) -> None:
    if not domain.valid_time_zone(name):
        raise ValidationError(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin).")


def _phone_error(raw) -> str:
    return f"{raw!r} is not a phone number (it cannot be read as E.164)."


class CustomerIn(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phone = fields.String(load_default=None, allow_none=True, metadata={"description": "primary number, any format"})
    phones = fields.List(
        fields.String(validate=validate.Length(min=1, max=32)),
        validate=validate.Length(max=MAX_PHONES),
        metadata={"description": f"every number, any format; primary first (at most {MAX_PHONES})"},
    )
    region = fields.String(
        load_default=None,
        validate=validate.Regexp(r"^[A-Za-z]{2}$", error="An ISO 3166 country code (2 letters)."),
        metadata={"description": "how to read numbers without a country code (default DEFAULT_PHONE_REGION)"},
    )
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254))
    time_zone = fields.String(
        allow_none=True,
        validate=lambda zone: _time_zone(zone),
        metadata={"description": "IANA name; from the primary number when not given"},
    )
    do_not_call = fields.Boolean()
    marketing_consent = fields.Boolean()
    language = fields.String(
        allow_none=True,
        validate=validate.Regexp(
            r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$", error="A BCP 47 language tag, e.g. zh-Hant."
        ),
        metadata={"description": "BCP 47 (zh-Hant, tl, de): surveys ask in it; from the primary number when not given"},
    )

    @validates_schema(skip_on_field_errors=False)
    def _numbers_are_numbers(self, data, **_):
        region = data.get("region")
        errors: dict = {}
        if data.get("phone"):
            try:
                to_e164(data["phone"], region)
            except NotAPhoneNumber:
                errors["phone"] = [_phone_error(data["phone"])]
        for index, raw in enumerate(data.get("phones") or []):
            try:
                to_e164(raw, region)
            except NotAPhoneNumber:
                errors.setdefault("phones", {})[index] = [_phone_error(raw)]
        if errors:
            raise ValidationError(errors)

    @post_load
    def _normalise(self, data, **_):
        region = data.pop("region", None)
        if data.get("phone"):
            data["phone"] = to_e164(data["phone"], region)
        if "phones" in data:
            data["phones"] = domain.normalise_phones(data["phones"], region)
        return data


class CustomerPatch(CustomerIn):
    pass


class CustomerOut(Schema):
    id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    phones = fields.List(fields.String())
    email = fields.String(allow_none=True)
    time_zone = fields.String(allow_none=True)
    do_not_call = fields.Boolean()
    marketing_consent = fields.Boolean()
    segment = fields.String(allow_none=True, validate=validate.OneOf(SEGMENTS))
    language = fields.String(allow_none=True)
    merged_into = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime(allow_none=True)


class CustomerPage(Schema):
    items = fields.List(fields.Nested(CustomerOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class CustomerQuery(PageArgs):
    q = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "part of name or e-mail"})
    phone = fields.String(metadata={"description": "any of the customer's numbers, in any format"})
    email = fields.String(validate=validate.Length(min=1, max=254))
    region = fields.String(load_default=None, validate=validate.Regexp(r"^[A-Za-z]{2}$"))


class MergeIn(Schema):
    into = fields.UUID(required=True, metadata={"description": "the surviving customer"})


class DuplicateGroup(Schema):
    by = fields.String(metadata={"description": "phone, email, or name (a mail sender made into a customer)"})
    value = fields.String()
    customer_ids = fields.List(fields.String())


@customers.route("")
class Customers(MethodView):
    @customers.arguments(CustomerIn())
    @customers.response(201, CustomerOut)
    def post(self, body):
        """Add a customer; announces ``customer.created``."""
        with unit_of_work() as uow:
            return service.create_customer(uow, **body)

    @customers.arguments(CustomerQuery(), location="query")
    @customers.response(200, CustomerPage)
    def get(self, args):
        """Find customers by number (any format), by e-mail, or by part of the name or e-mail."""
        phone = None
        if args.get("phone") is not None:
            try:
                phone = to_e164(args["phone"], args.get("region"))
            except NotAPhoneNumber:
                raise Invalid({"phone": _phone_error(args["phone"])}, location="query") from None
        with unit_of_work(read_only=True) as uow:
            items, total = service.find_customers(
                uow,
                phone=phone,
                email=args.get("email"),
                q=args.get("q"),
                page=args["page"],
                per_page=args["per_page"],
            )
        return _paged(items, total, args["page"], args["per_page"])


@customers.route("/duplicates")
class Duplicates(MethodView):
    @customers.response(200, DuplicateGroup(many=True))
    def get(self):
        """Groups of customers sharing a number or an e-mail address (merge candidates)."""
        with unit_of_work(read_only=True) as uow:
            return service.find_duplicates(uow)


def _not_found(customer_id: str):
    abort(404, message=f"No customer {customer_id}.")


@customers.route("/<customer_id>")
class CustomerById(MethodView):
    @customers.response(200, CustomerOut)
    @customers.alt_response(308, description="Merged: the Location is the surviving customer")
    def get(self, customer_id):
        """One customer; a merged one redirects (308) to the customer it was merged into."""
        with unit_of_work(read_only=True) as uow:
            try:
                customer = service.get_customer(uow, customer_id)
            except service.Redirect as merged:
                response = jsonify(id=customer_id, merged_into=merged.into_id)
                response.status_code = 308
                response.headers["Location"] = url_for("customers.CustomerById", customer_id=merged.into_id)
                return response
        if customer is None:
            _not_found(customer_id)
        return customer

    @customers.arguments(CustomerPatch(partial=True))
    @customers.response(200, CustomerOut)
    def patch(self, body, customer_id):
        """Change details or consent; announces ``customer.updated`` with what changed."""
        with unit_of_work() as uow:
            try:
                return service.update_customer(uow, customer_id, body)
            except service.NotFound:
                _not_found(customer_id)


@customers.route("/<customer_id>/merge")
class Merge(MethodView):
    @customers.arguments(MergeIn())
    @customers.response(200, CustomerOut)
    def post(self, body, customer_id):
        """Merge this customer into ``into``: tickets, purchases and numbers move; this one redirects."""
        with unit_of_work() as uow:
            try:
                return service.merge_customers(uow, customer_id, str(body["into"]), _thresholds())
            except service.NotFound:
                _not_found(customer_id)


MAX_AMOUNT = Decimal("999999999999.99")


def _amount_in_range(amount: Decimal) -> None:
    # A function rather than validate.Range, whose Decimal bounds apispec would write into the
    # spec as the strings "0.00" and "999999999999.00", which no JSON Schema validator accepts.
    if not Decimal(0) <= amount <= MAX_AMOUNT:
        raise ValidationError(f"Must be between 0 and {MAX_AMOUNT}.")


class PurchaseIn(Schema):
    sku = fields.String(required=True, validate=validate.Length(min=1, max=64))
    product = fields.String(required=True, validate=validate.Length(min=1, max=200))
    # A decimal string in and out (a JSON number is accepted too): the spec says string, with the
    # range as a pattern, since a JSON Schema maximum must be a number and the value is not one.
    amount = fields.Decimal(
        required=True,
        places=2,
        as_string=True,
        validate=lambda amount: _amount_in_range(amount),
        metadata={
            "type": "string",
            "pattern": r"^[0-9]{1,12}(\.[0-9]{1,2})?$",
            "example": "49.90",
            "description": "0 to 999999999999.99, as a decimal string",
        },
    )
    currency = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Z]{3}$", error="An ISO 4217 code: 3 capital letters.")
    )
    purchased_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    source = fields.String(required=True, validate=validate.Length(min=1, max=64))
    order_ref = fields.String(required=True, validate=validate.Length(min=1, max=128))


class PurchaseOut(PurchaseIn):
    id = fields.String()
    customer_id = fields.String()
    recorded_at = fields.DateTime()


@customers.route("/<customer_id>/purchases")
class Purchases(MethodView):
    @customers.arguments(PurchaseIn())
    @customers.response(201, PurchaseOut)
    @customers.alt_response(200, schema=PurchaseOut, description="This order was already recorded: the same purchase")
    def post(self, body, customer_id):
        """Record a purchase, once per (source, order_ref); announces ``purchase.recorded``."""
        with unit_of_work() as uow:
            try:
                purchase, created = service.record_purchase(uow, customer_id, body, _thresholds())
            except service.NotFound:
                _not_found(customer_id)
        return purchase, 201 if created else 200

    @customers.response(200, PurchaseOut(many=True))
    def get(self, customer_id):
        """The customer's purchases, newest first (a merged customer's are the survivor's)."""
        with unit_of_work(read_only=True) as uow:
            try:
                return service.list_purchases(uow, customer_id)
            except service.NotFound:
                _not_found(customer_id)


class OverviewQuery(Schema):
    limit = fields.Integer(
        load_default=service.OVERVIEW_LIMIT,
        validate=validate.Range(min=1, max=50),
        metadata={"description": "items per list (each list also gives its total)"},
    )


class SlaStateOut(Schema):
    state = fields.String(metadata={"description": "breached, met, paused (pending), running, or none (no policy)"})
    breached = fields.Boolean(metadata={"description": "a due time passed unmet (even before the breach job ran)"})
    first_response_due_at = fields.DateTime(allow_none=True)
    first_response_breached = fields.Boolean()
    resolution_due_at = fields.DateTime(allow_none=True)
    resolution_breached = fields.Boolean()


class OverviewTicketOut(Schema):
    id = fields.String()
    number = fields.Integer()
    subject = fields.String()
    category = fields.String()
    priority = fields.String()
    channel = fields.String()
    status = fields.String()
    assignee_id = fields.String(allow_none=True)
    call_id = fields.String(allow_none=True)
    survey_response_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    first_responded_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    sla = fields.Nested(SlaStateOut)


class OverviewPurchaseOut(Schema):
    id = fields.String()
    sku = fields.String()
    product = fields.String()
    amount = fields.String()
    currency = fields.String()
    purchased_at = fields.DateTime()
    source = fields.String()
    order_ref = fields.String()


class OverviewPurchases(Schema):
    items = fields.List(fields.Nested(OverviewPurchaseOut))
    total = fields.Integer()


class OverviewTickets(Schema):
    open = fields.List(fields.Nested(OverviewTicketOut), metadata={"description": "new, open or pending; newest first"})
    open_total = fields.Integer()
    recent = fields.List(fields.Nested(OverviewTicketOut), metadata={"description": "any status; newest first"})
    total = fields.Integer()


class OverviewRecovery(Schema):
    open = fields.List(fields.Nested(OverviewTicketOut))
    total = fields.Integer()


class OverviewCustomerOut(CustomerOut):
    class Meta:
        exclude = ("merged_into",)


class CustomerOverviewOut(Schema):
    customer = fields.Nested(OverviewCustomerOut)
    merged_from = fields.String(allow_none=True, metadata={"description": "the merged-away id asked for"})
    purchases = fields.Nested(OverviewPurchases)
    tickets = fields.Nested(OverviewTickets)
    service_recovery = fields.Nested(OverviewRecovery, metadata={"description": "open service_recovery tickets"})
    as_of = fields.DateTime(metadata={"description": "the moment the SLA states were judged at"})


@customers.route("/<customer_id>/overview")
class Overview(MethodView):
    @customers.arguments(OverviewQuery(), location="query")
    @customers.response(200, CustomerOverviewOut)
    def get(self, args, customer_id):
        """The customer, latest purchases, open and recent tickets with their SLA state, open
        service-recovery cases: the service desk's part of the gateway's customer view.

        Each list holds at most ``limit`` items, newest first, beside its total. A merged
        customer's overview is the survivor's (no redirect: one request is the point).
        """
        with unit_of_work(read_only=True) as uow:
            try:
                overview = service.customer_overview(uow, customer_id, args["limit"])
            except service.NotFound:
                _not_found(customer_id)
        # Already JSON values (the view asks for it on every screen-pop): no marshmallow dump.
        return jsonify(overview)


# --- tickets --------------------------------------------------------------------------------


class TicketIn(Schema):
    subject = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=20_000))
    category = fields.String(required=True, validate=validate.OneOf(TICKET_CATEGORIES))
    priority = fields.String(load_default="normal", validate=validate.OneOf(TICKET_PRIORITIES))
    channel = fields.String(load_default="web", validate=validate.OneOf(TICKET_CHANNELS))
    customer_id = fields.UUID(load_default=None, allow_none=True)
    assignee_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    group = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=40)),
        load_default=list,
        validate=validate.Length(max=MAX_TAGS),
    )
    call_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    survey_response_id = fields.UUID(load_default=None, allow_none=True)

    @post_load
    def _ids_as_text(self, data, **_):
        for name in ("customer_id", "survey_response_id"):
            if data.get(name) is not None:
                data[name] = str(data[name])
        return data


class TicketPatch(Schema):
    subject = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=20_000))
    category = fields.String(validate=validate.OneOf(TICKET_CATEGORIES))
    priority = fields.String(validate=validate.OneOf(TICKET_PRIORITIES))
    channel = fields.String(validate=validate.OneOf(TICKET_CHANNELS))
    status = fields.String(validate=validate.OneOf(TICKET_STATUSES))
    customer_id = fields.UUID(allow_none=True)
    assignee_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    group = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=40)), validate=validate.Length(max=MAX_TAGS))
    call_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))

    @post_load
    def _ids_as_text(self, data, **_):
        if data.get("customer_id") is not None:
            data["customer_id"] = str(data["customer_id"])
        return data


class TicketOut(Schema):
    id = fields.String()
    number = fields.Integer()
    customer_id = fields.String(allow_none=True)
    subject = fields.String()
    description = fields.String()
    category = fields.String()
    priority = fields.String()
    channel = fields.String()
    status = fields.String()
    assignee_id = fields.String(allow_none=True)
    group = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    call_id = fields.String(allow_none=True)
    survey_response_id = fields.String(allow_none=True)
    created_by = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    first_responded_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    first_response_due_at = fields.DateTime(allow_none=True)
    resolution_due_at = fields.DateTime(allow_none=True)
    first_response_breached_at = fields.DateTime(allow_none=True)
    resolution_breached_at = fields.DateTime(allow_none=True)
    breached = fields.Boolean()


class TicketPage(Schema):
    items = fields.List(fields.Nested(TicketOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class TicketQuery(PageArgs):
    status = DelimitedList(fields.String(validate=validate.OneOf(TICKET_STATUSES)))
    category = DelimitedList(fields.String(validate=validate.OneOf(TICKET_CATEGORIES)))
    priority = DelimitedList(fields.String(validate=validate.OneOf(TICKET_PRIORITIES)))
    channel = DelimitedList(fields.String(validate=validate.OneOf(TICKET_CHANNELS)))
    assignee = DelimitedList(fields.String(validate=validate.Length(min=1, max=64)))
    group = DelimitedList(fields.String(validate=validate.Length(min=1, max=64)))
    customer = DelimitedList(fields.UUID())
    created_from = fields.AwareDateTime(default_timezone=UTC)
    created_to = fields.AwareDateTime(default_timezone=UTC)
    breached = fields.Boolean()
    unassigned = fields.Boolean(metadata={"description": "true: no assignee (a team queue); false: assigned"})
    due_before = fields.AwareDateTime(
        default_timezone=UTC,
        metadata={"description": "an SLA due time still open (first response or resolution) falls before this"},
    )
    q = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "text in subject or body"})
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(sorted(service.SORTS)))

    @post_load
    def _ids_as_text(self, data, **_):
        if data.get("customer"):
            data["customer"] = [str(customer_id) for customer_id in data["customer"]]
        return data


class CommentIn(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=20_000))
    public = fields.Boolean(load_default=False, metadata={"description": "a reply the customer sees; else a note"})
    from_customer = fields.Boolean(
        load_default=False,
        load_only=True,
        metadata={"description": "the customer's own words (relayed by an agent or a channel): not a first response"},
    )


class CommentMailOut(Schema):
    to = fields.String(metadata={"description": "the customer's address the reply is mailed to"})
    status = fields.String()
    message_id = fields.String()
    sending = fields.Boolean(metadata={"description": "false: no SMTP server is configured, the mail waits queued"})


class CommentOut(CommentIn):
    mail = fields.Nested(CommentMailOut, allow_none=True, dump_only=True)
    id = fields.String()
    ticket_id = fields.String()
    author_id = fields.String(allow_none=True)
    mailed_from = fields.String(
        allow_none=True,
        dump_only=True,
        metadata={"description": "the sender's address, for a comment that came in by mail"},
    )
    created_at = fields.DateTime()


class HistoryEntry(Schema):
    field = fields.String()
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)
    actor_id = fields.String(allow_none=True)
    changed_at = fields.DateTime()


def _ticket_json(view: dict) -> dict:
    """TicketOut's dump of a ticket view: its values are strings, numbers, booleans, None, a list
    of strings, and aware datetimes, which fields.DateTime writes as ISO 8601 (``isoformat()``)."""
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in view.items()}


def _no_ticket(ticket_id: str):
    abort(404, message=f"No ticket {ticket_id}.")


@tickets.route("")
class Tickets(MethodView):
    @tickets.arguments(TicketIn())
    @tickets.response(201, TicketOut)
    def post(self, body):
        """Open a ticket (status ``new``) with SLA due times; announces ``ticket.created``."""
        with unit_of_work() as uow:
            ticket = service.create_ticket(uow, body, acting_user().id)
        # The busiest write answers without a marshmallow dump (a Response passes through
        # flask-smorest as it is); TicketOut still documents it, and _ticket_json writes the same.
        return jsonify(_ticket_json(ticket)), 201

    @tickets.arguments(TicketQuery(), location="query")
    @tickets.response(200, TicketPage)
    def get(self, args):
        """Tickets by status, category, priority, assignee, customer, creation range, breach, text."""
        page, per_page, sort = args.pop("page"), args.pop("per_page"), args.pop("sort")
        with unit_of_work(read_only=True) as uow:
            items, total = service.list_tickets(uow, args, sort, page, per_page)
        # Pages of tickets are the busiest read: dumped as POST /tickets is (see _ticket_json).
        body, status, headers = _paged([_ticket_json(item) for item in items], total, page, per_page)
        return jsonify(body), status, headers


@tickets.route("/<ticket_id>")
class TicketById(MethodView):
    @tickets.response(200, TicketOut)
    def get(self, ticket_id):
        """One ticket."""
        with unit_of_work(read_only=True) as uow:
            try:
                return service.get_ticket(uow, ticket_id)
            except service.NotFound:
                _no_ticket(ticket_id)

    @tickets.arguments(TicketPatch())
    @tickets.response(200, TicketOut)
    def patch(self, body, ticket_id):
        """Change fields and/or ``status`` (new → open → pending → resolved → closed; resolved → open)."""
        with unit_of_work() as uow:
            try:
                return service.update_ticket(uow, ticket_id, body, acting_user().id)
            except service.NotFound:
                _no_ticket(ticket_id)


@tickets.route("/<ticket_id>/comments")
class Comments(MethodView):
    @tickets.arguments(CommentIn())
    @tickets.response(201, CommentOut)
    def post(self, body, ticket_id):
        """An internal note, or a public reply (an agent's first one is the ticket's first response)."""
        with unit_of_work() as uow:
            try:
                return service.add_comment(
                    uow, ticket_id, body["body"], body["public"], acting_user().id, body["from_customer"]
                )
            except service.NotFound:
                _no_ticket(ticket_id)

    @tickets.response(200, CommentOut(many=True))
    def get(self, ticket_id):
        """Notes and replies, oldest first."""
        with unit_of_work(read_only=True) as uow:
            try:
                return service.list_comments(uow, ticket_id)
            except service.NotFound:
                _no_ticket(ticket_id)


@tickets.route("/<ticket_id>/history")
class History(MethodView):
    @tickets.response(200, HistoryEntry(many=True))
    def get(self, ticket_id):
        """Every change of the ticket: who, when, which field, old → new."""
        with unit_of_work(read_only=True) as uow:
            try:
                return service.ticket_history(uow, ticket_id)
            except service.NotFound:
                _no_ticket(ticket_id)


# --- SLA configuration ----------------------------------------------------------------------


class SlaPolicyIn(Schema):
    first_response_minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=525_600))
    resolution_minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=525_600))
    business_hours = fields.Boolean(load_default=True, metadata={"description": "count on the business calendar"})


class SlaPolicyOut(SlaPolicyIn):
    priority = fields.String()


_CLOCK = r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$"


class CalendarIn(Schema):
    time_zone = fields.String(required=True, validate=lambda zone: _time_zone(zone))
    hours = fields.Dict(
        keys=fields.String(validate=validate.OneOf(domain.WEEKDAYS)),
        values=fields.List(
            fields.List(fields.String(validate=validate.Regexp(_CLOCK)), validate=validate.Length(equal=2)),
            validate=validate.Length(max=8),
        ),
        required=True,
        metadata={"description": 'opening hours per weekday, e.g. {"mon": [["09:00", "17:00"]]}'},
    )
    holidays = fields.List(fields.Date(), load_default=list, validate=validate.Length(max=1000))

    @post_load
    def _dates_as_text(self, data, **_):
        data["holidays"] = [day.isoformat() for day in data["holidays"]]
        return data


class CalendarOut(Schema):
    time_zone = fields.String()
    hours = fields.Dict(keys=fields.String(), values=fields.List(fields.List(fields.String())))
    holidays = fields.List(fields.String())


@sla.route("/sla-policies")
class SlaPolicies(MethodView):
    @sla.response(200, SlaPolicyOut(many=True))
    def get(self):
        """The SLA policy of every priority (minutes to first response and to resolution)."""
        with unit_of_work(read_only=True) as uow:
            return sorted(
                (vars(policy) for policy in service.sla_policies(uow).values()),
                key=lambda policy: TICKET_PRIORITIES.index(policy["priority"]),
            )


@sla.route("/sla-policies/<priority>")
class SlaPolicyByPriority(MethodView):
    @sla.arguments(SlaPolicyIn())
    @sla.response(200, SlaPolicyOut)
    def put(self, body, priority):
        """Set a priority's policy; tickets opened from now on get its due times."""
        if priority not in TICKET_PRIORITIES:
            abort(404, message=f"No priority {priority}; one of {', '.join(TICKET_PRIORITIES)}.")
        with unit_of_work() as uow:
            return vars(service.set_sla_policy(uow, priority, body))


@sla.route("/business-calendar")
class Calendar(MethodView):
    @sla.response(200, CalendarOut)
    def get(self):
        """The business hours SLA clocks run on (404 when none is set: clocks run around the clock)."""
        with unit_of_work(read_only=True) as uow:
            calendar = service.calendar_view(uow)
        if calendar is None:
            abort(404, message="No business calendar is set.")
        return calendar

    @sla.arguments(CalendarIn())
    @sla.response(200, CalendarOut)
    def put(self, body):
        """Set the business hours and holidays."""
        with unit_of_work() as uow:
            return service.set_business_calendar(uow, body)

    @sla.response(204)
    def delete(self):
        """Remove the calendar: SLA clocks run around the clock."""
        with unit_of_work() as uow:
            service.set_business_calendar(uow, None)


# --- reports --------------------------------------------------------------------------------


class HygieneQuery(Schema):
    inactive_months = fields.Integer(load_default=12, validate=validate.Range(min=1, max=240))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=0, max=1000))


class DailyQuery(Schema):
    date = fields.Date(required=True)
    tz = fields.String(load_default="UTC", validate=lambda zone: _time_zone(zone))


@reports.route("/hygiene")
class Hygiene(MethodView):
    @reports.arguments(HygieneQuery(), location="query")
    @reports.response(200)
    def get(self, args):
        """Customers with no purchase or ticket for N months; records missing a number, e-mail or time zone."""
        with unit_of_work(read_only=True) as uow:
            report = service.hygiene_report(uow, args["inactive_months"], args["limit"])
        report["inactive_since"] = report["inactive_since"].isoformat()
        # what the retention job does with such records (shared.privacy, docs/privacy.md)
        report["retention"] = retention_settings(current_app.extensions["settings"])
        return report


@reports.route("/daily")
class Daily(MethodView):
    @reports.arguments(DailyQuery(), location="query")
    @reports.response(200)
    def get(self, args):
        """Tickets of a day: opened by category, resolved, backlog, response times, SLA, per agent."""
        zone = ZoneInfo(args["tz"])
        start = datetime.combine(args["date"], time(0), tzinfo=zone).astimezone(UTC)
        end = datetime.combine(args["date"] + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
        with unit_of_work(read_only=True) as uow:
            report = service.daily_report(uow, start, end)
        return {"date": args["date"].isoformat(), "time_zone": args["tz"], **report}
