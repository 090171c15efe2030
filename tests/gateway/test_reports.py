"""The supervisor's daily report through the gateway: real calls (the signed JSON webhook), tickets
and surveys put into the real services, joined into one page, as JSON and as CSV; partial when a
service is stopped or too slow."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.surveys.domain import DEFAULT_TEMPLATE_ID
from shared.problems import PROBLEM_JSON
from shared.webhooks import sign_json
from tests.gateway.test_front import ANSWERS, PHONE_ENV, WEBHOOK_SECRET


@pytest.fixture(autouse=True)
def phone_env(monkeypatch):
    for name, value in PHONE_ENV.items():
        monkeypatch.setenv(name, value)


def phone_event(client, event: str, call_id: str, sequence: int, at: datetime, **fields):
    raw = json.dumps({"event": event, "call_id": call_id, "sequence": sequence, "timestamp": at.isoformat(), **fields})
    headers = {"Content-Type": "application/json", "X-Signature": sign_json(WEBHOOK_SECRET, raw.encode())}
    answer = client.post("/webhooks/events", data=raw, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


@pytest.fixture
def day_of_work(stack):
    """Today: two calls (one answered by ann and wrapped up as a refund, one abandoned), a replacement
    and a refund ticket, two complete surveys. Returns (stack, the day, supervisor headers)."""
    client = stack.client
    supervisor, ann = stack.bearer("sue", "supervisor"), stack.bearer("ann", "agent")
    now = datetime.now(UTC).replace(microsecond=0)
    start = max(now - timedelta(minutes=5), now.replace(hour=0, minute=0, second=0))
    registered = client.post("/api/callrouting/agents", json={"id": "ann", "name": "Ann"}, headers=supervisor)
    assert registered.status_code == 200, registered.get_json()
    assert client.put("/api/callrouting/agents/ann/state", json={"state": "available"}, headers=ann).status_code == 200

    assert phone_event(client, "call.ringing", "R1", 0, start, **{"from": "+14155550100"})["action"] == "dial"
    phone_event(client, "call.answered", "R1", 1, start + timedelta(seconds=4), agent_id="ann")
    phone_event(client, "call.ended", "R1", 2, start + timedelta(seconds=64), agent_id="ann")
    wrapped = client.post("/api/callrouting/calls/R1/wrap-up", json={"reason": "refund"}, headers=ann)
    assert wrapped.status_code == 200, wrapped.get_json()
    phone_event(client, "call.ringing", "R2", 0, start + timedelta(seconds=100), **{"from": "+14155550101"})
    phone_event(client, "call.abandoned", "R2", 1, start + timedelta(seconds=130))

    for category in ("replacement", "refund"):
        ticket = {"subject": f"A {category}", "category": category}
        assert client.post("/api/tickets/tickets", json=ticket, headers=ann).status_code == 201
    for _ in range(2):
        survey = {"customer_id": str(uuid.uuid4()), "agent_id": "ann", "answers": ANSWERS}
        assert client.post("/api/surveys/responses", json=survey, headers=ann).status_code == 201
    return stack, start.date(), supervisor


def test_the_daily_report_joins_calls_agents_reasons_tickets_and_surveys_of_the_day(day_of_work):
    stack, day, supervisor = day_of_work
    answer = stack.client.get(f"/api/reports/daily?date={day}&min_n=1", headers=supervisor)
    assert answer.status_code == 200, answer.get_json()
    page = answer.get_json()
    assert (page["date"], page["partial"], page["missing"]) == (day.isoformat(), False, {})
    totals = page["calls"]["totals"]
    assert (totals["entered"], totals["offered"], totals["answered"], totals["abandoned"]) == (2, 2, 1, 1)
    assert totals["abandon_rate"] == 0.5 and totals["asa_seconds"] == 4 and totals["handled"] == 1
    assert sum(hour["entered"] for hour in page["calls"]["hours"]) == 2
    assert page["calls"]["top_agent"] == "ann" and page["calls"]["agents"][0]["calls"] == 1
    assert page["calls"]["reasons"]["refund"] == 1
    tickets = page["tickets"]
    assert (tickets["replacements"], tickets["refunds"], tickets["opened"]["total"]) == (1, 1, 2)
    surveys = page["surveys"]
    assert surveys["responses"]["completed"] == 2
    product = {q["key"]: q for q in surveys["questions"]}["product"]
    assert product["n"] == 2 and product["mean"]["value"] == 9 and product["csat"]["value"] == 1.0
    assert {"value", "low", "high"} <= set(product["csat"])
    assert (product["template_id"], product["kind"], product["versions"]) == (DEFAULT_TEMPLATE_ID, "rating", [1])
    assert {q["key"]: q for q in surveys["questions"]}["recommend_product"]["nps"] is not None


def test_the_daily_report_as_csv_is_one_long_table_of_section_item_measure_value(day_of_work):
    stack, day, supervisor = day_of_work
    answer = stack.client.get(f"/api/reports/daily?date={day}&format=csv&min_n=1", headers=supervisor)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/csv")
    assert answer.headers["Content-Disposition"] == f'attachment; filename="daily-report-{day}.csv"'
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0] == ["section", "item", "measure", "value"]
    cells = {tuple(row[:3]): row[3] for row in rows[1:]}
    assert cells[("report", "day", "partial")] == "false"
    assert cells[("calls", "day", "answered")] == "1" and cells[("calls", "day", "abandon_rate")] == "0.5"
    assert cells[("agents", "day", "top_agent")] == "ann" and cells[("agents", "ann", "calls")] == "1"
    assert cells[("reasons", "refund", "calls")] == "1"
    assert cells[("tickets", "replacement", "opened")] == "1" and cells[("tickets", "day", "refunds")] == "1"
    # One item per template, question and kind as answered (templates sharing a key stay apart).
    product = f"product (rating, template {DEFAULT_TEMPLATE_ID})"
    assert cells[("surveys", product, "n")] == "2" and cells[("surveys", product, "mean value")] == "9.0"
    assert cells[("surveys", product, "versions")] == "1"
    assert ("surveys", f"recommend_product (recommend, template {DEFAULT_TEMPLATE_ID})", "nps low") in cells


def test_with_a_service_stopped_the_report_is_partial_and_names_it(day_of_work):
    stack, day, supervisor = day_of_work
    stack.servers["surveys"].stop()
    answer = stack.client.get(f"/api/reports/daily?date={day}", headers=supervisor)
    assert answer.status_code == 200
    page = answer.get_json()
    assert page["partial"] is True and page["missing"] == {"surveys": "unreachable"}
    assert page["surveys"] is None and page["calls"]["totals"]["answered"] == 1 and page["tickets"]["refunds"] == 1
    rows = list(
        csv.reader(
            io.StringIO(
                stack.client.get(f"/api/reports/daily?date={day}&format=csv", headers=supervisor).get_data(as_text=True)
            )
        )
    )
    assert ["missing", "surveys", "reason", "unreachable"] in rows


def test_a_slow_service_does_not_hold_the_report_past_its_deadline(stack, monkeypatch):
    # The deadline leaves the other services time to answer on a busy machine (call routing's part
    # now carries the staffing figures too); the slow one takes three times as long.
    monkeypatch.setenv("REPORT_DEADLINE_SECONDS", "1.5")
    supervisor = stack.bearer("sue", "supervisor")
    stack.servers["tickets"].delay = 4.5
    started = time.monotonic()
    answer = stack.client.get("/api/reports/daily?date=2026-11-20", headers=supervisor)
    elapsed = time.monotonic() - started
    assert answer.status_code == 200 and elapsed < 3.5, elapsed
    page = answer.get_json()
    assert page["partial"] is True and set(page["missing"]) == {"tickets"} and page["tickets"] is None
    assert page["calls"]["totals"]["entered"] == 0


def test_the_daily_report_is_for_supervisors_and_needs_a_valid_date(stack):
    refused = stack.client.get("/api/reports/daily?date=2026-11-20", headers=stack.bearer("agent-7", "agent"))
    assert refused.status_code == 403 and refused.headers["Content-Type"] == PROBLEM_JSON
    supervisor = stack.bearer("sue", "supervisor")
    for query in ("", "?date=20-11-2026", "?date=2026-11-20&format=xls", "?date=2026-11-20&min_n=0"):
        invalid = stack.client.get(f"/api/reports/daily{query}", headers=supervisor)
        assert invalid.status_code == 422 and invalid.headers["Content-Type"] == PROBLEM_JSON, query
