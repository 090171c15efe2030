"""Customer data protection end to end: the gateway in front of the real services on the real broker.

One customer gets every kind of record (a purchase, a ticket with a comment, an inbound call with
notes, a follow-up call with notes, a survey with a comment); the export holds each kind; the
erasure reaches every service, leaves the day's report, the survey metrics and the SLA figures as
they were, and nobody can find the customer by name, number or e-mail any more. The audit log names
every view, export and erasure.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from shared.webhooks import sign_json
from tests.gateway.conftest import PHONE_WEBHOOK_SECRET
from tests.support.auth import signed_client
from tests.support.services import wait_for

ALL_DAY = {day: ["00:00", "23:59"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
NAME, PHONE, EMAIL = "Ada Lovelace", "+442079460958", "ada@example.org"
QPHONE = quote(PHONE)


def ok(response, *statuses):
    assert response.status_code in (statuses or (200, 201)), (response.status_code, response.get_json())
    return response.get_json()


def phone_event(client, event, call_id, sequence, at, **fields):
    body = json.dumps(
        {"event": event, "call_id": call_id, "sequence": sequence, "timestamp": at.isoformat(), **fields}
    ).encode()
    return client.post(
        "/webhooks/events",
        data=body,
        headers={"Content-Type": "application/json", "X-Signature": sign_json(PHONE_WEBHOOK_SECRET, body)},
    )


@pytest.fixture
def people(stack):
    return {
        "admin": stack.bearer("root-1", "admin"),
        "privacy": stack.bearer("dpo-1", "privacy"),
        "supervisor": stack.bearer("sup-1", "supervisor"),
        "agent": stack.bearer("agent-7", "agent"),
    }


def a_customer_with_every_kind_of_record(stack, people) -> dict:
    api, admin = stack.client, people["admin"]
    campaign = ok(
        api.post(
            "/api/callrouting/campaigns",
            json={"name": "Follow-up", "delay_days": 0, "calling_window": ALL_DAY, "contact_frequency_days": 0},
            headers=admin,
        )
    )
    ok(api.post("/api/callrouting/agents", json={"id": "agent-7", "name": "Grace"}, headers=admin))
    customer = ok(
        api.post("/api/tickets/customers", json={"name": NAME, "phone": PHONE, "email": EMAIL}, headers=admin)
    )
    cid = customer["id"]
    for service in ("callrouting", "surveys"):
        wait_for(lambda s=service: api.get(f"/api/{s}/customers/{cid}", headers=admin).status_code == 200)
    purchase = ok(
        api.post(
            f"/api/tickets/customers/{cid}/purchases",
            json={
                "sku": "KETTLE-2",
                "product": "Kettle 2",
                "amount": "49.90",
                "currency": "EUR",
                "purchased_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
                "source": "webshop",
                "order_ref": f"A-{uuid.uuid4().hex[:8]}",
            },
            headers=admin,
        )
    )
    ticket = ok(
        api.post(
            "/api/tickets/tickets",
            json={
                "subject": "Ada's kettle leaks",
                "description": "Call Ada on her mobile",
                "category": "complaint",
                "customer_id": cid,
            },
            headers=admin,
        )
    )
    ok(api.post(f"/api/tickets/tickets/{ticket['id']}/comments", json={"body": "Ada says hi"}, headers=admin))

    # an inbound call from her number, answered and wrapped up with notes
    phone = signed_client(stack.servers["callrouting"].app, "agent-7", "agent")
    ok(phone.put("/agents/agent-7/state", json={"state": "available"}))
    now = datetime.now(UTC)
    ok(
        phone_event(
            phone, "call.ringing", "J1", 0, now - timedelta(seconds=70), **{"from": PHONE, "to": "+14155550199"}
        )
    )
    ok(phone_event(phone, "call.answered", "J1", 1, now - timedelta(seconds=66), agent_id="agent-7"))
    ok(phone_event(phone, "call.ended", "J1", 2, now - timedelta(seconds=6), agent_id="agent-7"))
    ok(phone.post("/calls/J1/wrap-up", json={"reason": "complaint", "notes": "Ada, leaking kettle"}))

    # the follow-up call after the purchase, with notes, and a survey with a comment
    entries = wait_for(
        lambda: ok(api.get(f"/api/callrouting/campaigns/{campaign['id']}/entries", headers=admin))["items"]
    )
    ok(phone.put("/agents/agent-7/state", json={"state": "offline"}), 200, 409)
    handed = ok(api.post("/api/callrouting/agents/agent-7/next-call", headers=people["agent"]))
    entry_id = handed["entry"]["id"]
    ok(
        api.post(
            f"/api/callrouting/entries/{entry_id}/outcome",
            json={"agent_id": "agent-7", "outcome": "reached", "notes": "Ada was happy to talk"},
            headers=people["agent"],
        )
    )
    response = ok(
        api.post(
            "/api/surveys/responses",
            json={
                "customer_id": cid,
                "channel": "agent",
                "agent_id": "agent-7",
                "entry_id": entry_id,
                "campaign_id": campaign["id"],
                "purchase_id": purchase["id"],
                "answers": {"product": 9, "service": 8, "purchase": 8, "recommend_product": 9, "recommend_store": 9},
                "comment": "Ada loves the kettle",
            },
            headers=people["agent"],
        )
    )
    assert entries
    return {"customer": customer, "campaign": campaign, "ticket": ticket, "response": response}


def reports_of(stack, people, day):
    report = ok(stack.client.get(f"/api/reports/daily?date={day}", headers=people["supervisor"]))
    assert not report["partial"], report["missing"]
    metrics = ok(stack.client.get(f"/api/surveys/survey-metrics?from={day}&to={day}", headers=people["supervisor"]))
    return report, metrics


def contacts_reached(stack, people, day) -> int:
    metrics = ok(stack.client.get(f"/api/surveys/survey-metrics?from={day}&to={day}", headers=people["supervisor"]))
    return sum(group["contacts"]["reached"] for group in metrics["groups"])


def test_export_erase_and_audit_end_to_end(stack, people):
    made = a_customer_with_every_kind_of_record(stack, people)
    api, cid = stack.client, made["customer"]["id"]
    today = datetime.now(UTC).date().isoformat()
    # every event the records caused has been applied before the figures are taken
    wait_for(lambda: ok(api.get(f"/api/surveys/customers/{cid}/surveys", headers=people["admin"]))["recent"])
    # the call's outcome reaches surveys as an event of its own, apart from the response
    wait_for(lambda: contacts_reached(stack, people, today) == 1, what="surveys counted the follow-up call")
    ok(api.get(f"/api/customers/{cid}/view", headers=people["agent"]))
    before = reports_of(stack, people, today)
    assert before[0]["calls"]["totals"]["answered"] == 1 and before[0]["tickets"]["opened"]["total"] == 1
    assert before[0]["staffing"]["totals"]["calls"] == 1  # the daily report carries the staffing part too

    # --- export: every kind of record created above, from every service ---
    assert api.get(f"/api/customers/{cid}/export", headers=people["agent"]).status_code == 403
    assert api.get(f"/api/customers/{cid}/export", headers=people["supervisor"]).status_code == 403
    export = ok(api.get(f"/api/customers/{cid}/export", headers=people["privacy"]))
    records = {service: part["records"] for service, part in export["services"].items()}
    expected = {
        "tickets": ("customers", "phones", "purchases", "tickets", "ticket_comments", "ticket_history"),
        "callrouting": (
            "customer_replicas",
            "calls",
            "call_callbacks",
            "call_entries",
            "call_attempts",
            "customer_contacts",
        ),
        "surveys": ("customer_replicas", "survey_responses", "survey_contacts", "survey_purchases"),
        "gateway": ("customer_replicas", "audit_log"),
    }
    for service, kinds in expected.items():
        for kind in kinds:
            assert records[service][kind], f"{service} exported no {kind}"
    assert records["tickets"]["ticket_comments"][0]["body"] == "Ada says hi"
    assert records["callrouting"]["calls"][0]["notes"] == "Ada, leaking kettle"
    assert records["surveys"]["survey_responses"][0]["comment"] == "Ada loves the kettle"

    # --- erasure ---
    assert api.post(f"/api/customers/{cid}/erase", headers=people["supervisor"]).status_code == 403
    request = ok(api.post(f"/api/customers/{cid}/erase", headers=people["privacy"]), 201)
    assert request["state"] in ("pending", "done") and set(request["services"]) == set(expected)
    progress = wait_for(
        lambda: (
            (p := ok(api.get(f"/api/privacy/requests/{request['request_id']}", headers=people["supervisor"])))["state"]
            == "done"
            and p
        )
    )
    assert {s: each["state"] for s, each in progress["services"].items()} == dict.fromkeys(expected, "done")
    again = ok(api.post(f"/api/customers/{cid}/erase", headers=people["privacy"]), 200)
    assert again["request_id"] == request["request_id"]
    listed = ok(api.get("/api/privacy/requests?state=done", headers=people["supervisor"]))
    assert (listed["total"], listed["limit"], listed["offset"]) == (1, 50, 0)
    assert [each["request_id"] for each in listed["items"]] == [request["request_id"]]
    assert listed["items"][0]["requested_at"].endswith("Z")
    assert ok(api.get("/api/privacy/requests?state=pending", headers=people["supervisor"]))["total"] == 0
    assert ok(api.get("/api/privacy/requests?offset=1", headers=people["supervisor"])) == {
        "items": [],
        "total": 1,
        "limit": 50,
        "offset": 1,
    }

    # the day's report, the survey metrics and the SLA figures are what they were
    assert reports_of(stack, people, today) == before

    # nobody finds her by name, number or e-mail, anywhere
    admin = people["admin"]
    for query in (f"q={NAME.split()[0]}", f"phone={QPHONE}", f"email={EMAIL}", "q=ada"):
        assert ok(api.get(f"/api/tickets/customers?{query}", headers=admin))["items"] == []
    assert api.get(f"/api/customers/lookup?phone={QPHONE}", headers=admin).status_code == 404
    for service in ("tickets", "callrouting", "surveys"):
        text = api.get(f"/api/{service}/customers/{cid}", headers=admin).get_data(as_text=True)
        assert "Ada" not in text and PHONE not in text and EMAIL not in text, (service, text)
    view = api.get(f"/api/customers/{cid}/view", headers=admin).get_data(as_text=True)
    assert "Ada" not in view and PHONE[-6:] not in view and EMAIL not in view, view
    listed = ok(api.get(f"/api/callrouting/do-not-call?customer_id={cid}", headers=admin))
    assert listed["items"] and all(each["phone"] is None for each in listed["items"])
    assert ok(api.get(f"/api/callrouting/do-not-call?phone={QPHONE}", headers=admin))["items"] == []
    after = ok(api.get(f"/api/customers/{cid}/export", headers=people["privacy"]))
    assert "Ada" not in json.dumps(after) and PHONE not in json.dumps(after) and EMAIL not in json.dumps(after)
    # an erased customer stays erased
    assert api.patch(f"/api/tickets/customers/{cid}", json={"name": "Ada"}, headers=admin).status_code == 409

    # a new customer with her number, and a purchase: not put on a call list
    campaign = made["campaign"]["id"]
    again = ok(api.post("/api/tickets/customers", json={"name": "A. L.", "phone": PHONE}, headers=admin))
    control = ok(
        api.post("/api/tickets/customers", json={"name": "Charles Babbage", "phone": "+442079460959"}, headers=admin)
    )
    for customer in (again, control):
        ok(
            api.post(
                f"/api/tickets/customers/{customer['id']}/purchases",
                json={
                    "sku": "K",
                    "product": "Kettle",
                    "amount": "1.00",
                    "currency": "EUR",
                    "purchased_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
                    "source": "webshop",
                    "order_ref": uuid.uuid4().hex,
                },
                headers=admin,
            )
        )

    def customers_listed():
        entries = ok(api.get(f"/api/callrouting/campaigns/{campaign}/entries?state=pending", headers=admin))["items"]
        return {entry["customer_id"] for entry in entries}

    assert control["id"] in wait_for(lambda: control["id"] in customers_listed() and customers_listed())
    assert again["id"] not in customers_listed()
    listed = ok(api.get(f"/api/callrouting/do-not-call?customer_id={again['id']}", headers=admin))["items"]
    assert [each["source"] for each in listed] == ["erasure"]

    # --- the audit log: views, the export, the erasure; for admins; no way to change it ---
    assert api.get("/api/audit", headers=people["privacy"]).status_code == 403
    log = ok(api.get(f"/api/audit?customer_id={cid}", headers=admin))
    actions = [(entry["action"], entry["actor_id"]) for entry in reversed(log["items"])]
    assert log["total"] == len(log["items"]) and (log["limit"], log["offset"]) == (100, 0)
    assert ("customer.viewed", "agent-7") in actions
    assert ("customer.exported", "dpo-1") in actions and ("customer.erased", "dpo-1") in actions
    assert api.delete("/api/audit", headers=admin).status_code == 405


def test_an_export_with_a_service_down_fails_and_names_it(stack, people):
    api = stack.client
    customer = ok(api.post("/api/tickets/customers", json={"name": NAME, "phone": PHONE}, headers=people["admin"]))
    stack.servers["surveys"].stop()
    answer = api.get(f"/api/customers/{customer['id']}/export", headers=people["privacy"])
    assert answer.status_code == 503, answer.get_json()
    assert "surveys" in answer.get_json()["missing"] and "services" not in answer.get_json()
    assert api.get("/api/customers/no-such-id/export", headers=people["admin"]).status_code in (404, 503)
