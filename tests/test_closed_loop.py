"""The closed loop across the three services, through the real broker (product brief §3):

purchase → follow-up entry → the agent reaches the customer → a low 1-10 score →
a service-recovery ticket → resolved → a re-survey is put on the call list.

Each service runs as in production: its app (test client), its outbox relay and its
consumer, each with its own database; they meet only through RabbitMQ.
"""

import importlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.auth import signed_as, signed_client
from tests.support.services import Running, wait_for

SERVICES = ("tickets", "callrouting", "surveys")
ALL_DAY = {day: ["00:00", "23:59"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def loop(settings_factory):
    running = Running()
    clients = {}
    for service in SERVICES:
        settings, database = settings_factory(service)
        running.relay(database, settings)
        running.consumer(database, settings)
        clients[service] = signed_client(importlib.import_module(f"services.{service}.app").create_app(settings))
    yield clients
    running.close()


def ok(response, *statuses):
    assert response.status_code in (statuses or (200, 201)), response.get_json()
    return response.get_json()


def test_a_low_score_after_a_purchase_follow_up_opens_recovery_and_books_a_resurvey(loop):
    tickets, callrouting, surveys = loop["tickets"], loop["callrouting"], loop["surveys"]

    campaign = ok(
        callrouting.post(
            "/campaigns",
            json={"name": "Follow-up", "delay_days": 0, "calling_window": ALL_DAY, "contact_frequency_days": 0},
        )
    )
    ok(callrouting.post("/agents", json={"id": "agent-7", "name": "Grace"}))
    customer = ok(tickets.post("/customers", json={"name": "Ada Lovelace", "phones": ["+44 20 7946 0958"]}))
    wait_for(
        lambda: callrouting.get(f"/customers/{customer['id']}").status_code == 200,
        what="the customer reaching call routing",
    )

    purchased_at = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    purchase = ok(
        tickets.post(
            f"/customers/{customer['id']}/purchases",
            json={
                "sku": "KETTLE-2",
                "product": "Kettle 2",
                "amount": "49.90",
                "currency": "EUR",
                "purchased_at": purchased_at,
                "source": "webshop",
                "order_ref": f"A-{uuid.uuid4().hex[:8]}",
            },
        )
    )

    # purchase.recorded → one follow-up entry, due now (delay 0 days after a purchase yesterday)
    entries = wait_for(
        lambda: ok(callrouting.get(f"/campaigns/{campaign['id']}/entries"))["items"],
        what="the follow-up entry",
    )
    assert [(e["customer_id"], e["purchase_id"]) for e in entries] == [(customer["id"], purchase["id"])]

    handed_out = ok(callrouting.post("/agents/agent-7/next-call"))
    entry_id = handed_out["entry"]["id"]
    ok(callrouting.post(f"/entries/{entry_id}/outcome", json={"agent_id": "agent-7", "outcome": "reached"}))

    answers = {"product": 3, "service": 8, "purchase": 8, "recommend_product": 5, "recommend_store": 7}
    response = ok(
        surveys.post(
            "/responses",
            json={
                "customer_id": customer["id"],
                "channel": "agent",
                "agent_id": "agent-7",
                "entry_id": entry_id,
                "campaign_id": campaign["id"],
                "purchase_id": purchase["id"],
                "answers": answers,
            },
            headers=signed_as("agent-7"),
        )
    )

    # survey.low_score → one urgent service-recovery ticket linked to the response
    recovery = wait_for(
        lambda: ok(tickets.get(f"/tickets?customer={customer['id']}&category=service_recovery"))["items"],
        what="the service-recovery ticket",
    )
    assert len(recovery) == 1
    ticket = recovery[0]
    assert (ticket["priority"], ticket["channel"]) == ("urgent", "survey")
    assert ticket["survey_response_id"] == response["id"]
    assert ticket["resolution_due_at"] is not None

    ok(tickets.patch(f"/tickets/{ticket['id']}", json={"status": "resolved"}, headers=signed_as("agent-7")))

    # ticket.resolved → surveys requests a re-survey → call routing lists it on a resurvey campaign
    def resurvey_entries():
        found = []
        for resurvey in ok(callrouting.get("/campaigns?purpose=resurvey"))["items"]:
            found += ok(callrouting.get(f"/campaigns/{resurvey['id']}/entries"))["items"]
        return found

    resurvey = wait_for(resurvey_entries, what="the re-survey entry")
    assert [e["customer_id"] for e in resurvey] == [customer["id"]]
    # the scores reached the customer's survey history too
    history = ok(surveys.get(f"/customers/{customer['id']}/surveys"))
    assert any(r["id"] == response["id"] for r in history["recent"])
