"""HTTP routes of the reports (read models in ``views.py``): customer hygiene and the daily report."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from shared.privacy import retention_settings
from shared.web import unit_of_work

from . import domain, views
from .customers_api import valid_time_zone

reports = Blueprint("reports", __name__, url_prefix="/reports", description="Reports")


class HygieneQuery(Schema):
    inactive_months = fields.Integer(load_default=12, validate=validate.Range(min=1, max=240))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=0, max=1000))


class DailyQuery(Schema):
    date = fields.Date(required=True)
    tz = fields.String(load_default="UTC", validate=lambda zone: valid_time_zone(zone))


@reports.route("/hygiene")
class Hygiene(MethodView):
    @reports.arguments(HygieneQuery(), location="query")
    @reports.response(200)
    def get(self, args):
        """Customers with no purchase or ticket for N months; records missing a number, e-mail or time zone."""
        with unit_of_work(read_only=True) as uow:
            report = views.hygiene_report(uow, args["inactive_months"], args["limit"])
        report["inactive_since"] = domain.rfc3339(report["inactive_since"])
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
            report = views.daily_report(uow, start, end)
        return {"date": args["date"].isoformat(), "time_zone": args["tz"], **report}
