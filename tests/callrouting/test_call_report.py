"""The daily call report against a fixture day computed by hand (product brief, section 4).

The day, queue "default", T = 20 s, t_s = 5 s (times 2026-11-23, UTC):

    call  entered   waited  result          agent  talk  wrap-up  reason
    c1    09:00:00  10 s    answered        ann    300   30       complaint
    c2    09:10:00  30 s    answered        bob    120   60       refund
    c3    09:20:00   3 s    short abandon
    c4    09:30:00  40 s    abandoned
    c5    10:00:00   5 s    answered        ann    200   20       complaint
    c6    10:15:00  12 s    abandoned
    c7    10:20:00  20 s    answered        bob    100   40       replacement
    c8    10:40:00   8 s    answered        ann     60   (still in wrap-up)

By hand: entered 8, offered 8 - 1 = 7, abandoned 2 (c4, c6), abandon rate 2/7,
ASA (10 + 30 + 5 + 20 + 8) / 5 = 14.6 s, service level: answered within 20 s (c1, c5, c7, c8)
= 4 / (5 answered + 1 abandoned after 20 s) = 2/3, AHT over the 4 handled:
(330 + 180 + 220 + 140) / 4 = 217.5 s. Ann: 3 calls, 560 s talk, AHT (330 + 220) / 2 = 275;
Bob: 2 calls, 220 s talk, AHT 160. By reason: complaint 2, refund 1, replacement 1.
Hour 9: offered 3, abandon rate 1/3, ASA 20, SL 1/3, AHT 255. Hour 10: offered 4, rate 1/4,
ASA 11, SL 1, AHT 180.
"""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from services.callrouting.inbound import call_report, callbacks, domain, service
from services.callrouting.inbound.call_report import CallRow, Counts
from services.callrouting.inbound.callbacks import CallbackIn
from services.callrouting.inbound.service import InboundConfig
from shared.unit_of_work import UnitOfWork
from tests.callrouting.inbound_support import add_agents, inbound_app

CONFIG = InboundConfig()
DAY = datetime(2026, 11, 23, tzinfo=UTC)

# (call, entered, waited, outcome, agent, talk, wrap-up, reason)
FIXTURE = [
    ("c1", (9, 0, 0), 10, "answered", "ann", 300, 30, "complaint"),
    ("c2", (9, 10, 0), 30, "answered", "bob", 120, 60, "refund"),
    ("c3", (9, 20, 0), 3, "abandoned", None, None, None, None),
    ("c4", (9, 30, 0), 40, "abandoned", None, None, None, None),
    ("c5", (10, 0, 0), 5, "answered", "ann", 200, 20, "complaint"),
    ("c6", (10, 15, 0), 12, "abandoned", None, None, None, None),
    ("c7", (10, 20, 0), 20, "answered", "bob", 100, 40, "replacement"),
    ("c8", (10, 40, 0), 8, "answered", "ann", 60, None, None),
]

EXPECTED_TOTALS = {
    "entered": 8,
    "offered": 7,
    "answered": 5,
    "abandoned": 2,
    "short_abandoned": 1,
    "timed_out": 0,
    "abandon_rate": pytest.approx(2 / 7),
    "asa_seconds": pytest.approx(14.6),
    "service_level": pytest.approx(2 / 3),
    "handled": 4,
    "aht_seconds": pytest.approx(217.5),
}
EXPECTED_HOURS = {
    9: {
        "offered": 3,
        "abandon_rate": pytest.approx(1 / 3),
        "asa_seconds": 20,
        "service_level": pytest.approx(1 / 3),
        "aht_seconds": 255,
    },
    10: {"offered": 4, "abandon_rate": 0.25, "asa_seconds": 11, "service_level": 1.0, "aht_seconds": 180},
}
EXPECTED_AGENTS = [
    {"agent_id": "ann", "calls": 3, "talk_seconds": 560, "handled": 2, "aht_seconds": 275},
    {"agent_id": "bob", "calls": 2, "talk_seconds": 220, "handled": 2, "aht_seconds": 160},
]


def rows_by_hand():
    for _, (hour, _, _), waited, outcome, agent, talk, wrap, reason in FIXTURE:
        result = outcome if outcome == "answered" else ("short_abandon" if waited < 5 else "abandoned")
        yield CallRow(hour, result, waited, talk, wrap, handled=wrap is not None, agent_id=agent, reason=reason)


def test_the_formulas_give_the_hand_computed_figures():
    counts = Counts.of(rows_by_hand())
    assert call_report.figures(counts) == EXPECTED_TOTALS
    hours = {}
    for row in rows_by_hand():
        hours[row.hour] = hours.get(row.hour, Counts()) + Counts.of([row])
    for hour, expected in EXPECTED_HOURS.items():
        assert {key: call_report.figures(hours[hour])[key] for key in expected} == expected


def test_a_ratio_with_nothing_to_divide_by_is_null():
    assert call_report.figures(Counts()) | {} == {
        "entered": 0,
        "offered": 0,
        "answered": 0,
        "abandoned": 0,
        "short_abandoned": 0,
        "timed_out": 0,
        "abandon_rate": None,
        "asa_seconds": None,
        "service_level": None,
        "handled": 0,
        "aht_seconds": None,
    }


def test_who_took_the_most_calls_ties_broken_by_lower_aht():
    def agent(calls, handle_seconds):
        return Counts(answered=calls, handled=calls, handle_seconds=handle_seconds)

    ranked = call_report.rank_agents({"slow": agent(4, 4 * 300), "quick": agent(4, 4 * 200), "few": agent(2, 100)})
    assert [row["agent_id"] for row in ranked] == ["quick", "slow", "few"]


