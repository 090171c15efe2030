"""``GET /reports/staffing``: agents required per interval, staffed, forecast (staffing.py).

Its own blueprint beside the daily call report; the same ``/reports/*`` rule (supervisors) applies.
"""

from __future__ import annotations

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from shared.schemas import Timestamp
from shared.web import CSV_TOO, unit_of_work

from . import staffing

blueprint = Blueprint(
    "staffing", __name__, url_prefix="/reports", description="Staffing: agents required, staffed, forecast"
)


class StaffingQuery(Schema):
    date = fields.Date(required=True, metadata={"description": "YYYY-MM-DD (UTC); after today: a forecast"})
    queue = fields.String(
        load_default=None, validate=validate.Length(min=1, max=64), metadata={"description": "all when absent"}
    )
    interval = fields.Integer(
        load_default=None,
        validate=validate.OneOf((15, 20, 30, 60)),
        metadata={"description": "minutes (default STAFFING_INTERVAL_MINUTES, 30)"},
    )
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))


class IntervalOut(Schema):
    start = Timestamp()
    calls = fields.Float(metadata={"description": "offered calls (forecast: expected calls)"})
    aht_seconds = fields.Float(allow_none=True)
    intensity_erlangs = fields.Float()
    agents_required_raw = fields.Integer(metadata={"description": "Erlang C agents on the phones"})
    agents_required = fields.Integer(metadata={"description": "raw / (1 - shrinkage): agents to schedule"})
    service_level_expected = fields.Float(allow_none=True)
    occupancy = fields.Float(allow_none=True)
    waiting_probability = fields.Float(allow_none=True)
    asa_seconds = fields.Float(allow_none=True)
    forecast_calls = fields.Float(allow_none=True, metadata={"description": "what the forecast method gives"})
    mape_percent = fields.Float(allow_none=True, metadata={"description": "the forecast's error on past weeks"})
    staffed = fields.Float(metadata={"description": "agents working on average (past and today only)"})
    service_level_actual = fields.Float(allow_none=True)
    service_level_with_staffed = fields.Float(
        allow_none=True, metadata={"description": "Erlang C with the staffed agents"}
    )


class SegmentOut(Schema):
    state = fields.String()
    from_ = Timestamp(data_key="from", attribute="from")
    to = Timestamp()


class AgentTimelineOut(Schema):
    agent_id = fields.String()
    seconds_in_state = fields.Dict(keys=fields.String(), values=fields.Float())
    segments = fields.List(fields.Nested(SegmentOut))


class StaffingOut(Schema):
    date = fields.String()
    queue = fields.String(allow_none=True)
    kind = fields.String(validate=validate.OneOf(("actual", "forecast")))
    rules = fields.Dict()
    intervals = fields.List(fields.Nested(IntervalOut))
    totals = fields.Dict()
    forecast = fields.Dict(metadata={"description": "{method, days_used, backtested_days, mape_percent}"})
    agents = fields.List(fields.Nested(AgentTimelineOut), metadata={"description": "each agent's activity timeline"})


@blueprint.route("/staffing")
class Staffing(MethodView):
    @blueprint.arguments(StaffingQuery, location="query")
    @blueprint.response(200, StaffingOut)
    @blueprint.doc(**CSV_TOO)
    def get(self, query):
        """Per interval: calls, AHT, agents required (Erlang C), staffed agents and the service level they
        gave; a future day is a forecast from the same weekday of past weeks with its MAPE. ``format=csv``."""
        with unit_of_work(read_only=True) as uow:
            report = staffing.staffing_report(
                uow.session, query["date"], query["queue"], current_app.extensions["settings"], query["interval"]
            )
        if query["format"] == "csv":
            name = f"staffing-{report['date']}.csv"
            return Response(
                staffing.as_csv(report),
                mimetype="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        return report
