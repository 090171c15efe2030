"""Staffing: how many agents each interval of a day needs, and how many it had.

For a day and a queue, per interval (``STAFFING_INTERVAL_MINUTES``, 30):

- **arrivals and AHT** from the stored calls: offered calls (short abandons excluded, as in the
  daily report) by the time they entered the queue; AHT = (talk + wrap-up) / handled;
- **agents required** by Erlang C for the queue's target (``STAFFING_SERVICE_LEVEL`` 0.8 of calls
  answered within the queue's T, 20 s): ``pyworkforce.queuing.ErlangC`` (raw agents, service
  level, occupancy, probability of waiting, with ``STAFFING_MAX_OCCUPANCY`` 0.85 and
  ``STAFFING_SHRINKAGE`` 0.3: ``agents_required`` = raw / (1 - shrinkage)); the expected ASA is
  Erlang C's ``P(wait) * AHT / (N - A)``, which pyworkforce does not return;
- **staffed**: agents logged in and working (available, reserved, on a call or in wrap-up) on
  average over the interval, from the agents' state history; their time on break is shrinkage;
- the **service level** the calls got (answered within T / (answered + abandoned after T)).

A day after today is a **forecast**: per interval, the weighted mean of the same weekday in the
last ``STAFFING_FORECAST_WEEKS`` (6) weeks, the latest week weighing most (weights 6, 5, ..., 1),
days in ``STAFFING_HOLIDAYS`` (comma-separated dates) and days without a single call left out. Its
error is shown as the MAPE per interval over the last ``STAFFING_BACKTEST_WEEKS`` (4) such days,
each forecast the same way from the weeks before it. docs/staffing.md explains the choices.

Why pyworkforce: a maintained, MIT-licensed workforce-management library whose Erlang C is plain
Python (it also brings scheduling and rostering we may use later); erlangccmath computes its
Erlang X / A figures on a remote web service, which a call center cannot depend on. pyworkforce
has no Erlang A (abandonment), so neither has this report.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

from pyworkforce.queuing import ErlangC
from sqlalchemy import Integer, case, cast, extract, func, select
from sqlalchemy.orm import Session

from ..models import Agent, AgentRouting, AgentStateChange, Call
from .views import queue_rules_or_default

# The states in which an agent counts as staffed (taking or able to take calls).
STAFFED_STATES = ("available", "reserved", "on_call", "wrap_up")
STATES = ("available", "reserved", "on_call", "wrap_up", "on_break", "offline")


@dataclass(frozen=True)
class StaffingRules:
    interval_minutes: int = 30
    service_level: float = 0.8  # the share of calls to answer within threshold_seconds
    threshold_seconds: int = 20
    shrinkage: float = 0.3
    max_occupancy: float = 0.85
    forecast_weeks: int = 6
    backtest_weeks: int = 4
    default_aht_seconds: float = 180.0  # an interval with calls but none handled yet
    holidays: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings, threshold_seconds: int, interval_minutes: int | None = None) -> StaffingRules:
        def option(name, default):
            return settings.option(name, str(default))

        holidays = tuple(day.strip() for day in (option("STAFFING_HOLIDAYS", "") or "").split(",") if day.strip())
        return cls(
            interval_minutes=interval_minutes or int(option("STAFFING_INTERVAL_MINUTES", 30)),
            service_level=float(option("STAFFING_SERVICE_LEVEL", 0.8)),
            threshold_seconds=threshold_seconds,
            shrinkage=float(option("STAFFING_SHRINKAGE", 0.3)),
            max_occupancy=float(option("STAFFING_MAX_OCCUPANCY", 0.85)),
            forecast_weeks=int(option("STAFFING_FORECAST_WEEKS", 6)),
            backtest_weeks=int(option("STAFFING_BACKTEST_WEEKS", 4)),
            default_aht_seconds=float(option("STAFFING_DEFAULT_AHT_SECONDS", 180)),
            holidays=holidays,
        )

    @property
    def intervals(self) -> int:
        return 24 * 60 // self.interval_minutes


# --- Erlang C ----------------------------------------------------------------------------------


def erlang_c(calls: float, aht_seconds: float, rules: StaffingRules) -> dict:
    """Agents needed for ``calls`` arriving in one interval with this AHT, and what they achieve."""
    if calls <= 0 or aht_seconds <= 0:
        return {
            "intensity_erlangs": 0.0,
            "agents_required_raw": 0,
            "agents_required": 0,
            "service_level_expected": None,
            "occupancy": None,
            "waiting_probability": None,
            "asa_seconds": None,
        }
    model = ErlangC(
        transactions=calls,
        aht=aht_seconds / 60,
        asa=rules.threshold_seconds / 60,  # pyworkforce's "asa" is the target answer time T
        interval=rules.interval_minutes,
        shrinkage=rules.shrinkage,
    )
    need = model.required_positions(service_level=rules.service_level, max_occupancy=rules.max_occupancy)
    raw = need["raw_positions"]
    return {
        "intensity_erlangs": model.intensity,
        "agents_required_raw": raw,
        "agents_required": need["positions"],
        "service_level_expected": need["service_level"],
        "occupancy": need["occupancy"],
        "waiting_probability": need["waiting_probability"],
        "asa_seconds": need["waiting_probability"] * aht_seconds / (raw - model.intensity),
    }


def service_level_with(agents: float, calls: float, aht_seconds: float, rules: StaffingRules) -> float | None:
    """The service level Erlang C expects from ``agents`` (whole agents staffed throughout)."""
    if calls <= 0 or aht_seconds <= 0:
        return None
    whole = math.floor(agents + 1e-9)
    model = ErlangC(
        transactions=calls, aht=aht_seconds / 60, asa=rules.threshold_seconds / 60, interval=rules.interval_minutes
    )
    if whole <= model.intensity:
        return 0.0  # the queue grows without bound
    return model.service_level(whole)


# --- the calls, per day and interval ---------------------------------------------------------------


@dataclass
class IntervalCalls:
    offered: int = 0
    handled: int = 0
    handled_seconds: float = 0.0
    answered_within: int = 0
    answered_or_abandoned_late: int = 0

    @property
    def aht_seconds(self) -> float | None:
        return self.handled_seconds / self.handled if self.handled else None


def _bucket(session: Session, seconds: int):
    """The interval a call entered in, from its enqueue time (seconds since the UTC day's start)."""
    since_midnight = extract("epoch", Call.enqueued_at) % 86400
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(since_midnight / seconds), Integer)
    return cast(since_midnight / seconds, Integer)  # SQLite: integer division of integers


