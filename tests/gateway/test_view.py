"""The customer view against the real services: data created through their APIs, events over
the real broker, services really stopped and really slowed down."""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from services.gateway.live_hub import hub_of
from services.gateway.models import CustomerReplica
from shared.webhooks import sign_json
from tests.gateway.conftest import PHONE_WEBHOOK_SECRET
from tests.support.auth import as_user
from tests.support.services import wait_for

pytestmark = pytest.mark.db

ALWAYS = {day: ["00:00", "24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
AGENT = "agent-7"


class Service:
    """Requests to one service as the gateway signs them (for setting up data)."""

    def __init__(self, stack, name: str, user: str = "setup", role: str = "admin"):
        self.server = stack.servers[name]
        self.user, self.role = user, role

    def __call__(self, method: str, path: str, expect: int | tuple = (200, 201), **kwargs) -> dict | None:
        headers = {**as_user(self.server.app, self.user, self.role), **kwargs.pop("headers", {})}
        response = requests.request(method, self.server.url + path, headers=headers, timeout=10, **kwargs)
        expected = expect if isinstance(expect, tuple) else (expect,)
        assert response.status_code in expected, (method, path, response.status_code, response.text)
        return response.json() if response.content else None


def berlin_number() -> tuple[str, str]:
    """(E.164, the same number as a German writes it at home)."""
    local = f"{random.randrange(10**7, 10**8)}"
    return f"+4930{local}", f"030 {local[:4]} {local[4:]}"


def known_everywhere(stack, customer_id: str) -> None:
    """Wait until the customer's record has reached the replicas the view and the calls use."""
    wait_for(lambda: _replica(stack, customer_id), timeout=20, what="the gateway's customer replica")
    contacts = Service(stack, "callrouting")
    wait_for(lambda: _has(contacts, customer_id), timeout=20, what="call routing's customer replica")


def _replica(stack, customer_id):
    with stack.gateway_database.sessions() as session:
        return session.get(CustomerReplica, customer_id)


def _has(service: Service, customer_id: str) -> bool:
    return service("GET", f"/customers/{customer_id}", expect=(200, 404)).get("customer_id") == customer_id


def new_customer(stack, name: str = "Ada Lovelace") -> tuple[str, str, str]:
    """A customer created in tickets; (id, E.164 number, the number in a national format)."""
    e164, national = berlin_number()
    customer = Service(stack, "tickets")("POST", "/customers", json={"name": name, "phone": national, "region": "DE"})
    assert customer["phone"] == e164
    return customer["id"], e164, national


def phone_event(stack, event: str, call_id: str, sequence: int, **fields) -> dict:
    body = json.dumps(
        {"event": event, "call_id": call_id, "sequence": sequence, "timestamp": datetime.now(UTC).isoformat(), **fields}
    ).encode()
    response = requests.post(
        stack.servers["callrouting"].url + "/webhooks/events",
        data=body,
        headers={"Content-Type": "application/json", "X-Signature": sign_json(PHONE_WEBHOOK_SECRET, body)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(autouse=True)
def closed_hub(stack):
    """Views start the gateway's hub (their cache listens to the broker): closed after each test."""
    yield
    hub_of(stack.gateway).close()


@pytest.fixture
def customer(stack):
    """A customer with a purchase, three tickets (one resolved, one service-recovery case), an
    inbound call wrapped up with a reason, a follow-up call made and one still pending, and
    two surveys; everything created through the services' APIs and webhooks."""
    tickets, calls, surveys = Service(stack, "tickets"), Service(stack, "callrouting"), Service(stack, "surveys")
    customer_id, e164, national = new_customer(stack)
    purchase = tickets(
        "POST",
        f"/customers/{customer_id}/purchases",
        json={
            "sku": "KT-100",
            "product": "Kettle",
            "amount": "49.90",
            "currency": "EUR",
            "purchased_at": datetime.now(UTC).isoformat(),
            "source": "webshop",
            "order_ref": f"O-{uuid.uuid4().hex[:8]}",
        },
    )
    question = tickets("POST", "/tickets", json={"subject": "Lid?", "category": "question", "customer_id": customer_id})
    done = tickets("POST", "/tickets", json={"subject": "Descaling", "category": "other", "customer_id": customer_id})
    tickets("PATCH", f"/tickets/{done['id']}", json={"status": "resolved"})
    recovery = tickets(
        "POST",
        "/tickets",
        json={"subject": "Unhappy", "category": "service_recovery", "priority": "urgent", "customer_id": customer_id},
    )
    known_everywhere(stack, customer_id)
    wait_for(lambda: _has(surveys, customer_id), timeout=20, what="the surveys' customer replica")

    # an inbound call from the customer's number, answered by agent-7 and wrapped up with a reason
    calls("POST", "/agents", json={"id": AGENT, "name": "Agent Seven"})
    calls("PUT", f"/agents/{AGENT}/state", json={"state": "available"})
    call_id = f"CA{uuid.uuid4().hex}"
    ringing = phone_event(stack, "call.ringing", call_id, 0, **{"from": e164, "to": "+4930999999"})
    assert ringing["customer_id"] == customer_id
    phone_event(stack, "call.answered", call_id, 1, agent_id=AGENT)
    phone_event(stack, "call.ended", call_id, 2, agent_id=AGENT)
    calls("POST", f"/calls/{call_id}/wrap-up", json={"reason": "complaint", "notes": "lid leaks"})

    # a follow-up call made (reached) and another one due tomorrow
    campaign = calls("POST", "/campaigns", json={"name": "Kettle follow-up", "calling_window": ALWAYS})
    made = calls("POST", f"/campaigns/{campaign['id']}/entries", json={"customer_id": customer_id})
    # added before the call: once spoken to, the contact-frequency rule keeps new entries off
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    pending = calls(
        "POST", f"/campaigns/{campaign['id']}/entries", json={"customer_id": customer_id, "due_at": tomorrow}
    )
    handed = calls("POST", f"/agents/{AGENT}/next-call")
    assert handed["entry"]["id"] == made["id"]
    calls(
        "POST",
        f"/entries/{made['id']}/outcome",
        json={"agent_id": AGENT, "outcome": "reached", "notes": "happy now"},
    )

    first = surveys(
        "POST",
        "/responses",
        json={"customer_id": customer_id, "agent_id": AGENT, "answers": answers(7)},
    )
    latest = surveys(
        "POST",
        "/responses",
        json={"customer_id": customer_id, "agent_id": AGENT, "answers": answers(9)},
    )
    return {
        "id": customer_id,
        "e164": e164,
        "national": national,
        "purchase": purchase,
        "tickets": {"question": question, "done": done, "recovery": recovery},
        "call_id": call_id,
        "attempt_entry": made["id"],
        "pending_entry": pending["id"],
        "surveys": [first["id"], latest["id"]],
    }


def answers(score: int) -> dict:
    """Every question of the default template answered with ``score`` (7 and up: no low score)."""
    return dict.fromkeys(("product", "service", "purchase", "recommend_product", "recommend_store"), score)


def view(stack, customer_id: str, headers=None):
    return stack.client.get(f"/api/customers/{customer_id}/view", headers=headers or stack.bearer(AGENT))


# --- the whole view ---------------------------------------------------------------------------


def test_the_view_holds_every_part_from_every_service(stack, customer):
    response = view(stack, customer["id"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["partial"] is False and body["missing"] == {}
    assert body["customer_id"] == customer["id"] and body["merged_from"] is None
    assert body["profile"]["name"] == "Ada Lovelace" and body["profile"]["phones"] == [customer["e164"]]
    assert body["segment"] == body["profile"]["segment"] == "C"

    assert body["purchases"]["total"] == 1 and body["purchases"]["items"][0]["id"] == customer["purchase"]["id"]
    tickets = body["tickets"]
    assert tickets["total"] == 3 and tickets["open_total"] == 2
    assert [t["id"] for t in tickets["recent"]] == [
        customer["tickets"][name]["id"] for name in ("recovery", "done", "question")
    ]
    assert {t["id"] for t in tickets["open"]} == {customer["tickets"][n]["id"] for n in ("recovery", "question")}
    recovery = body["service_recovery"]
    assert recovery["total"] == 1 and recovery["open"][0]["id"] == customer["tickets"]["recovery"]["id"]
    sla = recovery["open"][0]["sla"]
    assert sla["state"] == "running" and sla["breached"] is False
    assert sla["first_response_due_at"] == customer["tickets"]["recovery"]["first_response_due_at"]
    assert sla["resolution_due_at"] == customer["tickets"]["recovery"]["resolution_due_at"]
    resolved = next(t for t in tickets["recent"] if t["id"] == customer["tickets"]["done"]["id"])
    assert resolved["status"] == "resolved" and resolved["sla"]["state"] == "met"

    inbound = body["calls"]["inbound"]
    assert inbound["total"] == 1
    call = inbound["items"][0]
    assert (call["call_id"], call["agent_id"], call["reason"], call["notes"]) == (
        customer["call_id"],
        AGENT,
        "complaint",
        "lid leaks",
    )
    outbound = body["calls"]["outbound"]
    assert outbound["total"] == 1
    attempt = outbound["items"][0]
    assert (attempt["entry_id"], attempt["agent_id"], attempt["outcome"], attempt["campaign"]) == (
        customer["attempt_entry"],
        AGENT,
        "reached",
        "Kettle follow-up",
    )
    assert body["follow_ups"]["total"] == 1 and body["follow_ups"]["items"][0]["entry_id"] == customer["pending_entry"]
    assert body["follow_ups"]["items"][0]["state"] == "pending"

    surveys = body["surveys"]
    assert surveys["total"] == surveys["completed"] == 2
    assert [r["id"] for r in surveys["recent"]] == customer["surveys"][::-1] and surveys["recent_limit"] == 20
    assert surveys["trend"]["product"]["first"] == 7 and surveys["trend"]["product"]["latest"] == 9
    assert surveys["trend"]["product"]["change"] == 2

    # the latest contact of all: the second survey was the last thing created
    assert body["last_contact"]["kind"] == "survey" and body["last_contact"]["id"] == customer["surveys"][1]


def test_lookup_by_a_differently_formatted_number_gives_the_same_customers_view(stack, customer):
    international = "0049 30 " + customer["e164"][5:]
    for number in (international, customer["e164"]):
        response = stack.client.get(
            "/api/customers/lookup", query_string={"phone": number}, headers=stack.bearer(AGENT)
        )
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["customer_id"] == customer["id"] and body["matched_phone"] == customer["e164"]
        assert body["partial"] is False and body["tickets"]["total"] == 3
    national = stack.client.get(
        "/api/customers/lookup",
        query_string={"phone": customer["national"], "region": "DE"},
        headers=stack.bearer(AGENT),
    )
    assert national.status_code == 200 and national.get_json()["customer_id"] == customer["id"]


def test_a_number_shared_by_two_customers_is_409_with_both_named(stack):
    e164, national = berlin_number()
    tickets = Service(stack, "tickets")
    ids = [
        tickets("POST", "/customers", json={"name": name, "phones": [national], "region": "DE"})["id"]
        for name in ("Ann", "Bob")
    ]
    for customer_id in ids:
        wait_for(lambda customer_id=customer_id: _replica(stack, customer_id), timeout=20, what="replica")
    response = stack.client.get("/api/customers/lookup", query_string={"phone": e164}, headers=stack.bearer(AGENT))
    assert response.status_code == 409 and response.mimetype == "application/problem+json"
    assert {c["customer_id"] for c in response.get_json()["candidates"]} == set(ids)


def test_unknown_customer_and_unknown_number_are_404_and_a_bad_number_is_422(stack):
    unknown = view(stack, str(uuid.uuid4()))
    assert unknown.status_code == 404 and unknown.mimetype == "application/problem+json"
    e164, _ = berlin_number()
    nobody = stack.client.get("/api/customers/lookup", query_string={"phone": e164}, headers=stack.bearer(AGENT))
    assert nobody.status_code == 404 and nobody.mimetype == "application/problem+json"
    bad = stack.client.get("/api/customers/lookup", query_string={"phone": "not a number"}, headers=stack.bearer(AGENT))
    assert bad.status_code == 422 and "phone" in json.dumps(bad.get_json())
    missing = stack.client.get("/api/customers/lookup", headers=stack.bearer(AGENT))
    assert missing.status_code == 422


def test_a_merged_customer_redirects_to_the_survivors_view(stack):
    merged_id, _, _ = new_customer(stack, "Ada Duplicate")
    survivor_id, _, _ = new_customer(stack, "Ada Lovelace")
    Service(stack, "tickets", role="supervisor")("POST", f"/customers/{merged_id}/merge", json={"into": survivor_id})
    wait_for(
        lambda: (_replica(stack, merged_id) or CustomerReplica(merged_into_id=None)).merged_into_id == survivor_id,
        timeout=20,
        what="the merge to reach the gateway",
    )
    response = view(stack, merged_id)
    assert response.status_code == 308
    assert response.headers["Location"].endswith(f"/api/customers/{survivor_id}/view")
    followed = view(stack, survivor_id).get_json()
    assert followed["customer_id"] == survivor_id and len(followed["profile"]["phones"]) == 2


def test_without_authentication_the_view_and_the_lookup_are_401(stack):
    customer_id = str(uuid.uuid4())
    for path in (f"/api/customers/{customer_id}/view", "/api/customers/lookup?phone=%2B4930123456"):
        response = stack.client.get(path)
        assert response.status_code == 401 and response.mimetype == "application/problem+json"
        forged = stack.client.get(path, headers={"Authorization": "Bearer forged"})
        assert forged.status_code == 401


# --- a service down, slow, failing -------------------------------------------------------------


def test_with_surveys_stopped_the_view_is_partial_within_the_deadline_and_names_it(stack, customer):
    stack.servers["surveys"].stop()
    started = time.monotonic()
    response = view(stack, customer["id"])
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    body = response.get_json()
    assert elapsed < 1.0
    assert body["partial"] is True and body["missing"] == {"surveys": "unreachable"}
    assert body["surveys"] is None
    assert body["tickets"]["total"] == 3 and body["calls"]["inbound"]["total"] == 1  # the rest intact
    assert body["last_contact"]["kind"] in ("call_in", "call_out", "ticket")


def test_with_tickets_stopped_the_profile_comes_from_the_gateways_replica(stack, customer):
    stack.servers["tickets"].stop()
    body = view(stack, customer["id"]).get_json()
    assert body["partial"] is True and body["missing"] == {"tickets": "unreachable"}
    assert body["profile"]["source"] == "gateway replica" and body["profile"]["name"] == "Ada Lovelace"
    assert body["profile"]["phones"] == [customer["e164"]]
    assert body["tickets"] is body["purchases"] is body["service_recovery"] is None
    assert body["surveys"]["total"] == 2 and body["follow_ups"]["total"] == 1


def test_a_slow_service_cannot_hold_the_view_past_its_deadline(stack):
    customer_id, _, _ = new_customer(stack)
    known_everywhere(stack, customer_id)
    stack.settings["gateway"].options["VIEW_DEADLINE_SECONDS"] = "0.5"
    stack.servers["callrouting"].delay = 2.0
    headers = stack.bearer(AGENT)
    started = time.monotonic()
    response = view(stack, customer_id, headers)
    elapsed = time.monotonic() - started
    body = response.get_json()
    assert response.status_code == 200 and elapsed < 0.5 + 0.25, elapsed
    assert body["missing"] == {"callrouting": "timed out (deadline)"}
    assert body["calls"] is body["follow_ups"] is None and body["tickets"]["total"] == 0


def test_the_breaker_opens_after_repeated_failures_and_the_next_view_does_not_wait(stack):
    customer_id, _, _ = new_customer(stack)
    known_everywhere(stack, customer_id)
    stack.settings["gateway"].options["VIEW_DEADLINE_SECONDS"] = "0.6"
    breaker = stack.gateway.extensions["upstreams"].services["surveys"].breaker
    breaker.fail_max = 2
    stack.servers["surveys"].delay = 2.0
    headers = stack.bearer(AGENT)
    for _ in range(2):
        assert view(stack, customer_id, headers).get_json()["missing"] == {"surveys": "timed out (deadline)"}
    # each timed-out call counts once its own timeout (the deadline) has run out
    wait_for(lambda: breaker.current_state == "open", timeout=5, what="the surveys breaker to open")
    started = time.monotonic()
    body = view(stack, customer_id, headers).get_json()
    elapsed = time.monotonic() - started
    assert body["missing"] == {"surveys": "circuit open (recent failures)"}
    assert elapsed < 0.4, elapsed  # well within the deadline: no waiting for the slow service at all
    assert body["tickets"]["total"] == 0 and body["calls"]["inbound"]["total"] == 0
