"""Fast tests of the tickets service's use cases and event handlers, without a broker or a relay:
each runs on a collecting unit of work (``uow_factory``) over a throwaway migrated database, and
says what was announced by the envelopes it collected. The real-broker tests (test_consumers.py,
tests/test_delivery.py) prove the delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.tickets import breaches, customers, domain, events, purchases, sla, ticket_cases, views
from shared.errors import Conflict, Invalid, NotFound
from shared.events import Envelope


@pytest.fixture
def uow(uow_factory):
    """A new unit of work on the test's one tickets database at each call."""
    return lambda: uow_factory("tickets")


def published(unit) -> list[tuple[str, dict]]:
    return [(envelope.type, envelope.data) for envelope in unit.committed]


def new_customer(uow, **fields) -> str:
    with uow() as unit:
        return customers.create_customer(unit, **{"name": "Ada Lovelace", "phone": "+4915112345678", **fields}).id


def test_creating_a_customer_announces_its_whole_record(uow):
    with uow() as unit:
        customer = customers.create_customer(unit, name=" Ada ", phone="+4915112345678", email="Ada@Example.org")
    [(kind, data)] = published(unit)
    assert kind == "customer.created"
    assert (data["customer_id"], data["name"], data["email"]) == (customer.id, "Ada", "ada@example.org")
    assert (data["time_zone"], data["language"], data["segment"]) == ("Europe/Berlin", "de", "C")


def test_a_new_ticket_gets_due_times_and_announces_ticket_created(uow):
    customer_id = new_customer(uow)
    opened = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    body = {"subject": " Kettle leaks ", "category": "complaint", "priority": "urgent", "customer_id": customer_id}
    with uow() as unit:
        ticket = ticket_cases.create_ticket(unit, body, "agent-7", now=opened)
    [(kind, data)] = published(unit)
    assert kind == "ticket.created"
    assert (data["ticket_id"], data["number"], data["customer_id"]) == (ticket["id"], 1, customer_id)
    assert (data["subject"], data["created_by"], data["status"]) == ("Kettle leaks", "agent-7", "new")
    # urgent runs around the clock by default: 1 h to first response, 4 h to resolution
    assert ticket["first_response_due_at"] == opened + timedelta(hours=1)
    assert data["resolution_due_at"] == (opened + timedelta(hours=4)).isoformat()


def test_a_ticket_for_an_unknown_customer_is_invalid_and_nothing_is_announced(uow):
    with uow() as unit, pytest.raises(Invalid) as refused:
        ticket_cases.create_ticket(unit, {"subject": "S", "category": "question", "customer_id": "nobody"}, None)
    assert refused.value.errors == {"customer_id": ["No such customer."]}
    assert unit.committed == [] and unit.published == []


def test_unknown_things_are_plain_not_found_errors(uow):
    with uow() as unit:
        with pytest.raises(NotFound, match=r"No ticket nope\."):
            ticket_cases.get_ticket(unit, "nope")
        with pytest.raises(NotFound, match="No customer"):
            customers.update_customer(unit, str(uuid.uuid4()), {"name": "X"})
        with pytest.raises(NotFound, match="No customer"):
            views.customer_overview(unit, str(uuid.uuid4()))
        with pytest.raises(NotFound):
            ticket_cases.list_comments(unit, "x" * 40, 10, 0)


def test_status_moves_follow_the_state_machine_and_a_resolution_is_announced(uow):
    with uow() as unit:
        ticket = ticket_cases.create_ticket(unit, {"subject": "S", "category": "refund"}, None)
    with uow() as unit:
        ticket_cases.update_ticket(unit, ticket["id"], {"status": "resolved"}, "agent-1")
    assert [kind for kind, _ in published(unit)] == ["ticket.status_changed", "ticket.resolved"]
    assert published(unit)[1][1]["within_sla"] is True
    with uow() as unit:
        ticket_cases.update_ticket(unit, ticket["id"], {"status": "closed"}, "agent-1")
    with uow() as unit, pytest.raises(Conflict, match="closed ticket cannot be changed"):
        ticket_cases.update_ticket(unit, ticket["id"], {"subject": "Again"}, "agent-1")
    with uow() as unit, pytest.raises(Conflict, match="from closed to open"):
        ticket_cases.update_ticket(unit, ticket["id"], {"status": "open"}, "agent-1")


def test_listing_pages_with_an_honest_total(uow):
    for n in range(5):
        with uow() as unit:
            ticket_cases.create_ticket(unit, {"subject": f"T{n}", "category": "other"}, None)
    with uow() as unit:
        items, total = ticket_cases.list_tickets(unit, {}, "created_at", 2, 2)
        assert ([item["subject"] for item in items], total) == (["T2", "T3"], 5)
        assert ticket_cases.list_tickets(unit, {}, "created_at", 2, 10) == ([], 5)
        history, changes = ticket_cases.ticket_history(unit, items[0]["id"], 10, 0)
        assert (changes, history[0]["field"]) == (1, "created")


def test_a_low_score_handler_announces_its_ticket_once(uow):
    customer_id = new_customer(uow)
    event = Envelope(
        type="survey.low_score",
        source="surveys",
        data={"response_id": str(uuid.uuid4()), "customer_id": customer_id, "low_questions": ["service"]},
    )
    announced = []
    for _ in range(2):
        with uow() as unit:
            events.HANDLERS["survey.low_score"](unit, event)
            unit.commit()
        announced.append(published(unit))
    [(kind, data)], again = announced
    assert kind == "ticket.created" and again == [], "the same response twice: one ticket"
    assert (data["category"], data["priority"], data["channel"]) == ("service_recovery", "urgent", "survey")
    assert (data["customer_id"], data["survey_response_id"]) == (customer_id, event.data["response_id"])