def calls_by_interval(
    session: Session, days: list[str], queue: str | None, rules: StaffingRules
) -> dict[str, dict[int, IntervalCalls]]:
    """day -> interval index -> the figures of the calls that entered then (one GROUP BY, indexed by day)."""
    if not days:
        return {}
    threshold = rules.threshold_seconds
    bucket = _bucket(session, rules.interval_minutes * 60).label("bucket")
    handled = (Call.state == "completed") & (Call.result == "answered")
    where = [Call.day.in_(days), Call.result.is_not(None), Call.result != "short_abandon"]
    if queue:
        where.append(Call.queue == queue)
    rows = session.execute(
        select(
            Call.day,
            bucket,
            func.count(),
            func.sum(case((handled, 1), else_=0)),
            func.sum(
                case((handled, func.coalesce(Call.talk_seconds, 0) + func.coalesce(Call.wrap_up_seconds, 0)), else_=0)
            ),
            func.sum(case(((Call.result == "answered") & (Call.wait_seconds <= threshold), 1), else_=0)),
            func.sum(
                case(
                    (Call.result == "answered", 1),
                    ((Call.result == "abandoned") & (Call.wait_seconds > threshold), 1),
                    else_=0,
                )
            ),
        )
        .where(*where)
        .group_by(Call.day, bucket)
    )
    out: dict[str, dict[int, IntervalCalls]] = defaultdict(dict)
    for day, index, offered, n_handled, seconds, within, counted in rows:
        out[day][int(index)] = IntervalCalls(
            int(offered), int(n_handled or 0), float(seconds or 0), int(within or 0), int(counted or 0)
        )
    return out


# --- the forecast ------------------------------------------------------------------------------------


def history_days(day: date, weeks: int, rules: StaffingRules, with_calls: set[str]) -> list[str]:
    """The same weekday in the ``weeks`` weeks before ``day`` that had calls and are no holidays, latest first."""
    candidates = [(day - timedelta(weeks=n)).isoformat() for n in range(1, weeks + 1)]
    return [each for each in candidates if each not in rules.holidays and each in with_calls]


