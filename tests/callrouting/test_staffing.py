"""Staffing (services/callrouting/inbound/staffing.py): Erlang C against pyworkforce's published example and
an independent computation, the forecast on a history with a known weekly pattern, and staffed time
from a state history made through the real agent-state API."""

from __future__ import annotations

import math
import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from scipy.stats import poisson

from services.callrouting.inbound.staffing import StaffingRules, erlang_c
from services.callrouting.models import Call
from tests.callrouting.inbound_support import add_agents, inbound_app

RULES = StaffingRules(interval_minutes=30, service_level=0.8, threshold_seconds=20, shrinkage=0.3, max_occupancy=0.85)


def test_erlang_c_gives_pyworkforce_s_published_example():
    # pyworkforce's README: 100 calls in 30 min, AHT 3 min, 80 % in 20 s, shrinkage 0.3, max occupancy 0.85
    figures = erlang_c(100, 180, RULES)
    assert figures["agents_required_raw"] == 14
    assert figures["agents_required"] == 20  # 14 / (1 - 0.3), rounded up
    assert figures["service_level_expected"] == pytest.approx(0.888, abs=0.001)
    assert figures["occupancy"] == pytest.approx(10 / 14)
    assert figures["asa_seconds"] == pytest.approx(7.8, abs=0.05)


def independent_erlang_c(calls: float, aht: float, agents: int, rules: StaffingRules) -> tuple[float, float, float]:
    """P(wait), service level, ASA from the Poisson form of Erlang C (no code shared with pyworkforce)."""
    load = calls * aht / (rules.interval_minutes * 60)
    top = poisson.pmf(agents, load)
    p_wait = top / (top + (1 - load / agents) * poisson.cdf(agents - 1, load))
    level = 1 - p_wait * math.exp(-(agents - load) * rules.threshold_seconds / aht)
    return p_wait, level, p_wait * aht / (agents - load)


@pytest.mark.parametrize("calls,aht", [(100, 180), (12, 240), (250, 300), (40, 95), (600, 200)])
def test_erlang_c_agrees_with_an_independent_computation(calls, aht):
    rules = StaffingRules(max_occupancy=1.0, shrinkage=0.0)  # so the target alone decides
    figures = erlang_c(calls, aht, rules)
    agents = figures["agents_required_raw"]
    p_wait, level, asa = independent_erlang_c(calls, aht, agents, rules)
    assert figures["waiting_probability"] == pytest.approx(p_wait, rel=1e-6)
    assert figures["service_level_expected"] == pytest.approx(level, rel=1e-6)
    assert figures["asa_seconds"] == pytest.approx(asa, rel=1e-6)
    assert level >= 0.8
    load = calls * aht / 1800
    if agents - 1 > load:  # one agent fewer would miss the target
        assert independent_erlang_c(calls, aht, agents - 1, rules)[1] < 0.8


# --- the forecast ----------------------------------------------------------------------------------

# calls per 30-minute interval on the weekday of the pattern: a morning and an afternoon peak
PATTERN = {18: 10, 19: 24, 20: 30, 21: 16, 28: 12, 29: 20}


def store_calls(database, day: date, per_interval: dict[int, int], queue="default", talk=150.0, wrap=30.0):
    with database.sessions() as session:
        for index, count in per_interval.items():
            for n in range(count):
                entered = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                    minutes=30 * index, seconds=n * (1800 / max(count, 1))
                )
                session.add(
                    Call(
                        call_id=uuid.uuid4().hex,
                        source="json",
                        queue=queue,
                        state="completed",
                        enqueued_at=entered,
                        received_at=entered,
                        answered_at=entered + timedelta(seconds=10),
                        result="answered",
                        wait_seconds=10.0 if n % 4 else 30.0,
                        talk_seconds=talk,
                        wrap_up_seconds=wrap,
                        day=day.isoformat(),
                        hour=entered.hour,
                    )
                )
        session.commit()


@pytest.fixture
def routing(settings_factory):
    app, client, database = inbound_app(settings_factory, options={"STAFFING_HOLIDAYS": "2026-11-05"})
    return app, client, database


