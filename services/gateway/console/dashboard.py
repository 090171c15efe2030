"""The supervisor's daily dashboard: one UTC day's calls, agents, reasons, tickets and surveys.

The figures are ``reports.fetch(day, min_n)``, the very page ``GET /api/reports/daily`` answers,
so the dashboard and the API (and its CSV) never disagree. A service that did not answer leaves
its part out and the page names it (``missing``), as the API does. Beside the report the page
asks, under the same deadline, for two extras: the agents' names (call routing's registry) and
the survey means of the last ``TREND_DAYS`` days (surveys' metrics by day); without them the page
shows ids and no trend, and says why.

Charts are drawn by ``static/dashboard.js`` (Chart.js) from a JSON data block; every chart has a
table with the same numbers beside it, for screen readers and for copying.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from flask import request
from flask_babel import get_locale

from shared.auth import rule

from .. import reports
from ..upstream import upstreams
from .base import Refused, console, page, render
from .i18n import N_, _, center_settings, num, pct, valid_zone, word

ACCESS: list = [rule("/dashboard*", "supervisor")]

TREND_DAYS = 14
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)
HOURS = range(24)
NO_VALUE = "\N{EN DASH}"  # a figure with nothing to show (no calls, nothing to divide by)
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # date.fromisoformat alone also takes 20261120 and week dates
SERVICE_PARTS = {"callrouting": N_("Calls, agents and reasons"), "tickets": N_("Tickets"), "surveys": N_("Surveys")}


# --- formatting (shared with the wall) -----------------------------------------------------------


def percent(share: float | None, digits: int = 1) -> str:
    """0.5 -> '50.0%' (en) or '50,0 %' (fr): Babel's pattern for the viewer's language; no value -> a dash."""
    return pct(share, digits)


def duration(seconds: float | None) -> str:
    """4.25 -> '4.3 s'; 125 -> '2 min 05 s'; 3725 -> '1 h 02 min'; no value -> a dash."""
    if seconds is None:
        return NO_VALUE
    if seconds < 60:
        return f"{num(seconds, 1)} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def minutes(value: float | None) -> str:
    """Minutes (the tickets' clocks) shown like every other duration."""
    return NO_VALUE if value is None else duration(value * 60)


def number(value: float | None, digits: int = 1) -> str:
    return NO_VALUE if value is None else num(value, digits)


def label(key: str | None) -> str:
    """A reason, category or question key as words in the viewer's language: 'quality_issue' -> 'Quality issue'."""
    if key is None:
        return NO_VALUE
    return word(key).capitalize()


FORMATS = {"percent": percent, "duration": duration, "minutes": minutes, "number": number, "label": label}


# --- the query -------------------------------------------------------------------------------------


def today() -> date:
    # The report's days are UTC days (reports.py, and every service's daily report).
    return datetime.now(UTC).date()


def _invalid(field: str, message: str) -> Refused:
    return Refused(422, {"title": "Invalid query", "detail": message, "errors": {field: [message]}})


def day_asked() -> date:
    text = request.args.get("date", "").strip()
    if not text:
        return today()
    try:
        if not _ISO_DAY.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise _invalid("date", "A day is YYYY-MM-DD, for example 2026-11-20.") from None
    if not FIRST_DAY <= day <= LAST_DAY:  # the day before, the trend's first day: no overflow at year 1 or 9999
        raise _invalid("date", f"A day from {FIRST_DAY} to {LAST_DAY}.")
    return day


def min_n_asked() -> int | None:
    text = request.args.get("min_n", "").strip()
    if not text:
        return None  # the surveys' own default (SURVEY_MIN_N)
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise _invalid("min_n", "The minimum number of answers is a whole number from 1 to 100000.")
    return int(text)


# --- the page ----------------------------------------------------------------------------------------


@console.route("/dashboard")
@page
def dashboard_page():
    day, min_n = day_asked(), min_n_asked()
    report = reports.fetch(day, min_n, str(get_locale()))
    extras, extras_missing = _extras(day, min_n, report)
    names = {agent["id"]: agent.get("name") for agent in (extras.get("agents") or {}).get("items", ())}
    trend = survey_trend(extras["trend"], day) if "trend" in extras else None
    query = {"date": day.isoformat(), **({"min_n": min_n} if min_n else {})}
    shown = hours_shown(day)
    zone = center_zone()
    return render(
        "console/dashboard/page.html",
        day=day,
        day_long=format_date(day, "full", locale=get_locale()),
        hours_shown=shown,
        hour_label=lambda hour: hour_in_zone(day, hour, zone),
        center_zone=zone,
        day_span=utc_day_span(day, zone),
        min_n=min_n,
        report=report,
        names=names,
        trend=trend,
        trend_missing=extras_missing.get("trend"),
        parts=SERVICE_PARTS,
        previous_day=day - timedelta(days=1),
        next_day=day + timedelta(days=1) if day < today() else None,
        csv_url="/api/reports/daily?" + urlencode({**query, "format": "csv"}),
        charts=chart_data(report, trend, shown, lambda hour: hour_in_zone(day, hour, zone)),
        **FORMATS,
    )


def _extras(day: date, min_n: int | None, report: dict) -> tuple[dict, dict]:
    """The agents' names and the survey trend, asked at once under the report's deadline; a
    service the report already found missing is not asked again."""
    front, limit = upstreams(), reports.deadline()
    ask = reports.json_getter(front, timeout=min(front.read_timeout, limit))

    calls = {}
    if report["calls"] is not None:
        calls["agents"] = ask("callrouting", "/agents?limit=500")
    if report["surveys"] is not None:
        first = day - timedelta(days=TREND_DAYS - 1)
        query = f"/survey-metrics?from={first}&to={day}&group_by=day" + (f"&min_n={min_n}" if min_n else "")
        query += f"&language={get_locale()}"
        calls["trend"] = ask("surveys", query)
    if not calls:
        return {}, {}
    return front.fan_out(calls, limit)


def figure_id(figure: dict) -> str:
    """A survey figure's identity: its template, question key and kind (templates sharing a key stay apart)."""
    return f"{figure.get('template_id')}:{figure.get('key')}:{figure.get('kind')}"


def survey_trend(metrics: dict, day: date) -> dict:
    """The mean of each question (per template and kind, as the metrics give them) on each of the
    last TREND_DAYS days (None: withheld or no answers). ``questions``: [{id, key, label}]."""
    days = [(day - timedelta(days=back)).isoformat() for back in range(TREND_DAYS - 1, -1, -1)]
    by_day = {
        group.get("day"): {figure_id(figure): figure for figure in group.get("questions", ())}
        for group in metrics.get("groups", ())
    }
    known: dict[str, dict] = {}
    for name in days:  # the latest day's label wins
        for ident, figure in by_day.get(name, {}).items():
            known[ident] = {"id": ident, "key": figure.get("key"), "label": figure.get("label") or figure.get("key")}
    for figures in by_day.values():
        for ident, figure in figures.items():
            known.setdefault(ident, {"id": ident, "key": figure.get("key"), "label": figure.get("label")})
    questions = sorted(known.values(), key=lambda q: (q["key"] or "", q["id"]))
    rows = []
    for name in days:
        figures = by_day.get(name, {})
        cells = {}
        for question in questions:
            figure = figures.get(question["id"]) or {}
            mean = figure.get("mean")
            cells[question["id"]] = {"n": figure.get("n", 0), "mean": mean["value"] if mean else None}
        rows.append({"day": name, "questions": cells})
    return {"days": days, "questions": questions, "rows": rows, "min_n": metrics.get("min_n")}


def hours_shown(day: date, now: datetime | None = None) -> list[int]:
    """The report's hours (UTC) that have begun: today ends at now, a day to come has none."""
    now = now or datetime.now(UTC)
    if day < now.date():
        return list(HOURS)
    if day > now.date():
        return []
    return list(range(now.hour + 1))


def center_zone() -> str:
    zone = center_settings().get("time_zone")
    return zone if valid_zone(zone) else "UTC"


def utc_day_span(day: date, zone: str) -> dict | None:
    """Where a report's day (a UTC day: the services keep their figures per UTC day and hour) starts
    and ends on the center's clock; None when the center keeps UTC itself."""
    if zone == "UTC":
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    local = ZoneInfo(zone)
    shown = [
        format_datetime(moment.astimezone(local), "short", locale=get_locale())
        for moment in (start, start + timedelta(days=1))
    ]
    return {"start": shown[0], "end": shown[1], "zone": zone}


def hour_in_zone(day: date, hour: int, zone: str) -> str:
    """The UTC hour ``hour`` of ``day`` as the center's clock reads it ('17:00')."""
    moment = datetime(day.year, day.month, day.day, hour, tzinfo=UTC).astimezone(ZoneInfo(zone))
    return moment.strftime("%H:%M")


def chart_data(report: dict, trend: dict | None, shown=HOURS, hour_label=lambda hour: f"{hour:02d}:00") -> dict:
    """What dashboard.js draws: plain lists, the same numbers as the tables beside the charts; the
    hours that have not begun are not drawn."""
    charts: dict = {}
    if (calls := report["calls"]) is not None:
        hours = {hour["hour"]: hour for hour in calls["hours"] or ()}
        charts["hours"] = {
            "labels": [hour_label(hour) for hour in shown],
            "offered": [hours.get(hour, {}).get("offered", 0) for hour in shown],
            "answered": [hours.get(hour, {}).get("answered", 0) for hour in shown],
            "abandoned": [hours.get(hour, {}).get("abandoned", 0) for hour in shown],
            "names": {"offered": _("Offered"), "answered": _("Answered"), "abandoned": _("Abandoned")},
        }
        reasons = calls["reasons"] or {}
        charts["reasons"] = {
            "labels": [label(key) for key in reasons],
            "calls": list(reasons.values()),
            "name": _("Calls"),
        }
    if report["tickets"] is not None:
        categories = report["tickets"]["opened"]["by_category"]
        charts["tickets"] = {
            "labels": [label(key) for key in categories],
            "opened": list(categories.values()),
            "name": _("Opened"),
        }
    if trend is not None:
        charts["trend"] = {
            "axis": _("mean (1\N{EN DASH}10)"),
            "labels": [format_date(date.fromisoformat(name), "d MMM", locale=get_locale()) for name in trend["days"]],
            "series": [
                {
                    "label": label(question["key"]),
                    "means": [row["questions"][question["id"]]["mean"] for row in trend["rows"]],
                }
                for question in trend["questions"]
            ],
        }
    return charts
