"""HTTP routes of the customer directory: customers, their purchases and their overview.

A merged customer answers ``GET /customers/{id}`` with ``308 Permanent Redirect`` to the
survivor (``Location``), its body naming ``merged_into``. Lists answer
``{"items", "total", "limit", "offset"}`` (``shared.schemas.page``); ``GET /customers`` also sets
``X-Total-Count``. The routes only parse, call one use case and answer: unknown customers are
``shared.errors.NotFound`` from the use case, answered as problem+json.
"""

from __future__ import annotations

from decimal import Decimal

from flask import current_app, jsonify, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from shared.event_catalog import SEGMENTS
from shared.phones import NotAPhoneNumber, to_e164
from shared.schemas import Timestamp, page, page_args, page_schema
from shared.web import unit_of_work

from . import customers as customer_cases
from . import domain, purchases, views

customers = Blueprint("customers", __name__, url_prefix="/customers", description="The customer directory")


def _thresholds() -> customer_cases.SegmentThresholds:
    return customer_cases.SegmentThresholds.from_settings(current_app.extensions["settings"])


# List fields are capped (the spec says maxItems): a customer with 10,000 numbers would be
# fanned out in every customer event to every consumer.
MAX_PHONES = 10


def valid_time_zone(name: str) -> None:
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
        validate=lambda zone: valid_time_zone(zone),
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
    created_at = Timestamp()
    updated_at = Timestamp(allow_none=True)


CustomerPage = page_schema(CustomerOut, "CustomerPage")


class CustomerQuery(page_args(default=50, maximum=500)):
    q = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "part of name or e-mail"})
    phone = fields.String(metadata={"description": "any of the customer's numbers, in any format"})
    email = fields.String(validate=validate.Length(min=1, max=254))
    region = fields.String(load_default=None, validate=validate.Regexp(r"^[A-Za-z]{2}$"))

    @validates_schema
    def _phone_is_a_number(self, data, **_):
        if data.get("phone") is not None:
            try:
                to_e164(data["phone"], data.get("region"))
            except NotAPhoneNumber:
                raise ValidationError({"phone": [_phone_error(data["phone"])]}) from None

    @post_load
    def _normalise(self, data, **_):
        region = data.pop("region", None)
        if data.get("phone") is not None:
            data["phone"] = to_e164(data["phone"], region)
        return data


class MergeIn(Schema):
    into = fields.UUID(required=True, metadata={"description": "the surviving customer"})


class DuplicateGroup(Schema):
    by = fields.String(metadata={"description": "phone, email, or name (a mail sender made into a customer)"})
    value = fields.String()
    customer_ids = fields.List(fields.String())


DuplicatePage = page_schema(DuplicateGroup, "DuplicatePage")
DuplicateQuery = page_args(default=100, maximum=1000, name="DuplicateQuery")


@customers.route("")
class Customers(MethodView):
    @customers.arguments(CustomerIn())
    @customers.response(201, CustomerOut)
    def post(self, body):
        """Add a customer; announces ``customer.created``."""
        with unit_of_work() as uow:
            return customer_cases.create_customer(uow, **body)

    @customers.arguments(CustomerQuery(), location="query")
    @customers.response(200, CustomerPage)
    def get(self, args):
        """Find customers by number (any format), by e-mail, or by part of the name or e-mail (by name)."""
        with unit_of_work(read_only=True) as uow:
            items, total = customer_cases.find_customers(
                uow,
                phone=args.get("phone"),
                email=args.get("email"),
                q=args.get("q"),
                limit=args["limit"],
                offset=args["offset"],
            )
        return page(items, total, args), 200, {"X-Total-Count": str(total)}


@customers.route("/duplicates")
class Duplicates(MethodView):
    @customers.arguments(DuplicateQuery(), location="query")
    @customers.response(200, DuplicatePage)
    def get(self, args):
        """Groups of customers sharing a number or an e-mail address (merge candidates): by number,
        then by e-mail, then mail senders sharing a name."""
        with unit_of_work(read_only=True) as uow:
            items, total = customer_cases.find_duplicates(uow, args["limit"], args["offset"])
        return page(items, total, args)


@customers.route("/<customer_id>")
class CustomerById(MethodView):
    @customers.response(200, CustomerOut)
    @customers.alt_response(308, description="Merged: the Location is the surviving customer")
    def get(self, customer_id):
        """One customer; a merged one redirects (308) to the customer it was merged into."""
        with unit_of_work(read_only=True) as uow:
            try:
                return customer_cases.get_customer(uow, customer_id)
            except customer_cases.Redirect as merged:
                response = jsonify(id=customer_id, merged_into=merged.into_id)
                response.status_code = 308
                response.headers["Location"] = url_for("customers.CustomerById", customer_id=merged.into_id)
                return response

    @customers.arguments(CustomerPatch(partial=True))
    @customers.response(200, CustomerOut)
    def patch(self, body, customer_id):
        """Change details or consent; announces ``customer.updated`` with what changed."""
        with unit_of_work() as uow:
            return customer_cases.update_customer(uow, customer_id, body)