def test_the_forecast_of_a_weekday_follows_its_weekly_pattern_and_says_how_far_to_trust_it(routing):
    _, client, database = routing
    target = date(2026, 12, 10) + timedelta(weeks=52)  # well in the future: a forecast
    for week in range(1, 9):
        store_calls(database, target - timedelta(weeks=week), PATTERN)
    store_calls(database, date(2026, 11, 5), {18: 500})  # a holiday: left out
    for other in range(1, 4):  # other weekdays do not count
        store_calls(database, target - timedelta(days=other), {18: 99})
    report = client.get(f"/reports/staffing?date={target}").get_json()
    assert report["kind"] == "forecast"
    assert report["forecast"]["days_used"] == [(target - timedelta(weeks=w)).isoformat() for w in range(1, 7)]
    by_interval = {n: row for n, row in enumerate(report["intervals"])}
    for index, row in by_interval.items():
        assert row["calls"] == pytest.approx(PATTERN.get(index, 0))
        if index in PATTERN:
            assert row["aht_seconds"] == pytest.approx(180)
            assert row["agents_required"] == erlang_c(PATTERN[index], 180, RULES)["agents_required"]
            assert row["mape_percent"] == pytest.approx(0)
        else:
            assert row["agents_required"] == 0
    assert report["forecast"]["mape_percent"] == pytest.approx(0)


def test_the_forecast_weighs_recent_weeks_most_and_its_mape_shows_the_change(routing):
    _, client, database = routing
    target = date(2026, 12, 10) + timedelta(weeks=60)
    # the interval at 09:00 had 10 calls every week until 2 weeks ago, 40 since
    for week in range(1, 11):
        store_calls(database, target - timedelta(weeks=week), {18: 40 if week <= 2 else 10})
    report = client.get(f"/reports/staffing?date={target}&format=json").get_json()
    # weights 6..1 over weeks 1..6: (6*40 + 5*40 + (4+3+2+1)*10) / 21
    assert report["intervals"][18]["calls"] == pytest.approx((6 * 40 + 5 * 40 + 10 * 10) / 21)
    # backtest: weeks 1..4 each forecast from the six before them
    mape = report["intervals"][18]["mape_percent"]
    week1 = abs(40 - (6 * 40 + (5 + 4 + 3 + 2 + 1) * 10) / 21) / 40  # week 1 from weeks 2..7 (weights 6..1)
    week2 = abs(40 - 10) / 40  # week 2 from weeks 3..8: all 10
    assert mape == pytest.approx(100 * (week1 + week2 + 0 + 0) / 4)
    csv = client.get(f"/reports/staffing?date={target}&format=csv")
    assert csv.mimetype == "text/csv" and csv.get_data(as_text=True).splitlines()[0].startswith("start,calls,")


def test_staffed_time_comes_from_the_state_history_of_the_agent_state_api(routing):
    _, client, database = routing
    add_agents(database, "ann")
    marks = []  # (before, after) each state change; its server time lies between
    for state, seconds in (("available", 1.2), ("on_break", 0.6), ("offline", 0)):
        before = time.monotonic()
        answer = client.put("/agents/ann/state", json={"state": state})
        marks.append((before, time.monotonic()))
        assert answer.status_code == 200, answer.get_json()
        time.sleep(seconds)

    def between(first, second):
        return pytest.approx(
            (marks[second][1] + marks[second][0] - marks[first][1] - marks[first][0]) / 2,
            abs=(marks[second][1] - marks[second][0] + marks[first][1] - marks[first][0]) / 2 + 0.01,
        )

    today = datetime.now(UTC).date()
    report = client.get(f"/reports/staffing?date={today}").get_json()
    assert report["kind"] == "actual"
    (ann,) = report["agents"]
    assert [segment["state"] for segment in ann["segments"]] == ["available", "on_break"]
    assert ann["seconds_in_state"]["available"] == between(0, 1)
    assert ann["seconds_in_state"]["on_break"] == between(1, 2)
    staffed_seconds = sum(row["staffed"] for row in report["intervals"]) * 1800
    assert staffed_seconds == pytest.approx(ann["seconds_in_state"]["available"], abs=0.01)  # breaks are not staffed
    assert client.get("/reports/staffing?date=2026-02-30").status_code == 422
