"""The customer directory over HTTP: numbers in any format, consent, lookup, purchases and
segments, duplicates and merging, the hygiene report; every bad field named in a 422."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from services.tickets.models import Customer, CustomerPhone, Purchase, Ticket
from tests.tickets.support import AGENT, count, events, fields_named


def new_customer(client, **fields):
    body = {"name": "Ada Lovelace", "phones": ["030 1234567"], "email": "Ada@Example.org", **fields}
    response = client.post("/customers", json=body)
    assert response.status_code == 201, response.json
    return response.json


def purchase(client, customer_id, order_ref="A-1", amount="99.90", **fields):
    body = {
        "sku": "KETTLE-2",
        "product": "Kettle",
        "amount": amount,
        "currency": "EUR",
        "purchased_at": "2026-11-01T10:00:00Z",
        "source": "webshop",
        "order_ref": order_ref,
        **fields,
    }
    return client.post(f"/customers/{customer_id}/purchases", json=body)


def test_numbers_in_any_format_are_stored_in_e164_with_the_time_zone_they_imply(client, database):
    customer = new_customer(client, phones=["030 1234567", "+49 (151) 1234-5678", "0049 30 1234567"])
    assert customer["phone"] == "+49301234567"
    assert customer["phones"] == ["+49301234567", "+4915112345678"]
    assert customer["time_zone"] == "Europe/Berlin"
    assert customer["language"] == "de"  # from the number's country, like the time zone
    assert customer["email"] == "ada@example.org"
    assert (customer["segment"], customer["do_not_call"], customer["merged_into"]) == ("C", False, None)
    (created,) = events(database, "customer.created")
    assert created["data"] == {
        "customer_id": customer["id"],
        "name": "Ada Lovelace",
        "phone": "+49301234567",
        "email": "ada@example.org",
        "phones": ["+49301234567", "+4915112345678"],
        "time_zone": "Europe/Berlin",
        "do_not_call": False,
        "marketing_consent": False,
        "segment": "C",
        "language": "de",
    }


def test_a_primary_phone_and_a_region_and_an_explicit_time_zone(client):
    customer = new_customer(
        client,
        phone="(202) 555-0143",
        phones=["212 736 5000", "+49 30 1234567"],
        region="US",
        time_zone="America/Chicago",
    )
    assert customer["phone"] == "+12025550143"
    assert customer["phones"] == ["+12025550143", "+12127365000", "+49301234567"]
    assert customer["time_zone"] == "America/Chicago"
    without_zone = new_customer(client, phones=["+1 202 555 0143"], email=None)
    assert without_zone["time_zone"] == "America/New_York"


def test_every_invalid_customer_field_is_named_and_nothing_is_stored(client, database):
    response = client.post(
        "/customers",
        json={
            "name": "",
            "phone": "call me",
            "phones": ["030 1234567", "12"],
            "email": "nope",
            "time_zone": "Europe/Atlantis",
            "do_not_call": "perhaps",
            "region": "Germany",
        },
    )
    assert fields_named(response) == {"name", "phone", "phones.1", "email", "time_zone", "do_not_call", "region"}
    assert count(database, Customer) == count(database, CustomerPhone) == 0
    assert events(database) == []


def test_find_a_customer_by_any_number_in_any_format(client):
    ada = new_customer(client, phones=["030 1234567", "0151 12345678"])
    new_customer(client, name="Bob", phones=["040 7654321"], email="bob@example.org")
    for typed in ("+49 30 1234567", "0049301234567", "(0151) 1234 5678"):
        found = client.get("/customers", query_string={"phone": typed})
        assert found.status_code == 200
        assert [item["id"] for item in found.json["items"]] == [ada["id"]], typed
        assert found.json["total"] == 1 and found.headers["X-Total-Count"] == "1"
    assert client.get("/customers", query_string={"phone": "040 7654321"}).json["items"][0]["name"] == "Bob"
    response = client.get("/customers", query_string={"phone": "not a number"})
    assert fields_named(response) == {"phone"}
    assert response.json["errors"][0]["location"] == "query"


def test_search_by_name_or_email_with_paging(client):
    for n in range(5):
        new_customer(client, name=f"Grace Hopper {n}", phones=[], email=f"grace{n}@navy.mil")
    new_customer(client, name="Alan Turing", phones=[], email="alan@example.org")
    page = client.get("/customers", query_string={"q": "hopper", "limit": 2, "offset": 2}).json
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert [item["name"] for item in page["items"]] == ["Grace Hopper 2", "Grace Hopper 3"]
    assert client.get("/customers", query_string={"q": "NAVY.MIL"}).json["total"] == 5
    by_email = client.get("/customers", query_string={"email": "Alan@Example.org"}).json
    assert [item["name"] for item in by_email["items"]] == ["Alan Turing"]
    assert client.get("/customers", query_string={"q": "%"}).json["total"] == 0  # LIKE wildcards are literal


def test_patch_announces_exactly_what_changed(client, database):
    ada = new_customer(client)
    response = client.patch(f"/customers/{ada['id']}", json={"do_not_call": True, "phone": "0151 12345678"})
    assert response.status_code == 200
    assert response.json["do_not_call"] is True
    assert response.json["phones"] == ["+4915112345678", "+49301234567"]
    (updated,) = events(database, "customer.updated")
    assert sorted(updated["data"]["changed"]) == ["do_not_call", "phone", "phones"]
    assert updated["data"]["do_not_call"] is True
    assert client.patch(f"/customers/{ada['id']}", json={"do_not_call": True}).status_code == 200
    assert len(events(database, "customer.updated")) == 1, "no change, no event"
    assert fields_named(client.patch(f"/customers/{ada['id']}", json={"phones": ["x"]})) == {"phones.0"}
    assert client.patch("/customers/0b7c9a6e-0000-4000-8000-000000000000", json={"name": "X"}).status_code == 404


def test_a_purchase_is_recorded_once_per_source_and_order_ref(client, database):
    ada = new_customer(client)
    first = purchase(client, ada["id"])
    assert first.status_code == 201
    assert first.json["amount"] == "99.90" and first.json["customer_id"] == ada["id"]
    again = purchase(client, ada["id"])
    assert again.status_code == 200
    assert again.json["id"] == first.json["id"]
    assert count(database, Purchase) == 1
    (recorded,) = events(database, "purchase.recorded")
    assert recorded["data"] == {
        "purchase_id": first.json["id"],
        "customer_id": ada["id"],
        "sku": "KETTLE-2",
        "product": "Kettle",
        "amount": "99.90",
        "currency": "EUR",
        "purchased_at": "2026-11-01T10:00:00+00:00",
        "source": "webshop",
        "order_ref": "A-1",
    }
    assert [p["id"] for p in client.get(f"/customers/{ada['id']}/purchases").json["items"]] == [first.json["id"]]


def test_the_same_order_for_another_customer_is_a_conflict(client):
    ada, bob = new_customer(client), new_customer(client, name="Bob", phones=[], email=None)
    assert purchase(client, ada["id"]).status_code == 201
    assert purchase(client, bob["id"]).status_code == 409


def test_every_invalid_purchase_field_is_named(client, database):
    ada = new_customer(client)
    response = purchase(client, ada["id"], amount="-5", currency="euro", purchased_at="yesterday", order_ref="", sku="")
    assert fields_named(response) == {"amount", "currency", "purchased_at", "order_ref", "sku"}
    assert purchase(client, "0b7c9a6e-0000-4000-8000-000000000000").status_code == 404
    assert count(database, Purchase) == 0


def test_the_segment_follows_the_value_of_the_last_12_months(client, database):
    ada = new_customer(client)
    recent = datetime.now(UTC) - timedelta(days=30)
    old = datetime.now(UTC) - timedelta(days=400)
    purchase(client, ada["id"], "old", "5000.00", purchased_at=old.isoformat())
    assert client.get(f"/customers/{ada['id']}").json["segment"] == "C", "older than 12 months: not counted"
    assert events(database, "customer.updated") == []
    purchase(client, ada["id"], "p1", "200.00", purchased_at=recent.isoformat())
    assert client.get(f"/customers/{ada['id']}").json["segment"] == "C"
    purchase(client, ada["id"], "p2", "100.00", purchased_at=recent.isoformat())
    assert client.get(f"/customers/{ada['id']}").json["segment"] == "B"
    purchase(client, ada["id"], "p3", "700.00", purchased_at=recent.isoformat())
    assert client.get(f"/customers/{ada['id']}").json["segment"] == "A"
    updates = events(database, "customer.updated")
    assert [(u["data"]["segment"], u["data"]["changed"]) for u in updates] == [("B", ["segment"]), ("A", ["segment"])]


def test_a_retried_purchase_post_with_the_same_idempotency_key_records_once(client, database):
    ada = new_customer(client)
    headers = {"Idempotency-Key": "import-42"}
    body = {
        "sku": "K",
        "product": "Kettle",
        "amount": "10",
        "currency": "EUR",
        "purchased_at": "2026-11-01T10:00:00Z",
        "source": "pos",
        "order_ref": "R-42",
    }
    first = client.post(f"/customers/{ada['id']}/purchases", json=body, headers=headers)
    second = client.post(f"/customers/{ada['id']}/purchases", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json == first.json
    assert count(database, Purchase) == 1
    assert len(events(database, "purchase.recorded")) == 1


def test_duplicates_are_found_by_number_and_by_email(client):
    ada = new_customer(client)
    ada2 = new_customer(client, name="A. Lovelace", phones=["+49 30 1234567"], email=None)
    bob = new_customer(client, name="Bob", phones=["040 7654321"], email="bob@example.org")
    bob2 = new_customer(client, name="Robert", phones=[], email="BOB@example.org")
    new_customer(client, name="Alone", phones=["089 1111111"], email="alone@example.org")
    groups = client.get("/customers/duplicates").json["items"]
    assert {"by": "phone", "value": "+49301234567", "customer_ids": [ada["id"], ada2["id"]]} in groups
    assert {"by": "email", "value": "bob@example.org", "customer_ids": [bob["id"], bob2["id"]]} in groups
    assert len(groups) == 2


def test_merging_moves_tickets_purchases_and_numbers_and_the_duplicate_redirects(client, database):
    ada = new_customer(client, phones=["030 1234567"], email=None)
    dup = new_customer(client, name="A. Lovelace", phones=["0151 12345678"], email="ada@example.org", do_not_call=True)
    assert purchase(client, dup["id"], amount="300").status_code == 201
    ticket = client.post(
        "/tickets", json={"subject": "Broken", "category": "complaint", "customer_id": dup["id"]}, headers=AGENT
    ).json

    merged = client.post(f"/customers/{dup['id']}/merge", json={"into": ada["id"]})
    assert merged.status_code == 200
    assert merged.json["id"] == ada["id"]
    assert merged.json["phones"] == ["+49301234567", "+4915112345678"]
    assert merged.json["email"] == "ada@example.org"
    assert merged.json["do_not_call"] is True
    assert merged.json["segment"] == "B"
    assert client.get(f"/tickets/{ticket['id']}").json["customer_id"] == ada["id"]
    assert [p["customer_id"] for p in client.get(f"/customers/{ada['id']}/purchases").json["items"]] == [ada["id"]]

    redirect = client.get(f"/customers/{dup['id']}")
    assert redirect.status_code == 308
    assert redirect.headers["Location"].endswith(f"/customers/{ada['id']}")
    assert redirect.json["merged_into"] == ada["id"]
    found = client.get("/customers", query_string={"phone": "0151 12345678"}).json["items"]
    assert [customer["id"] for customer in found] == [ada["id"]]

    types = [event["type"] for event in events(database)]
    assert types[-2:] == ["customer.merged", "customer.updated"]
    merged_event, updated_event = events(database)[-2:]
    assert merged_event["data"] == {"merged_customer_id": dup["id"], "into_customer_id": ada["id"]}
    assert set(updated_event["data"]["changed"]) >= {"phones", "email", "do_not_call", "segment"}

    # New tickets and purchases for the merged id land on the survivor.
    later = client.post("/tickets", json={"subject": "Again", "category": "question", "customer_id": dup["id"]})
    assert later.json["customer_id"] == ada["id"]


def test_merging_into_itself_or_an_already_merged_customer_is_a_conflict(client, database):
    ada, dup, third = new_customer(client), new_customer(client, name="Dup"), new_customer(client, name="Third")
    assert client.post(f"/customers/{ada['id']}/merge", json={"into": ada["id"]}).status_code == 409
    assert client.post(f"/customers/{dup['id']}/merge", json={"into": ada["id"]}).status_code == 200
    before = len(events(database))
    assert client.post(f"/customers/{dup['id']}/merge", json={"into": third["id"]}).status_code == 409
    assert client.post(f"/customers/{third['id']}/merge", json={"into": dup["id"]}).status_code == 409
    assert client.patch(f"/customers/{dup['id']}", json={"name": "Changed"}).status_code == 409
    assert len(events(database)) == before
    unknown = client.post(f"/customers/{ada['id']}/merge", json={"into": "0b7c9a6e-0000-4000-8000-000000000000"})
    assert fields_named(unknown) == {"into"}


def test_the_hygiene_report_finds_stale_and_incomplete_records(client, database):
    stale = new_customer(client, name="Stale", phones=["030 1111111"], email="stale@example.org")
    active = new_customer(client, name="Active", phones=["030 2222222"], email="active@example.org")
    nothing = new_customer(client, name="No contact", phones=[], email=None)
    recent_buyer = new_customer(client, name="Recent buyer", phones=[], email="buyer@example.org")
    long_ago = datetime.now(UTC) - timedelta(days=800)
    with database.engine.begin() as connection:
        connection.execute(
            update(Customer)
            .where(Customer.id.in_([stale["id"], active["id"], recent_buyer["id"]]))
            .values(created_at=long_ago)
        )
    purchase(client, recent_buyer["id"], purchased_at=(datetime.now(UTC) - timedelta(days=10)).isoformat())
    purchase(client, stale["id"], "old-order", purchased_at=(long_ago + timedelta(days=1)).isoformat())
    client.post("/tickets", json={"subject": "Hi", "category": "question", "customer_id": active["id"]})

    report = client.get("/reports/hygiene", query_string={"inactive_months": 6}).json
    assert report["inactive"] == {"total": 1, "customer_ids": [stale["id"]]}
    assert report["no_phone_and_no_email"]["customer_ids"] == [nothing["id"]]
    assert set(report["no_phone"]["customer_ids"]) == {nothing["id"], recent_buyer["id"]}
    assert set(report["no_time_zone"]["customer_ids"]) == {nothing["id"], recent_buyer["id"]}
    assert fields_named(client.get("/reports/hygiene", query_string={"inactive_months": 0})) == {"inactive_months"}
    assert count(database, Ticket) == 1


def test_segments_fall_when_purchases_age_out_of_the_12_months(client, database, app):
    from services.tickets import customers, purchases, worker
    from shared.unit_of_work import UnitOfWork

    ada = new_customer(client)
    bought = datetime.now(UTC) - timedelta(days=364)
    purchase(client, ada["id"], "big", "1500", purchased_at=bought.isoformat())
    assert client.get(f"/customers/{ada['id']}").json["segment"] == "A"
    worker.refresh_segments(database, app.extensions["settings"])  # still within 12 months
    assert client.get(f"/customers/{ada['id']}").json["segment"] == "A"

    later = datetime.now(UTC) + timedelta(days=2)
    thresholds = customers.SegmentThresholds.from_settings(app.extensions["settings"])
    for _ in range(2):  # a second, overlapping round changes nothing
        with UnitOfWork(database, source="tickets") as uow:
            purchases.refresh_segments(uow, thresholds, later - timedelta(days=2), later)
    assert client.get(f"/customers/{ada['id']}").json["segment"] == "C"
    segment_updates = [e["data"] for e in events(database, "customer.updated")]
    assert [(u["segment"], u["changed"]) for u in segment_updates] == [("A", ["segment"]), ("C", ["segment"])]


def test_names_are_found_with_or_without_their_accents_and_the_language_can_be_chosen(client):
    for name in ("Inès Müller", "Ines Muller", "José Rizal"):
        assert client.post("/customers", json={"name": name}).status_code == 201
    found = client.get("/customers?q=Ines").get_json()
    assert sorted(customer["name"] for customer in found["items"]) == ["Ines Muller", "Inès Müller"]
    assert [c["name"] for c in client.get("/customers?q=müll").get_json()["items"]] == ["Ines Muller", "Inès Müller"]
    assert [c["name"] for c in client.get("/customers?q=JOSE").get_json()["items"]] == ["José Rizal"]
    manila = client.post("/customers", json={"name": "Maria Santos", "phones": ["+63 917 123 4567"]}).get_json()
    assert manila["language"] == "tl"
    taipei = client.post("/customers", json={"name": "王小明", "phones": ["+886 2 2345 6789"], "language": "zh-Hant"})
    assert taipei.get_json()["language"] == "zh-Hant"
    assert client.post("/customers", json={"name": "X", "language": "not a tag"}).status_code == 422
    renamed = client.patch(f"/customers/{manila['id']}", json={"name": "María Santos", "language": "en"}).get_json()
    assert renamed["language"] == "en"
    assert [c["name"] for c in client.get("/customers?q=maria").get_json()["items"]] == ["María Santos"]
