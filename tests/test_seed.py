"""Demo data (``make seed``): one deterministic month in every service's database, written once,
and read back by the services' own reports through the gateway as a supervisor would."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from sqlalchemy import func, select

from services.callrouting.models import Agent, AgentRouting, Call, CallAttempt, CallEntry, Campaign, DoNotCall
from services.callrouting.models import CustomerReplica as CallroutingReplica
from services.gateway.models import CustomerReplica as GatewayReplica
from services.gateway.models import UserAccount
from services.gateway.users import password_matches
from services.seed import seed_all
from services.seed.plan import build_world
from services.surveys.models import CustomerReplica as SurveysReplica
from services.surveys.models import SurveyContact, SurveyPurchase, SurveyResponse
from services.tickets.models import Customer, Purchase, Ticket, TicketComment
from shared.backbone import outbox
from shared.event_catalog import TICKET_CATEGORIES
from tests.gateway.conftest import stack  # noqa: F401  (the real services behind a gateway)

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)  # a Tuesday
SEED = 7


def count(database, what, *where) -> int:
    with database.read_sessions() as session:
        return session.scalar(select(func.count()).select_from(what).where(*where))


def test_the_same_seed_draws_the_same_world_and_another_seed_another():
    first, again, other = build_world(SEED, NOW), build_world(SEED, NOW), build_world(SEED + 1, NOW)
    assert [c.id for c in first.customers] == [c.id for c in again.customers]
    assert [(c.call_id, c.result, c.wait_seconds) for c in first.calls] == [
        (c.call_id, c.result, c.wait_seconds) for c in again.calls
    ]
    assert [(t.id, t.status, t.number) for t in first.tickets] == [(t.id, t.status, t.number) for t in again.tickets]
    assert [r.answers for r in first.responses] == [r.answers for r in again.responses]
    assert {c.id for c in first.customers}.isdisjoint(c.id for c in other.customers)
    assert [c.name for c in first.customers] != [c.name for c in other.customers]


def test_the_world_has_what_a_month_of_a_call_centre_has():
    world = build_world(SEED, NOW)
    assert len(world.customers) == 300
    assert {c.segment for c in world.customers} == {"A", "B", "C"}
    regions = {phonenumbers.region_code_for_number(phonenumbers.parse(c.phone)) for c in world.customers if c.phone}
    assert regions == {"US", "GB", "DE", "FR"}
    assert len({n for c in world.customers for n in c.phones}) == sum(len(c.phones) for c in world.customers)
    assert {t.category for t in world.tickets} == set(TICKET_CATEGORIES)
    assert {t.status for t in world.tickets} == {"new", "open", "pending", "resolved", "closed"}
    results = Counter(call.result for call in world.calls)
    assert results["answered"] > 10 * results["abandoned"] > 0 and results["short_abandon"] > 0
    days = {call.enqueued_at.date() for call in world.calls}
    assert min(days) == NOW.date() - timedelta(days=30) and max(days) == NOW.date()
    assert {call.enqueued_at.hour for call in world.calls} == set(range(7, 20))
    assert all(call.enqueued_at < NOW for call in world.calls)
    assert {r.channel for r in world.responses} == {"agent", "keypad", "link"}
    completed = Counter(r.completed_at.date() for r in world.responses if r.completed_at)
    full_days = [NOW.date() - timedelta(days=n) for n in range(1, 31)]
    assert min(completed[day] for day in full_days) >= 30, "every day has enough answers for its NPS (SURVEY_MIN_N)"
    low = {t.survey_response_id for t in world.tickets if t.category == "service_recovery"}
    assert low and all(min(r.answers.values()) <= 6 for r in world.responses if r.id in low)
    assert {a.outcome for e in world.entries for a in e.attempts} >= {"reached", "no_answer", "do_not_call"}


def seed(stack, out=None):  # noqa: F811
    # Each service's step gets only that service's own settings (its own database).
    return seed_all(stack.settings, seed=SEED, now=NOW, out=out or io.StringIO())


@pytest.mark.db
def test_seeding_fills_every_database_once_and_a_second_run_adds_nothing(stack):  # noqa: F811
    out = io.StringIO()
    world, written, staff = seed(stack, out)
    assert written == {"tickets": True, "callrouting": True, "surveys": True, "gateway": True}
    tickets, callrouting, surveys = (stack.databases[name] for name in ("tickets", "callrouting", "surveys"))
    gateway = stack.gateway_database

    def counts():
        return {
            "customers": count(tickets, Customer),
            "purchases": count(tickets, Purchase),
            "tickets": count(tickets, Ticket),
            "comments": count(tickets, TicketComment),
            "calls": count(callrouting, Call),
            "entries": count(callrouting, CallEntry),
            "attempts": count(callrouting, CallAttempt),
            "agents": count(callrouting, Agent),
            "responses": count(surveys, SurveyResponse),
            "survey purchases": count(surveys, SurveyPurchase),
            "survey contacts": count(surveys, SurveyContact),
            "replicas": [
                count(db, model)
                for db, model in (
                    (callrouting, CallroutingReplica),
                    (surveys, SurveysReplica),
                    (gateway, GatewayReplica),
                )
            ],
            "users": count(gateway, UserAccount),
            "outbox": [count(db, outbox) for db in (tickets, callrouting, surveys, gateway)],
        }

    first = counts()
    assert first == {
        "customers": 300,
        "purchases": len(world.purchases),
        "tickets": len(world.tickets),
        "comments": sum(len(t.comments) for t in world.tickets),
        "calls": len(world.calls),
        "entries": len(world.entries),
        "attempts": sum(len(e.attempts) for e in world.entries),
        "agents": 6,
        "responses": len(world.responses),
        "survey purchases": len(world.purchases),
        "survey contacts": sum(len(e.attempts) for e in world.entries),
        "replicas": [300, 300, 300],
        "users": 9,  # the first admin, two supervisors, six agents
        "outbox": [0, 0, 0, 0],  # history is not news: nothing for the relays to announce
    }
    # Each new user's password was handed out once, and it is theirs.
    assert sorted(role for _id, _name, role, password in staff if password) == ["agent"] * 6 + ["supervisor"] * 2
    assert "first admin: admin / " in out.getvalue()
    agent_id, _name, _role, password = next(user for user in staff if user[2] == "agent")
    with gateway.read_sessions() as session:
        assert password_matches(session.get(UserAccount, agent_id).password_hash, password)
    # The agents' counters of today are the calls they took today.
    with callrouting.read_sessions() as session:
        row = session.get(AgentRouting, agent_id)
    taken = [c for c in world.calls if c.agent_id == agent_id and c.ended_at.date() == NOW.date()]
    assert (row.stats_day, row.calls_today) == (NOW.date().isoformat(), len(taken)) and taken
    # A customer without consent to calls is on call routing's do-not-call list.
    refusing = next(c for c in world.customers if c.do_not_call)
    assert count(callrouting, DoNotCall, DoNotCall.customer_id == refusing.id) >= 1
    # The re-surveys after service recovery go to a call list whose survey link follows by e-mail.
    with callrouting.read_sessions() as session:
        lists = {row.purpose: row.survey_delivery for row in session.scalars(select(Campaign))}
    assert lists == {"post_purchase": "on_call", "resurvey": "link_by_email"}

    again_out = io.StringIO()
    _world, written_again, staff_again = seed(stack, again_out)
    assert written_again == {"tickets": False, "callrouting": False, "surveys": False, "gateway": False}
    assert all(password is None for *_rest, password in staff_again), "existing users keep their passwords"
    assert counts() == first
    assert "already there" in again_out.getvalue()


@pytest.mark.db
def test_a_seeded_day_reads_as_a_day_in_the_report_and_a_customer_is_one_customer_everywhere(stack):  # noqa: F811
    world, _written, _staff = seed(stack)
    day = (NOW - timedelta(days=7)).date()  # a Tuesday, in full
    supervisor = stack.bearer("sup-report", "supervisor")
    answer = stack.client.get(f"/api/reports/daily?date={day}", headers=supervisor)
    assert answer.status_code == 200, answer.get_json()
    report = answer.get_json()
    assert report["partial"] is False, report["missing"]

    calls = [call for call in world.calls if call.enqueued_at.date() == day]
    results = Counter(call.result for call in calls)
    totals = report["calls"]["totals"]
    assert (totals["entered"], totals["answered"], totals["abandoned"], totals["short_abandoned"]) == (
        len(calls),
        results["answered"],
        results["abandoned"],
        results["short_abandon"],
    )
    assert totals["abandoned"] > 0 and 0 < totals["abandon_rate"] < 0.3
    assert 0 < totals["service_level"] < 1 and totals["asa_seconds"] > 0 and totals["aht_seconds"] > 60
    assert len(report["calls"]["hours"]) == 13
    reasons = report["calls"]["reasons"]
    assert sum(reasons.values()) == results["answered"] and reasons["none"] == 0
    assert Counter({r: n for r, n in reasons.items() if n}) == Counter(c.reason for c in calls if c.reason)
    assert report["calls"]["top_agent"] in {call.agent_id for call in calls}

    opened = [t for t in world.tickets if t.created_at.date() == day]
    by_category = report["tickets"]["opened"]["by_category"]
    assert {c: n for c, n in by_category.items() if n} == dict(Counter(t.category for t in opened))
    assert report["tickets"]["replacements"] == by_category["replacement"] > 0
    assert report["tickets"]["refunds"] == by_category["refund"] > 0
    assert by_category["service_recovery"] > 0
    assert report["tickets"]["resolved"] > 0 and report["tickets"]["backlog"] > 0
    sla = report["tickets"]["sla"]
    assert 0 < sla["first_response"]["met"] <= sla["first_response"]["judged"]

    # staffing: the agents' state history says who worked; next week's same day is a forecast from the month
    staffing = report["staffing"]
    assert staffing["totals"]["calls"] == len(calls) - results["short_abandon"]
    assert staffing["totals"]["agent_hours_staffed"] > 1 and staffing["totals"]["peak_agents_required"] > 0
    assert {agent["agent_id"] for agent in staffing["agents"]} >= {c.agent_id for c in calls if c.agent_id}
    # the seeded month's last day has the forecast of its weekday beside the actual figures
    latest = stack.client.get(f"/api/callrouting/reports/staffing?date={NOW.date()}", headers=supervisor).get_json()
    assert len(latest["forecast"]["days_used"]) >= 3 and latest["forecast"]["mape_percent"] is not None, latest[
        "forecast"
    ]
    assert sum(row["forecast_calls"] for row in latest["intervals"]) > 50  # a weekday has ~100 calls

    completed = [r for r in world.responses if r.completed_at and r.completed_at.date() == day]
    surveys = report["surveys"]
    assert surveys["responses"]["completed"] == len(completed) >= 30
    (store,) = [q for q in surveys["questions"] if q["key"] == "recommend_store"]
    nps = store["nps"]
    assert nps is not None and -100 <= nps["value"] <= 100, store
    assert surveys["contacts"], "the follow-up calls of the day count for the response rate"

    # A customer is the same customer in every service, and their view has their calls and tickets.
    ticket = next(t for t in world.tickets if t.call_id and t.customer_id)
    customer = next(c for c in world.customers if c.id == ticket.customer_id)
    admin = stack.bearer("admin-seed", "admin")
    for path in (
        f"/api/tickets/customers/{customer.id}",
        f"/api/callrouting/customers/{customer.id}",
        f"/api/surveys/customers/{customer.id}",
        f"/customers/{customer.id}",
    ):
        answer = stack.client.get(path, headers=admin)
        assert answer.status_code == 200, (path, answer.get_json())
        assert (answer.get_json()["name"], answer.get_json()["phone"]) == (customer.name, customer.phone), path
    found = stack.client.get(f"/api/customers/lookup?phone={customer.phone.replace('+', '%2B')}", headers=admin)
    assert found.status_code == 200, found.get_json()
    view = stack.client.get(f"/api/customers/{customer.id}/view", headers=admin)
    assert view.status_code == 200, view.get_json()
    assert view.get_json()["partial"] is False
    assert ticket.id in str(view.get_json()), "the customer view shows the ticket opened during their call"
    assert ticket.call_id in str(view.get_json()), "and the call"