def forecast_from(
    history: list[dict[int, IntervalCalls]], rules: StaffingRules
) -> dict[int, tuple[float, float | None]]:
    """interval -> (calls, AHT) as the weighted mean of ``history`` (latest first; weights n, n-1, ..., 1)."""
    weights = list(range(len(history), 0, -1))
    total = sum(weights)
    out = {}
    for index in range(rules.intervals):
        calls = sum(w * day.get(index, IntervalCalls()).offered for w, day in zip(weights, history, strict=True))
        handled = sum(w * day.get(index, IntervalCalls()).handled for w, day in zip(weights, history, strict=True))
        seconds = sum(
            w * day.get(index, IntervalCalls()).handled_seconds for w, day in zip(weights, history, strict=True)
        )
        out[index] = (calls / total if total else 0.0, seconds / handled if handled else None)
    return out


def _backtest(
    day: date, rules: StaffingRules, by_day: dict, with_calls: set[str]
) -> tuple[dict[int, float | None], list[str]]:
    """interval -> MAPE (%) of the method over the last ``backtest_weeks`` same weekdays before ``day``."""
    errors: dict[int, list[float]] = defaultdict(list)
    tested = []
    for past in history_days(day, rules.backtest_weeks, rules, with_calls):
        earlier = history_days(date.fromisoformat(past), rules.forecast_weeks, rules, with_calls)
        if not earlier:
            continue
        tested.append(past)
        predicted = forecast_from([by_day[each] for each in earlier], rules)
        for index, (calls, _aht) in predicted.items():
            actual = by_day[past].get(index, IntervalCalls()).offered
            if actual > 0:
                errors[index].append(abs(actual - calls) / actual)
    mape = {index: (100 * sum(values) / len(values) if values else None) for index, values in errors.items()}
    return {index: mape.get(index) for index in range(rules.intervals)}, tested


# --- the agents -------------------------------------------------------------------------------------


def agent_timelines(
    session: Session, start: datetime, end: datetime, queue: str | None = None
) -> dict[str, list[dict]]:
    """agent -> the segments of [start, end) in each state, from the state history."""
    # Each registered agent's state when the span began: their last change before it, one index
    # lookup per agent on (agent_id, at), not a scan of the whole history.
    last_before = (
        select(AgentStateChange.new_state)
        .where(AgentStateChange.agent_id == Agent.agent_id, AgentStateChange.at < start)
        .order_by(AgentStateChange.at.desc(), AgentStateChange.id.desc())
        .limit(1)
        .correlate(Agent)
        .scalar_subquery()
    )
    opening = {
        agent_id: state
        for agent_id, state in session.execute(select(Agent.agent_id, last_before))
        if state is not None and state != "offline"
    }
    changes = session.execute(
        select(AgentStateChange.agent_id, AgentStateChange.new_state, AgentStateChange.at)
        .where(AgentStateChange.at >= start, AgentStateChange.at < end)
        .order_by(AgentStateChange.agent_id, AgentStateChange.at, AgentStateChange.id)
    ).all()
    agents = set(opening) | {row.agent_id for row in changes}
    if queue:  # the agents who serve the queue (an agent without queues serves every queue)
        elsewhere = {
            agent_id
            for agent_id, queues in session.execute(select(AgentRouting.agent_id, AgentRouting.queues))
            if queues and queue not in queues
        }
        agents -= elsewhere
    by_agent: dict[str, list] = defaultdict(list)
    for row in changes:
        by_agent[row.agent_id].append((row.at, row.new_state))
    timelines = {}
    for agent in sorted(agents):
        state, since, segments = opening.get(agent, "offline"), start, []
        for at, new_state in by_agent.get(agent, ()):
            if at > since:
                segments.append({"state": state, "from": since, "to": at})
            state, since = new_state, max(at, since)
        if end > since:
            segments.append({"state": state, "from": since, "to": end})
        timelines[agent] = [each for each in segments if each["state"] != "offline"]
    return {agent: segments for agent, segments in timelines.items() if segments}