def test_a_low_score_of_an_unknown_customer_still_opens_a_ticket_without_one(uow):
    event = Envelope(
        type="survey.low_score",
        source="surveys",
        data={"response_id": str(uuid.uuid4()), "customer_id": str(uuid.uuid4()), "low_questions": ["service"]},
    )
    with uow() as unit:
        events.HANDLERS["survey.low_score"](unit, event)
        unit.commit()
    [(kind, data)] = published(unit)
    assert kind == "ticket.created" and data["customer_id"] is None


def test_a_connected_call_is_the_first_response_of_its_ticket(uow):
    with uow() as unit:
        ticket = ticket_cases.create_ticket(unit, {"subject": "Call me", "category": "question"}, None)
    answered = datetime.now(UTC) + timedelta(minutes=1)

    def completed(ticket_id, answered_at):
        return Envelope(
            type="call.completed",
            source="callrouting",
            data={"call_id": "CA-9", "agent_id": "agent-4", "ticket_id": ticket_id, "answered_at": answered_at},
        )

    with uow() as unit:
        events.HANDLERS["call.completed"](unit, completed(ticket["id"], answered.isoformat()))
        unit.commit()
    [(kind, data)] = published(unit)
    assert (kind, data["actor_id"]) == ("ticket.updated", "agent-4")
    assert data["changes"]["first_responded_at"]["new"] == answered.isoformat()
    assert data["changes"]["call_id"] == {"old": None, "new": "CA-9"}
    an_hour_on = (answered + timedelta(hours=1)).isoformat()
    for later in (completed(ticket["id"], an_hour_on), completed("nope", an_hour_on)):
        with uow() as unit:
            events.HANDLERS["call.completed"](unit, later)
            unit.commit()
        assert published(unit) == [], "only the first connected call counts; an unknown ticket is skipped"


def test_a_purchase_moves_the_customer_up_a_segment_once_per_order(uow):
    customer_id = new_customer(uow)
    thresholds = customers.SegmentThresholds(a_min=Decimal("1000"), b_min=Decimal("250"))
    body = {
        "sku": "K",
        "product": "Kettle",
        "amount": Decimal("300.00"),
        "currency": "EUR",
        "purchased_at": datetime.now(UTC) - timedelta(days=1),
        "source": "webshop",
        "order_ref": "A-1",
    }
    with uow() as unit:
        purchase, created = purchases.record_purchase(unit, customer_id, body, thresholds)
    assert created and [kind for kind, _ in published(unit)] == ["purchase.recorded", "customer.updated"]
    assert published(unit)[1][1]["segment"] == "B"
    with uow() as unit:
        again, created = purchases.record_purchase(unit, customer_id, body, thresholds)
        assert (created, again["id"], published(unit)) == (False, purchase["id"], [])
        assert purchases.list_purchases(unit, customer_id, 10, 0)[1] == 1


def test_merging_announces_the_merge_and_the_survivors_new_record(uow):
    survivor, duplicate = new_customer(uow), new_customer(uow, phone="+4915199999999")
    with uow() as unit:
        customers.merge_customers(unit, duplicate, survivor, customers.SegmentThresholds())
    (merged, merged_data), (updated, updated_data) = published(unit)
    assert (merged, merged_data) == ("customer.merged", {"merged_customer_id": duplicate, "into_customer_id": survivor})
    assert updated == "customer.updated" and updated_data["phones"] == ["+4915112345678", "+4915199999999"]
    with uow() as unit:
        with pytest.raises(customers.Redirect):
            customers.get_customer(unit, duplicate)
        with pytest.raises(Conflict):
            customers.merge_customers(unit, duplicate, survivor, customers.SegmentThresholds())
        groups, total = customers.find_duplicates(unit, 10, 0)
        assert (groups, total) == ([], 0)


def test_a_changed_policy_applies_to_the_next_ticket_of_this_process(uow):
    with uow() as unit:
        ticket_cases.create_ticket(unit, {"subject": "S", "category": "other", "priority": "low"}, None)
    with uow() as unit:
        sla.set_sla_policy(
            unit, "low", {"first_response_minutes": 5, "resolution_minutes": 10, "business_hours": False}
        )
    opened = datetime.now(UTC)
    with uow() as unit:
        ticket = ticket_cases.create_ticket(
            unit, {"subject": "T", "category": "other", "priority": "low"}, None, opened
        )
    assert ticket["first_response_due_at"] == opened + timedelta(minutes=5)


def test_the_breach_job_announces_each_breach_once(uow):
    opened = datetime.now(UTC) - timedelta(hours=5)
    with uow() as unit:
        ticket = ticket_cases.create_ticket(
            unit, {"subject": "S", "category": "other", "priority": "urgent"}, None, opened
        )
    with uow() as unit:
        assert breaches.flag_sla_breaches(unit) == (1, 2)
    assert [(kind, data["target"]) for kind, data in published(unit)] == [
        ("ticket.sla_breached", "first_response"),
        ("ticket.sla_breached", "resolution"),
    ]
    with uow() as unit:
        assert breaches.flag_sla_breaches(unit) == (0, 0)
        assert ticket_cases.get_ticket(unit, ticket["id"])["breached"] is True


def test_the_overview_answers_rfc3339_utc_with_z():
    row = type("Row", (), {})()
    for name in ("resolved_at", "first_responded_at", "first_response_breached_at", "resolution_breached_at"):
        setattr(row, name, None)
    row.status, row.breached = "open", False
    row.first_response_due_at = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    row.resolution_due_at = None
    state = domain.sla_state(row, now=datetime(2026, 12, 4, 9, 0, tzinfo=UTC))
    assert state["first_response_due_at"] == "2026-12-04T09:30:00.000000Z"
    assert (state["state"], state["breached"]) == ("running", False)
