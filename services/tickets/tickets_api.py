"""HTTP routes of the service desk: tickets, their comments and their history.

Lists answer ``{"items", "total", "limit", "offset"}`` (``shared.schemas.page``); ``GET /tickets``
also sets ``X-Total-Count``. The routes only parse, call one use case and answer: an unknown
ticket is ``shared.errors.NotFound`` from the use case, answered as problem+json.
"""

from __future__ import annotations

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, post_load, validate
from webargs.fields import DelimitedList

from shared.auth import acting_user
from shared.event_catalog import TICKET_CATEGORIES, TICKET_PRIORITIES, TICKET_STATUSES
from shared.schemas import Timestamp, page, page_args, page_schema
from shared.web import unit_of_work

from . import domain, ticket_cases

TICKET_CHANNELS = ("phone", "email", "web", "survey")
MAX_TAGS = 20  # the spec says maxItems

tickets = Blueprint("tickets", __name__, url_prefix="/tickets", description="The service desk")


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
    created_at = Timestamp()
    updated_at = Timestamp()
    first_responded_at = Timestamp(allow_none=True)
    resolved_at = Timestamp(allow_none=True)
    closed_at = Timestamp(allow_none=True)
    first_response_due_at = Timestamp(allow_none=True)
    resolution_due_at = Timestamp(allow_none=True)
    first_response_breached_at = Timestamp(allow_none=True)
    resolution_breached_at = Timestamp(allow_none=True)
    breached = fields.Boolean()


TicketPage = page_schema(TicketOut, "TicketPage")


class TicketQuery(page_args(default=50, maximum=500)):
    status = DelimitedList(fields.String(validate=validate.OneOf(TICKET_STATUSES)))
    category = DelimitedList(fields.String(validate=validate.OneOf(TICKET_CATEGORIES)))
    priority = DelimitedList(fields.String(validate=validate.OneOf(TICKET_PRIORITIES)))
    channel = DelimitedList(fields.String(validate=validate.OneOf(TICKET_CHANNELS)))
    assignee = DelimitedList(fields.String(validate=validate.Length(min=1, max=64)))
    group = DelimitedList(fields.String(validate=validate.Length(min=1, max=64)))
    customer = DelimitedList(fields.UUID())
    created_from = Timestamp()
    created_to = Timestamp()
    breached = fields.Boolean()
    unassigned = fields.Boolean(metadata={"description": "true: no assignee (a team queue); false: assigned"})
    due_before = Timestamp(
        metadata={"description": "an SLA due time still open (first response or resolution) falls before this"},
    )
    q = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "text in subject or body"})
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(sorted(ticket_cases.SORTS)))

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
    created_at = Timestamp()


class HistoryEntry(Schema):
    field = fields.String()
    old = fields.Raw(allow_none=True)
    new = fields.Raw(allow_none=True)
    actor_id = fields.String(allow_none=True)
    changed_at = Timestamp()


# A ticket's notes, replies and changes are read whole on its page: a high default.
ThreadQuery = page_args(default=200, maximum=1000, name="ThreadQuery")
CommentPage = page_schema(CommentOut, "CommentPage")
HistoryPage = page_schema(HistoryEntry, "HistoryPage")


def _ticket_json(view: dict) -> dict:
    """TicketOut's dump of a ticket view: its values are strings, numbers, booleans, None, a list
    of strings, and aware datetimes, which Timestamp writes as RFC 3339 UTC with ``Z``."""
    return {name: domain.rfc3339(value) for name, value in view.items()}


@tickets.route("")
class Tickets(MethodView):
    @tickets.arguments(TicketIn())
    @tickets.response(201, TicketOut)
    def post(self, body):
        """Open a ticket (status ``new``) with SLA due times; announces ``ticket.created``."""
        with unit_of_work() as uow:
            ticket = ticket_cases.create_ticket(uow, body, acting_user().id)
        # The busiest write answers without a marshmallow dump (a Response passes through
        # flask-smorest as it is); TicketOut still documents it, and _ticket_json writes the same.
        return jsonify(_ticket_json(ticket)), 201

    @tickets.arguments(TicketQuery(), location="query")
    @tickets.response(200, TicketPage)
    def get(self, args):
        """Tickets by status, category, priority, assignee, customer, creation range, breach, text."""
        paging = {"limit": args.pop("limit"), "offset": args.pop("offset")}
        sort = args.pop("sort")
        with unit_of_work(read_only=True) as uow:
            items, total = ticket_cases.list_tickets(uow, args, sort, paging["limit"], paging["offset"])
        # Pages of tickets are the busiest read: dumped as POST /tickets is (see _ticket_json).
        body = page([_ticket_json(item) for item in items], total, paging)
        return jsonify(body), 200, {"X-Total-Count": str(total)}


@tickets.route("/<ticket_id>")
class TicketById(MethodView):
    @tickets.response(200, TicketOut)
    def get(self, ticket_id):
        """One ticket."""
        with unit_of_work(read_only=True) as uow:
            return ticket_cases.get_ticket(uow, ticket_id)

    @tickets.arguments(TicketPatch())
    @tickets.response(200, TicketOut)
    def patch(self, body, ticket_id):
        """Change fields and/or ``status`` (new → open → pending → resolved → closed; resolved → open)."""
        with unit_of_work() as uow:
            return ticket_cases.update_ticket(uow, ticket_id, body, acting_user().id)


@tickets.route("/<ticket_id>/comments")
class Comments(MethodView):
    @tickets.arguments(CommentIn())
    @tickets.response(201, CommentOut)
    def post(self, body, ticket_id):
        """An internal note, or a public reply (an agent's first one is the ticket's first response)."""
        with unit_of_work() as uow:
            return ticket_cases.add_comment(
                uow, ticket_id, body["body"], body["public"], acting_user().id, body["from_customer"]
            )

    @tickets.arguments(ThreadQuery(), location="query")
    @tickets.response(200, CommentPage)
    def get(self, args, ticket_id):
        """Notes and replies, oldest first."""
        with unit_of_work(read_only=True) as uow:
            items, total = ticket_cases.list_comments(uow, ticket_id, args["limit"], args["offset"])
        return page(items, total, args)


@tickets.route("/<ticket_id>/history")
class History(MethodView):
    @tickets.arguments(ThreadQuery(), location="query")
    @tickets.response(200, HistoryPage)
    def get(self, args, ticket_id):
        """Every change of the ticket, oldest first: who, when, which field, old → new."""
        with unit_of_work(read_only=True) as uow:
            items, total = ticket_cases.ticket_history(uow, ticket_id, args["limit"], args["offset"])
        return page(items, total, args)
