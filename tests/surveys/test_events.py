"""What the surveys service does with the events it consumes (handlers run as the consumer runs them)."""

import uuid

from sqlalchemy import select

from services.surveys.events import HANDLERS
from services.surveys.models import SurveyResponse
from shared import event_catalog
from shared.consumer import apply_once
from shared.events import Envelope
from tests.surveys.conftest import figure_of, response_body
from tests.surveys.test_api import published


def deliver(database, event_type, data) -> Envelope:
    envelope = Envelope(type=event_type, data=data, source="test").validate()
    assert apply_once(database, "surveys", HANDLERS[event_type], envelope) == "applied"
    return envelope


def contact(outcome, *, entry_id=None, attempt=1, agent_id="agent-1", campaign_id=None, purchase_id=None):
    return {
        "entry_id": entry_id or str(uuid.uuid4()),
        "campaign_id": campaign_id or str(uuid.uuid4()),
        "campaign_purpose": "post_purchase",
        "customer_id": str(uuid.uuid4()),
        "purchase_id": purchase_id,
        "agent_id": agent_id,
        "attempt": attempt,
        "outcome": outcome,
        "offer_accepted": None,
        "entry_state": "completed" if outcome == "reached" else "pending",
        "started_at": None,
        "ended_at": "2026-11-24T10:00:00Z",
    }


def test_the_handlers_are_exactly_what_the_catalog_routes_here():
    assert sorted(HANDLERS) == event_catalog.consumed_by("surveys")
    assert sorted(HANDLERS) == [
        "callentry.completed",
        "customer.created",
        "customer.erased",
        "customer.merged",
        "customer.updated",
        "purchase.recorded",
        "ticket.resolved",
    ]


def test_reached_customers_make_the_response_rate_and_no_contact_and_refusals_are_apart(client, database):
    campaign_id = str(uuid.uuid4())
    reached = [contact("reached", campaign_id=campaign_id) for _ in range(4)]
    for data in reached:
        deliver(database, "callentry.completed", data)
    deliver(database, "callentry.completed", reached[0])  # the same attempt again, as a new event
    for outcome in ("no_answer", "busy", "do_not_call", "callback_requested"):
        deliver(database, "callentry.completed", contact(outcome, campaign_id=campaign_id))
    # Surveys taken on two of the reached entries: agent, campaign come from the entry.
    for data in reached[:2]:
        body = response_body(entry_id=data["entry_id"], agent_id="agent-1")
        body["call_id"] = None
        assert client.post("/responses", json=body).status_code == 201
    groups = client.get("/survey-metrics?from=2026-11-24&group_by=campaign&min_n=1").json["groups"]
    (group,) = [g for g in groups if g["campaign"] == campaign_id]
    assert group["contacts"] == {"reached": 4, "no_contact": 2, "refused": 1, "callback_requested": 1}
    assert group["responses"]["completed"] == 2
    assert group["response_rate"]["value"] == 0.5
    withheld = client.get("/survey-metrics?from=2026-11-24").json["groups"][0]["response_rate"]
    assert withheld["withheld"] and withheld["value"] is None  # 4 reached < 30


def test_a_merge_moves_the_duplicate_s_responses_to_the_survivor(client, database):
    duplicate, survivor = str(uuid.uuid4()), str(uuid.uuid4())
    for customer_id in (duplicate, survivor):
        deliver(database, "customer.created", {"customer_id": customer_id, "name": "Ada"})
    client.post("/responses", json=response_body(customer_id=duplicate))
    deliver(database, "customer.merged", {"merged_customer_id": duplicate, "into_customer_id": survivor})
    with database.engine.connect() as connection:
        owners = connection.execute(select(SurveyResponse.customer_id)).scalars().all()
    assert owners == [survivor]
    assert len(client.get(f"/customers/{duplicate}/surveys").json["recent"]) == 1  # the old id redirects
    later = client.post("/responses", json=response_body(customer_id=duplicate))
    assert later.json["customer_id"] == survivor


def test_a_purchase_arriving_after_its_response_gives_the_response_its_product(client, database):
    purchase_id = str(uuid.uuid4())
    response = client.post("/responses", json=response_body(purchase_id=purchase_id)).json
    assert response["product"] is None
    deliver(
        database,
        "purchase.recorded",
        {
            "purchase_id": purchase_id,
            "customer_id": response["customer_id"],
            "sku": "KX-1",
            "product": "Kettle X1",
            "amount": "49.90",
            "currency": "EUR",
            "purchased_at": "2026-10-24T09:00:00Z",
            "source": "webshop",
            "order_ref": "A-1",
        },
    )
    groups = client.get("/survey-metrics?group_by=product&min_n=1").json["groups"]
    assert [(g["product"], figure_of(g, "product")["n"], g["responses"]["completed"]) for g in groups] == [
        ("Kettle X1", 1, 1)
    ]


def test_a_resolved_ticket_without_a_survey_requests_nothing(database):
    deliver(
        database,
        "ticket.resolved",
        {
            "ticket_id": str(uuid.uuid4()),
            "customer_id": str(uuid.uuid4()),
            "category": "complaint",
            "priority": "normal",
            "assignee_id": None,
            "call_id": None,
            "survey_response_id": None,
            "resolved_at": "2026-11-24T10:00:00Z",
            "within_sla": None,
        },
    )
    assert published(database) == []