def test_a_queue_timeout_is_offered_but_neither_answered_nor_abandoned():
    figures = call_report.figures(Counts.of([CallRow(9, "timeout", 600), CallRow(9, "answered", 10)]))
    assert (figures["offered"], figures["timed_out"], figures["abandon_rate"], figures["service_level"]) == (2, 1, 0, 1)


def play_fixture_day(database):
    """Each call through the service layer as the phone system and the agents would make it, on the
    phone system's clock (``now`` = the call's own times, so wrap-up lasts exactly as long as listed)."""
    add_agents(database, "ann", "bob")
    with UnitOfWork(database, "callrouting") as uow:
        service.put_queue(uow, "default", {"wrap_up_seconds": 120})  # every wrap-up below ends in time
    for call_id, (hour, minute, second), waited, outcome, agent, talk, wrap, reason in FIXTURE:
        entered = DAY.replace(hour=hour, minute=minute, second=second)
        with UnitOfWork(database, "callrouting") as uow:
            for name in ("ann", "bob"):  # only the agent who will answer is free, so the call rings them
                service.set_agent_state(uow, name, "available" if name == agent else "on_break", CONFIG, now=entered)
        with UnitOfWork(database, "callrouting") as uow:
            decision = service.start_call(
                uow,
                call_id=call_id,
                source="json",
                from_raw=None,
                to_raw=None,
                queue=None,
                at=entered,
                config=CONFIG,
                now=entered,
            )
        assert [offer.agent_id for offer in decision.offers] == ([agent] if agent else [])
        answered = entered + timedelta(seconds=waited)
        if outcome == "abandoned":
            callback(database, call_id, 1, domain.CALLER_LEFT, answered, explicit_abandon=True)
            continue
        ended = answered + timedelta(seconds=talk)
        callback(database, call_id, 1, domain.CONNECTED, answered, agent_id=agent)
        callback(database, call_id, 2, domain.TALK_ENDED, ended, agent_id=agent)
        if wrap is not None:
            with UnitOfWork(database, "callrouting") as uow:
                callbacks.wrap_up(
                    uow,
                    call_id,
                    reason=reason,
                    notes=None,
                    ticket_id=None,
                    config=CONFIG,
                    now=ended + timedelta(seconds=wrap),
                )


def callback(database, call_id, sequence, kind, at, **fields):
    with UnitOfWork(database, "callrouting") as uow:
        callbacks.apply_callback(
            uow,
            CallbackIn(
                call_id=call_id, record_call_id=call_id, source="json", kind=kind, at=at, sequence=sequence, **fields
            ),
            CONFIG,
            now=at,
        )


@pytest.fixture
def fixture_day(settings_factory):
    _, client, database = inbound_app(settings_factory)
    play_fixture_day(database)
    return client


def test_the_daily_report_of_the_fixture_day_matches_the_hand_computed_figures(fixture_day):
    response = fixture_day.get("/reports/daily?date=2026-11-23")
    assert response.status_code == 200
    report = response.get_json()
    assert report["totals"] == EXPECTED_TOTALS
    hours = {row["hour"]: row for row in report["hours"]}
    assert sorted(hours) == [9, 10]
    for hour, expected in EXPECTED_HOURS.items():
        assert {key: hours[hour][key] for key in expected} == expected
    assert report["agents"] == EXPECTED_AGENTS
    assert report["top_agent"] == "ann"
    assert report["reasons"] == {
        "complaint": 2,
        "quality_issue": 0,
        "replacement": 1,
        "refund": 1,
        "question": 0,
        "technical_support": 0,
        "registration": 0,
        "other": 0,
        "none": 0,
    }


def test_the_report_of_another_day_or_queue_is_empty(fixture_day):
    assert fixture_day.get("/reports/daily?date=2026-11-24").get_json()["totals"]["entered"] == 0
    assert fixture_day.get("/reports/daily?date=2026-11-23&queue=sales").get_json()["totals"]["entered"] == 0
    assert fixture_day.get("/reports/daily?date=2026-11-23&queue=default").get_json()["totals"]["entered"] == 8


def test_the_csv_export_has_one_row_per_hour_and_a_total(fixture_day):
    response = fixture_day.get("/reports/daily?date=2026-11-23&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["hour"] for row in rows] == ["9", "10", "total"]
    assert (rows[-1]["offered"], rows[-1]["answered"], float(rows[-1]["aht_seconds"])) == ("7", "5", 217.5)
    agents = fixture_day.get("/reports/daily?date=2026-11-23&format=csv&part=agents").get_data(as_text=True)
    assert agents.splitlines()[:2] == ["agent_id,calls,talk_seconds,handled,aht_seconds", "ann,3,560.0,2,275.0"]
    reasons = list(
        csv.reader(
            io.StringIO(
                fixture_day.get("/reports/daily?date=2026-11-23&format=csv&part=reasons").get_data(as_text=True)
            )
        )
    )
    assert ["complaint", "2"] in reasons


@pytest.mark.parametrize(
    "query", ["", "?date=23.11.2026", "?date=2026-11-23&format=pdf", "?date=2026-11-23&part=everything"]
)
def test_a_bad_report_query_is_a_422_naming_the_parameter(fixture_day, query):
    response = fixture_day.get(f"/reports/daily{query}")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