@customers.route("/<customer_id>/merge")
class Merge(MethodView):
    @customers.arguments(MergeIn())
    @customers.response(200, CustomerOut)
    def post(self, body, customer_id):
        """Merge this customer into ``into``: tickets, purchases and numbers move; this one redirects."""
        with unit_of_work() as uow:
            return customer_cases.merge_customers(uow, customer_id, str(body["into"]), _thresholds())


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
    purchased_at = Timestamp(required=True)
    source = fields.String(required=True, validate=validate.Length(min=1, max=64))
    order_ref = fields.String(required=True, validate=validate.Length(min=1, max=128))


class PurchaseOut(PurchaseIn):
    id = fields.String()
    customer_id = fields.String()
    recorded_at = Timestamp()


PurchasePage = page_schema(PurchaseOut, "PurchasePage")
PurchaseQuery = page_args(default=100, maximum=1000, name="PurchaseQuery")


@customers.route("/<customer_id>/purchases")
class Purchases(MethodView):
    @customers.arguments(PurchaseIn())
    @customers.response(201, PurchaseOut)
    @customers.alt_response(200, schema=PurchaseOut, description="This order was already recorded: the same purchase")
    def post(self, body, customer_id):
        """Record a purchase, once per (source, order_ref); announces ``purchase.recorded``."""
        with unit_of_work() as uow:
            purchase, created = purchases.record_purchase(uow, customer_id, body, _thresholds())
        return purchase, 201 if created else 200

    @customers.arguments(PurchaseQuery(), location="query")
    @customers.response(200, PurchasePage)
    def get(self, args, customer_id):
        """The customer's purchases, newest first (a merged customer's are the survivor's)."""
        with unit_of_work(read_only=True) as uow:
            items, total = purchases.list_purchases(uow, customer_id, args["limit"], args["offset"])
        return page(items, total, args)


class OverviewQuery(Schema):
    limit = fields.Integer(
        load_default=views.OVERVIEW_LIMIT,
        validate=validate.Range(min=1, max=50),
        metadata={"description": "items per list (each list also gives its total)"},
    )


class SlaStateOut(Schema):
    state = fields.String(metadata={"description": "breached, met, paused (pending), running, or none (no policy)"})
    breached = fields.Boolean(metadata={"description": "a due time passed unmet (even before the breach job ran)"})
    first_response_due_at = Timestamp(allow_none=True)
    first_response_breached = fields.Boolean()
    resolution_due_at = Timestamp(allow_none=True)
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
    created_at = Timestamp()
    updated_at = Timestamp()
    first_responded_at = Timestamp(allow_none=True)
    resolved_at = Timestamp(allow_none=True)
    sla = fields.Nested(SlaStateOut)


class OverviewPurchaseOut(Schema):
    id = fields.String()
    sku = fields.String()
    product = fields.String()
    amount = fields.String()
    currency = fields.String()
    purchased_at = Timestamp()
    source = fields.String()
    order_ref = fields.String()


_BOUND = {"description": "the most items each list of this part holds (the overview's ?limit=)"}


class OverviewPurchases(Schema):
    items = fields.List(fields.Nested(OverviewPurchaseOut))
    total = fields.Integer()
    limit = fields.Integer(metadata=_BOUND)


class OverviewTickets(Schema):
    open = fields.List(fields.Nested(OverviewTicketOut), metadata={"description": "new, open or pending; newest first"})
    open_total = fields.Integer()
    recent = fields.List(fields.Nested(OverviewTicketOut), metadata={"description": "any status; newest first"})
    total = fields.Integer()
    limit = fields.Integer(metadata=_BOUND)


class OverviewRecovery(Schema):
    open = fields.List(fields.Nested(OverviewTicketOut))
    total = fields.Integer()
    limit = fields.Integer(metadata=_BOUND)


class OverviewCustomerOut(CustomerOut):
    class Meta:
        exclude = ("merged_into",)


class CustomerOverviewOut(Schema):
    customer = fields.Nested(OverviewCustomerOut)
    merged_from = fields.String(allow_none=True, metadata={"description": "the merged-away id asked for"})
    purchases = fields.Nested(OverviewPurchases)
    tickets = fields.Nested(OverviewTickets)
    service_recovery = fields.Nested(OverviewRecovery, metadata={"description": "open service_recovery tickets"})
    as_of = Timestamp(metadata={"description": "the moment the SLA states were judged at"})


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
            overview = views.customer_overview(uow, customer_id, args["limit"])
        # Already JSON values (the view asks for it on every screen-pop): no marshmallow dump.
        return jsonify(overview)