def staffed_by_interval(timelines: dict[str, list[dict]], start: datetime, rules: StaffingRules) -> dict[int, float]:
    """interval -> agents staffed on average (staffed seconds / interval seconds)."""
    length = rules.interval_minutes * 60
    staffed: dict[int, float] = defaultdict(float)
    for segments in timelines.values():
        for segment in segments:
            if segment["state"] not in STAFFED_STATES:
                continue
            begin = (segment["from"] - start).total_seconds()
            finish = (segment["to"] - start).total_seconds()
            index = int(begin // length)
            while begin < finish and index < rules.intervals:
                edge = min(finish, (index + 1) * length)
                staffed[index] += (edge - begin) / length
                begin, index = edge, index + 1
    return staffed


def time_in_states(segments: list[dict]) -> dict[str, float]:
    totals = dict.fromkeys(STATES[:-1], 0.0)
    for segment in segments:
        totals[segment["state"]] = totals.get(segment["state"], 0.0) + (segment["to"] - segment["from"]).total_seconds()
    return totals


# --- the report -------------------------------------------------------------------------------------


def staffing_report(
    session: Session,
    day: date,
    queue: str | None,
    settings,
    interval_minutes: int | None = None,
    now: datetime | None = None,
) -> dict:
    now = now or datetime.now(UTC)
    rules = StaffingRules.from_settings(settings, queue_rules_or_default(session, queue), interval_minutes)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    future = start > now
    span = rules.forecast_weeks + rules.backtest_weeks
    days = [(day - timedelta(weeks=n)).isoformat() for n in range(0 if not future else 1, span + 1)]
    by_day = calls_by_interval(session, days, queue, rules)
    with_calls = {each for each, intervals in by_day.items() if intervals}
    by_day = defaultdict(dict, by_day)
    used = history_days(day, rules.forecast_weeks, rules, with_calls)
    mape, tested = _backtest(day, rules, by_day, with_calls)
    predicted = forecast_from([by_day[each] for each in used], rules) if used else {}
    staffed: dict[int, float] = {}
    agents = []
    if not future:
        timelines = agent_timelines(session, start, min(start + timedelta(days=1), now), queue)
        staffed = staffed_by_interval(timelines, start, rules)
        agents = [
            {"agent_id": agent, "seconds_in_state": time_in_states(segments), "segments": segments}
            for agent, segments in timelines.items()
        ]
    intervals = []
    for index in range(rules.intervals):
        begins = start + timedelta(minutes=index * rules.interval_minutes)
        forecast_calls, forecast_aht = predicted.get(index, (0.0, None))
        if future:
            calls, aht = forecast_calls, forecast_aht
            actual = None
        else:
            actual = by_day[day.isoformat()].get(index, IntervalCalls())
            calls, aht = actual.offered, actual.aht_seconds
        if calls and aht is None:
            aht = rules.default_aht_seconds
        row = {
            "start": begins,
            "calls": calls,
            "aht_seconds": aht,
            **erlang_c(calls, aht or 0, rules),
            "forecast_calls": forecast_calls if predicted else None,
            "mape_percent": mape.get(index),
        }
        if not future:
            row["staffed"] = staffed.get(index, 0.0)
            row["service_level_actual"] = (
                actual.answered_within / actual.answered_or_abandoned_late
                if actual.answered_or_abandoned_late
                else None
            )
            row["service_level_with_staffed"] = service_level_with(row["staffed"], calls, aht or 0, rules)
        intervals.append(row)
    hours = rules.interval_minutes / 60
    all_errors = [row["mape_percent"] for row in intervals if row["mape_percent"] is not None]
    return {
        "date": day.isoformat(),
        "queue": queue,
        "kind": "forecast" if future else "actual",
        "rules": {**asdict(rules), "holidays": list(rules.holidays)},
        "intervals": intervals,
        "totals": {
            "calls": sum(row["calls"] for row in intervals),
            "peak_agents_required": max((row["agents_required"] for row in intervals), default=0),
            "agent_hours_required": sum(row["agents_required"] for row in intervals) * hours,
            "agent_hours_staffed": None if future else sum(row["staffed"] for row in intervals) * hours,
        },
        "forecast": {
            "method": f"weighted mean of the same weekday in the last {rules.forecast_weeks} weeks "
            "(latest heaviest), holidays and days without calls left out",
            "days_used": used,
            "backtested_days": tested,
            "mape_percent": sum(all_errors) / len(all_errors) if all_errors else None,
        },
        "agents": agents,
    }


CSV_COLUMNS = (
    "start",
    "calls",
    "aht_seconds",
    "agents_required",
    "agents_required_raw",
    "staffed",
    "service_level_expected",
    "service_level_actual",
    "service_level_with_staffed",
    "occupancy",
    "waiting_probability",
    "asa_seconds",
    "forecast_calls",
    "mape_percent",
)


def as_csv(report: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in report["intervals"]:
        writer.writerow(["" if row.get(name) is None else _cell(row[name]) for name in CSV_COLUMNS])
    return out.getvalue()


def _cell(value) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)
