"""HTTP routes of the SLA configuration: each priority's policy and the business calendar."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, post_load, validate

from shared.event_catalog import TICKET_PRIORITIES
from shared.schemas import page, page_args, page_schema
from shared.web import unit_of_work

from . import domain
from . import sla as sla_cases
from .customers_api import valid_time_zone

sla = Blueprint("sla", __name__, url_prefix="", description="SLA policies and business hours")


class SlaPolicyIn(Schema):
    first_response_minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=525_600))
    resolution_minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=525_600))
    business_hours = fields.Boolean(load_default=True, metadata={"description": "count on the business calendar"})


class SlaPolicyOut(SlaPolicyIn):
    priority = fields.String()


_CLOCK = r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$"


class CalendarIn(Schema):
    time_zone = fields.String(required=True, validate=lambda zone: valid_time_zone(zone))
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


SlaPolicyPage = page_schema(SlaPolicyOut, "SlaPolicyPage")
SlaPolicyQuery = page_args(default=50, maximum=500, name="SlaPolicyQuery")


class CalendarOut(Schema):
    time_zone = fields.String()
    hours = fields.Dict(keys=fields.String(), values=fields.List(fields.List(fields.String())))
    holidays = fields.List(fields.String())


@sla.route("/sla-policies")
class SlaPolicies(MethodView):
    @sla.arguments(SlaPolicyQuery(), location="query")
    @sla.response(200, SlaPolicyPage)
    def get(self, args):
        """The SLA policy of every priority (minutes to first response and to resolution), low to urgent."""
        with unit_of_work(read_only=True) as uow:
            items, total = sla_cases.policy_list(uow, args["limit"], args["offset"])
        return page(items, total, args)


@sla.route("/sla-policies/<priority>")
class SlaPolicyByPriority(MethodView):
    @sla.arguments(SlaPolicyIn())
    @sla.response(200, SlaPolicyOut)
    def put(self, body, priority):
        """Set a priority's policy; tickets opened from now on get its due times."""
        if priority not in TICKET_PRIORITIES:
            abort(404, message=f"No priority {priority}; one of {', '.join(TICKET_PRIORITIES)}.")
        with unit_of_work() as uow:
            return vars(sla_cases.set_sla_policy(uow, priority, body))


@sla.route("/business-calendar")
class Calendar(MethodView):
    @sla.response(200, CalendarOut)
    def get(self):
        """The business hours SLA clocks run on (404 when none is set: clocks run around the clock)."""
        with unit_of_work(read_only=True) as uow:
            calendar = sla_cases.calendar_view(uow)
        if calendar is None:
            abort(404, message="No business calendar is set.")
        return calendar

    @sla.arguments(CalendarIn())
    @sla.response(200, CalendarOut)
    def put(self, body):
        """Set the business hours and holidays."""
        with unit_of_work() as uow:
            return sla_cases.set_business_calendar(uow, body)

    @sla.response(204)
    def delete(self):
        """Remove the calendar: SLA clocks run around the clock."""
        with unit_of_work() as uow:
            sla_cases.set_business_calendar(uow, None)
