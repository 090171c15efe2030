"""The customers screen's routes through the Flask test client, in front of the real services:
search by name or by a number written any way, a bad number named in an alert beside the form,
an unknown customer's page a 404 page, a merged customer's page sent on to the survivor."""

from __future__ import annotations

import pytest

from tests.gateway.console.test_dashboard_routes import page_of
from tests.gateway.test_view import Service, closed_hub, known_everywhere, new_customer  # noqa: F401 - a fixture

pytestmark = pytest.mark.db

AGENT = "customers-agent"


def found_ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [row["attrs"]["data-customer-id"] for row in page_of(answer).all("data-customer-id") if row["tag"] == "tr"]


def test_search_by_name_or_by_a_number_in_another_format(stack):
    ada_id, e164, national = new_customer(stack, "Ada Lovelace")
    other_id, _, _ = new_customer(stack, "Adam Smith")
    headers = stack.bearer(AGENT)

    def search(**query):
        return stack.client.get("/customers", query_string=query, headers=headers)

    assert sorted(found_ids(search(q="ada"))) == sorted([ada_id, other_id])
    assert found_ids(search(q="lovelace")) == [ada_id]
    # +49 30 1234 5678 and 030 1234 5678 (with the country) are the same number as +493012345678
    spaced = f"+49 {e164[3:5]} {e164[5:9]} {e164[9:]}"
    assert found_ids(search(q=spaced)) == [ada_id]
    assert found_ids(search(q=national, region="de")) == [ada_id]
    page = page_of(search(q=spaced))
    assert page.text("class", "muted results-count") == "1 customer with that number"
    link = page.all("href", f"/customers/{ada_id}/timeline")
    assert [" ".join("".join(a["text"]).split()) for a in link] == ["Ada Lovelace"]
    # nothing typed: the form alone
    assert found_ids(search()) == [] and page_of(search()).all("id", "c-q")


def test_a_number_the_service_cannot_read_is_named_beside_the_form(stack):
    answer = stack.client.get("/customers?q=12345&region=DE", headers=stack.bearer(AGENT))
    assert answer.status_code == 422
    page = page_of(answer)
    assert page.one("id", "c-q")["attrs"]["value"] == "12345"  # the form is kept
    alert = " ".join(answer.get_data(as_text=True).split())
    assert "Not a phone number we can read" in alert and "“12345” is not a phone number of Germany" in alert


def test_unknown_and_merged_customers(stack):
    headers = stack.bearer(AGENT)
    missing = stack.client.get("/customers/00000000-0000-4000-8000-000000000000/timeline", headers=headers)
    assert missing.status_code == 404 and "No customer" in missing.get_data(as_text=True)

    gone_id, _, _ = new_customer(stack, "Old Record")
    kept_id, _, _ = new_customer(stack, "Kept Record")
    known_everywhere(stack, kept_id)
    Service(stack, "tickets", role="supervisor")("POST", f"/customers/{gone_id}/merge", json={"into": kept_id})
    moved = stack.client.get(f"/customers/{gone_id}/timeline", headers=headers)
    assert moved.status_code == 308 and moved.headers["Location"] == f"/customers/{kept_id}/timeline"
    kept = stack.client.get(moved.headers["Location"], headers=headers)
    assert kept.status_code == 200
    headings = [" ".join("".join(e["text"]).split()) for e in page_of(kept).elements if e["tag"] == "h1"]
    assert headings == ["Kept Record"]


def test_a_national_number_is_read_in_the_searching_users_country_else_the_centers(stack):
    manila = stack.client.post(
        "/api/tickets/customers",
        json={"name": "Maria Santos", "phone": "+63 917 123 4567"},
        headers=stack.bearer("customers-admin", "supervisor"),
    )
    assert manila.status_code == 201, manila.get_json()
    filipino, german = stack.bearer("agent-in-manila"), stack.bearer("agent-in-berlin")
    htmx = {"HX-Request": "true"}
    refused = stack.client.post("/profile", data={"phone_region": "XX"}, headers={**filipino, **htmx})
    assert refused.status_code == 422 and "phone_region" in refused.get_data(as_text=True)
    saved = stack.client.post("/profile", data={"phone_region": "ph"}, headers={**filipino, **htmx})
    assert saved.status_code == 200, saved.get_data(as_text=True)

    national = {"q": "0917 123 4567"}
    assert found_ids(stack.client.get("/customers", query_string=national, headers=filipino)) == [manila.json["id"]]
    form = page_of(stack.client.get("/customers", headers=filipino)).one("id", "c-region")
    assert form["attrs"]["placeholder"] == "PH"  # the form says which country it reads numbers in
    # the center's country (DE by default) for a user who chose none: not this customer's number
    in_berlin = stack.client.get("/customers", query_string=national, headers=german)
    assert manila.json["id"] not in (found_ids(in_berlin) if in_berlin.status_code == 200 else [])
    assert page_of(stack.client.get("/customers", headers=german)).one("id", "c-region")["attrs"]["placeholder"] == "DE"
