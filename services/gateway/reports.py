"""The supervisor's daily report: the three services' reports of one day, joined into one page.

The manager's page of the product brief (flow 6): inbound calls per hour and in total (offered,
answered, abandoned, abandon rate, ASA, service level, AHT), calls per agent with the top agent,
calls by reason (call routing's ``GET /reports/daily``); tickets by category with replacements
and refunds, backlog, response times and SLA (tickets' ``GET /reports/daily``); survey means,
CSAT and NPS with their intervals (surveys' ``GET /survey-metrics`` for that one day). Each part
keeps the figures and names its service reports (docs/callrouting.md, docs/tickets.md,
docs/surveys.md).

The services are asked at once under one deadline (``REPORT_DEADLINE_SECONDS``, 3): a service
that is down, slow or refuses leaves its part ``null``, named in ``missing`` with the reason,
and the page says ``partial: true``, like the customer view.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from urllib.parse import quote

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from shared.auth import rule
from shared.web import CSV_TOO

from .upstream import Upstreams, UpstreamUnavailable, upstreams

reports = Blueprint("reports", __name__, description="The supervisor's daily report, joined from the three services.")

# Reports are for supervisors (and admins), as in the services themselves.
ACCESS = [rule("/api/reports/*", "supervisor")]


class DailyReportArgs(Schema):
    date = fields.Date(required=True, metadata={"description": "YYYY-MM-DD, a UTC day"})
    format = fields.String(
        load_default="json", validate=validate.OneOf(("json", "csv")), metadata={"description": "json or csv"}
    )
    min_n = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=100_000),
        metadata={"description": "surveys: answers below which a figure is withheld (default SURVEY_MIN_N)"},
    )


class DailyReportOut(Schema):
    date = fields.String()
    partial = fields.Boolean(metadata={"description": "true when a part is missing"})
    missing = fields.Dict(
        keys=fields.String(), values=fields.String(), metadata={"description": "service -> why its part is missing"}
    )
    calls = fields.Dict(
        allow_none=True,
        metadata={
            "description": "call routing's day: service_level_threshold_seconds, totals {entered, offered, answered, "
            "abandoned, short_abandoned, timed_out, abandon_rate, asa_seconds, service_level, handled, "
            "aht_seconds}, hours [the same per hour], agents [{agent_id, calls, talk_seconds, handled, "
            "aht_seconds}], top_agent, reasons {reason: calls}"
        },
    )
    tickets = fields.Dict(
        allow_none=True,
        metadata={
            "description": "tickets' day: opened {total, by_category}, replacements, refunds, resolved, backlog, "
            "first_response, resolution, sla, per_agent"
        },
    )
    staffing = fields.Dict(
        allow_none=True,
        metadata={
            "description": "call routing's staffing: interval_minutes, totals {calls, peak_agents_required, "
            "agent_hours_required, agent_hours_staffed}, forecast_mape_percent, intervals [{start, calls, "
            "agents_required, staffed, service_level_actual, mape_percent}], agents [{agent_id, seconds_in_state, "
            "segments [{state, from, to}]}] (each agent's activity timeline)"
        },
    )
    surveys = fields.Dict(
        allow_none=True,
        metadata={
            "description": "surveys' day: min_n, confidence, responses, contacts, response_rate, questions "
            "[{template_id, key, kind, versions, label, n, distribution, mean, csat, nps (recommend questions), "
            "withheld, withheld_reason, change}]: one per template, question and kind as answered (never mixed across "
            "templates sharing a key)"
        },
    )


def deadline() -> float:
    return float(current_app.extensions["settings"].option("REPORT_DEADLINE_SECONDS", "3"))


def json_getter(front: Upstreams, timeout: float):
    """``ask(service, path)``: a call for ``front.fan_out`` that GETs ``path`` and returns its JSON;
    anything but a 200 counts as the service missing."""

    def ask(service: str, path: str):
        def call(user, request_id):
            answer = front.call(service, "GET", path, user=user, request_id=request_id, timeout=timeout)
            if answer.status_code != 200:
                raise UpstreamUnavailable(service, f"answered {answer.status_code}", answer)
            return answer.json()

        return call

    return ask


def fetch(day: date, min_n: int | None, language: str | None = None) -> dict:
    """The three parts of ``day``, asked at once; missing parts named. ``language``: of the survey
    questions' labels (else each template version's first language)."""
    front, limit = upstreams(), deadline()
    survey_query = f"/survey-metrics?from={day}&to={day}" + (f"&min_n={min_n}" if min_n else "")
    survey_query += f"&language={quote(language)}" if language else ""
    ask = json_getter(front, timeout=min(front.read_timeout, limit))

    parts, missing = front.fan_out(
        {
            "calls": ask("callrouting", f"/reports/daily?date={day}"),
            "tickets": ask("tickets", f"/reports/daily?date={day}"),
            "surveys": ask("surveys", survey_query),
            "staffing": ask("callrouting", f"/reports/staffing?date={day}"),
        },
        limit,
    )
    services = {"calls": "callrouting", "tickets": "tickets", "surveys": "surveys", "staffing": "callrouting"}
    return {
        "date": day.isoformat(),
        "partial": bool(missing),
        "missing": {services[part]: reason for part, reason in missing.items()},
        "calls": _calls(parts["calls"]) if "calls" in parts else None,
        "tickets": _tickets(parts["tickets"]) if "tickets" in parts else None,
        "surveys": _surveys(parts["surveys"]) if "surveys" in parts else None,
        "staffing": _staffing(parts["staffing"]) if "staffing" in parts else None,
    }


_STAFFING_FIGURES = ("start", "calls", "agents_required", "staffed", "service_level_actual", "mape_percent")


def _staffing(report: dict) -> dict:
    """Required vs staffed agents per interval (call routing's GET /reports/staffing, docs/staffing.md)."""
    return {
        "interval_minutes": report["rules"]["interval_minutes"],
        "totals": report["totals"],
        "forecast_mape_percent": report["forecast"]["mape_percent"],
        "intervals": [{name: row.get(name) for name in _STAFFING_FIGURES} for row in report["intervals"]],
        "agents": report.get("agents") or [],
    }


def _calls(report: dict) -> dict:
    keep = ("service_level_threshold_seconds", "totals", "hours", "agents", "top_agent", "reasons")
    return {name: report.get(name) for name in keep}


def _tickets(report: dict) -> dict:
    return {name: value for name, value in report.items() if name not in ("date", "time_zone")}


def _surveys(report: dict) -> dict:
    # No grouping asked: one group (or none, on a day without surveys) for the whole day.
    day = report["groups"][0] if report.get("groups") else {}
    return {
        "min_n": report.get("min_n"),
        "confidence": report.get("confidence"),
        "responses": day.get("responses", {"completed": 0, "partial": 0}),
        "contacts": day.get("contacts", {}),
        "response_rate": day.get("response_rate"),
        "questions": day.get("questions", []),
    }


@reports.route("/api/reports/daily")
class DailyReport(MethodView):
    @reports.arguments(DailyReportArgs, location="query")
    @reports.response(200, DailyReportOut)
    @reports.doc(**CSV_TOO)
    def get(self, args):
        """The manager's page of one UTC day: calls, agents, reasons, tickets and surveys, joined from the
        services; ``partial: true`` and ``missing`` when a service did not answer within
        REPORT_DEADLINE_SECONDS. ``format=csv``: one CSV of rows ``section,item,measure,value``."""
        page = fetch(args["date"], args["min_n"])
        if args["format"] == "csv":
            name = f"daily-report-{page['date']}.csv"
            return Response(
                as_csv(page), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
            )
        return page


# --- CSV: one long table -------------------------------------------------------------------------

CSV_COLUMNS = ("section", "item", "measure", "value")


def as_csv(page: dict) -> str:
    """Every figure of the page as a row ``section,item,measure,value`` (pivots in any spreadsheet)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(page))
    return out.getvalue()


def csv_rows(page: dict):
    yield ("report", "day", "date", page["date"])
    yield ("report", "day", "partial", _cell(page["partial"]))
    for service, reason in page["missing"].items():
        yield ("missing", service, "reason", reason)
    if (calls := page["calls"]) is not None:
        yield ("calls", "day", "service_level_threshold_seconds", _cell(calls["service_level_threshold_seconds"]))
        yield from _measures("calls", "day", calls["totals"])
        for hour in calls["hours"] or ():
            yield from _measures("calls", f"{hour['hour']:02d}:00", {k: v for k, v in hour.items() if k != "hour"})
        for agent in calls["agents"] or ():
            yield from _measures("agents", agent["agent_id"], {k: v for k, v in agent.items() if k != "agent_id"})
        yield ("agents", "day", "top_agent", _cell(calls["top_agent"]))
        for reason, count in (calls["reasons"] or {}).items():
            yield ("reasons", reason, "calls", count)
    if (tickets := page["tickets"]) is not None:
        for category, count in tickets["opened"]["by_category"].items():
            yield ("tickets", category, "opened", count)
        yield ("tickets", "day", "opened", tickets["opened"]["total"])
        for measure in ("replacements", "refunds", "resolved", "backlog"):
            yield ("tickets", "day", measure, _cell(tickets.get(measure)))
        for clock in ("first_response", "resolution"):
            yield from _measures("tickets", clock, tickets.get(clock) or {})
        for clock, attainment in (tickets.get("sla") or {}).items():
            if isinstance(attainment, dict):
                yield from _measures("tickets", f"sla {clock}", attainment)
            else:
                yield ("tickets", "sla", clock, _cell(attainment))
    if (staffing := page.get("staffing")) is not None:
        yield from _measures("staffing", "day", staffing["totals"])
        for row in staffing["intervals"]:
            if row["calls"] or row["staffed"]:
                yield from _measures(
                    "staffing", str(row["start"])[11:16], {k: v for k, v in row.items() if k != "start"}
                )
    if (surveys := page["surveys"]) is not None:
        yield from _measures("surveys", "day", surveys["responses"])
        yield from _measures("surveys", "day", surveys["contacts"])
        for figures in surveys["questions"]:
            # One item per template, question and kind: templates sharing a key stay apart.
            question = f"{figures['key']} ({figures['kind']}, template {figures['template_id']})"
            yield ("surveys", question, "versions", " ".join(str(version) for version in figures.get("versions", ())))
            yield ("surveys", question, "n", figures.get("n"))
            for figure in ("mean", "csat", "nps"):
                value = figures.get(figure)
                if isinstance(value, dict):
                    yield from _measures("surveys", question, {f"{figure} {k}": v for k, v in value.items()})
                elif figure in figures:
                    yield ("surveys", question, figure, _cell(value))


def _measures(section: str, item: str, figures: dict):
    for measure, value in figures.items():
        if not isinstance(value, dict | list):
            yield (section, item, measure, _cell(value))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
