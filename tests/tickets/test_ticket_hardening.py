"""Issue 20 on the tickets service: one ticket per survey response (a second is a 409 naming the
first), and a list filter that does not exist is refused rather than ignored."""

from services.tickets.models import Ticket
from tests.tickets.support import count

RESPONSE_ID = "0b6c2f2e-6a1e-4d7e-9d7f-3c1d2a4b5e6f"


def test_a_second_ticket_for_the_same_survey_response_is_a_409_naming_the_first(client, database):
    body = {"subject": "Low score", "category": "complaint", "survey_response_id": RESPONSE_ID}
    first = client.post("/tickets", json=body)
    assert first.status_code == 201, first.json
    second = client.post("/tickets", json={**body, "subject": "Again"})
    assert second.status_code == 409, second.json
    assert second.mimetype == "application/problem+json"
    assert first.json["id"] in second.json["detail"] and f"#{first.json['number']}" in second.json["detail"]
    assert count(database, Ticket) == 1


def test_filtering_by_assignee_returns_only_their_tickets_and_an_unknown_filter_is_a_422(client):
    for assignee in ("agent-2", "agent-3", "agent-3"):
        assert (
            client.post("/tickets", json={"subject": "S", "category": "question", "assignee_id": assignee}).status_code
            == 201
        )
    mine = client.get("/tickets?assignee=agent-2").json
    assert [ticket["assignee_id"] for ticket in mine["items"]] == ["agent-2"]
    wrong_name = client.get("/tickets?assignee_id=agent-2")
    assert wrong_name.status_code == 422, wrong_name.json
    assert [error["field"] for error in wrong_name.json["errors"]] == ["assignee_id"]
    assert wrong_name.json["errors"][0]["location"] == "query"


def test_list_fields_are_capped_and_the_spec_says_so(client):
    many = [f"+4915112345{n:03d}" for n in range(11)]
    response = client.post("/customers", json={"name": "Many numbers", "phones": many})
    assert response.status_code == 422, response.json
    assert [error["field"] for error in response.json["errors"]] == ["phones"]
    tags = [f"t{n}" for n in range(21)]
    assert client.post("/tickets", json={"subject": "S", "category": "question", "tags": tags}).status_code == 422
    spec = client.get("/openapi.json").json["components"]["schemas"]
    assert spec["CustomerIn"]["properties"]["phones"]["maxItems"] == 10
    assert spec["TicketIn"]["properties"]["tags"]["maxItems"] == 20


def test_the_purchase_amount_is_a_valid_json_schema_and_its_range_still_holds(client):
    amount = client.get("/openapi.json").json["components"]["schemas"]["PurchaseIn"]["properties"]["amount"]
    assert amount["type"] == "string" and "maximum" not in amount and "minimum" not in amount
    customer = client.post("/customers", json={"name": "Buyer"}).json["id"]
    purchase = {
        "sku": "S1",
        "product": "Kettle",
        "currency": "EUR",
        "purchased_at": "2026-11-20T10:00:00+00:00",
        "source": "shop",
    }
    too_much = client.post(
        f"/customers/{customer}/purchases", json={**purchase, "amount": "1000000000000", "order_ref": "o1"}
    )
    assert too_much.status_code == 422 and too_much.json["errors"][0]["field"] == "amount"
    negative = client.post(f"/customers/{customer}/purchases", json={**purchase, "amount": "-1", "order_ref": "o2"})
    assert negative.status_code == 422
    ok = client.post(f"/customers/{customer}/purchases", json={**purchase, "amount": "49.90", "order_ref": "o3"})
    assert ok.status_code == 201, ok.json
    assert ok.json["amount"] == "49.90"
