"""The call lists over HTTP: campaigns, entries (one or a CSV), the hand-out, outcomes, the report, bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.callrouting.app import create_app
from services.callrouting.models import CallEntry, DoNotCall
from shared.backbone import outbox
from tests.callrouting.call_list_support import ALWAYS, add_customer, callrouting_settings, make_agent
from tests.support.auth import signed_as, signed_client


@pytest.fixture
def db(database_factory):
    return database_factory.migrated("callrouting")


@pytest.fixture
def client(db):
    return signed_client(create_app(callrouting_settings(db)))


def campaign(client, **values) -> dict:
    response = client.post("/campaigns", json={"name": "Kettle follow-up", "calling_window": ALWAYS, **values})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_entry(client, campaign_id, customer_id, **values):
    return client.post(f"/campaigns/{campaign_id}/entries", json={"customer_id": customer_id, **values})


def lease(client, agent_id="agent-1"):
    response = client.post(f"/agents/{agent_id}/next-call")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def outcome(client, entry_id, outcome, agent_id="agent-1", **values):
    return client.post(f"/entries/{entry_id}/outcome", json={"agent_id": agent_id, "outcome": outcome, **values})


def problem_fields(response) -> set[str]:
    assert response.mimetype == "application/problem+json"
    return {error["field"] for error in response.get_json().get("errors", [])}


def published(db, event_type):
    with db.engine.connect() as connection:
        return connection.execute(select(outbox.c.envelope).where(outbox.c.event_type == event_type)).scalars().all()


# --- campaigns -----------------------------------------------------------------------------------


def test_a_campaign_has_sensible_defaults_and_can_be_paused_and_resumed(client):
    created = client.post("/campaigns", json={"name": "Follow-up"}).get_json()
    assert created["purpose"] == "post_purchase" and created["delay_days"] == 30
    assert created["calling_window"]["mon"] == ["09:00", "20:00"] and created["calling_window"]["sat"] == [
        "10:00",
        "16:00",
    ]
    assert "sun" not in created["calling_window"]
    assert created["retry_policy"]["no_answer"] == {"delay_minutes": 240, "max_attempts": 3}
    assert created["retry_policy"]["busy"] == {"delay_minutes": 30, "max_attempts": 5}
    paused = client.patch(f"/campaigns/{created['id']}", json={"active": False}).get_json()
    assert paused["active"] is False
    assert client.get(f"/campaigns/{created['id']}").get_json()["active"] is False
    assert [c["id"] for c in client.get("/campaigns?active=false").get_json()["items"]] == [created["id"]]
    changed = client.patch(
        f"/campaigns/{created['id']}", json={"active": True, "retry_policy": {"busy": {"max_attempts": 2}}}
    ).get_json()
    assert changed["active"] is True
    assert changed["retry_policy"]["busy"] == {"delay_minutes": 30, "max_attempts": 2}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "calling_window": {"mon": ["09:00", "25:00"]}}, "calling_window"),
        ({"name": "x", "calling_window": {"mon": ["18:00", "09:00"]}}, "calling_window"),
        ({"name": "x", "calling_window": {"funday": ["09:00", "17:00"]}}, "calling_window"),
        ({"name": "x", "calling_window": "weekdays"}, "calling_window"),
        ({"name": "x", "retry_policy": {"no_answer": {"delay_minutes": -5}}}, "retry_policy"),
        ({"name": "x", "retry_policy": {"reached": {"max_attempts": 2}}}, "retry_policy"),
        ({"name": "x", "purpose": "marketing"}, "purpose"),
        ({"name": "x", "delay_days": -1}, "delay_days"),
        ({"name": "x", "survey_delivery": "by_pigeon"}, "survey_delivery"),
        ({}, "name"),
    ],
)
def test_a_malformed_campaign_is_refused_naming_the_field(client, body, field):
    response = client.post("/campaigns", json=body)
    assert response.status_code == 422
    assert field in problem_fields(response)
    assert client.get("/campaigns").get_json()["items"] == []


def test_an_unknown_campaign_is_404(client):
    assert client.get(f"/campaigns/{uuid.uuid4()}").status_code == 404
    assert client.patch(f"/campaigns/{uuid.uuid4()}", json={"active": False}).status_code == 404


# --- agents --------------------------------------------------------------------------------------


def test_agents_are_registered_listed_and_updated(client):
    assert client.post("/agents", json={"id": "ann", "name": "Ann", "skills": ["de"]}).status_code == 200
    assert client.post("/agents", json={"id": "ann", "name": "Ann B.", "skills": ["de", "en"]}).status_code == 200
    assert client.get("/agents/ann").get_json()["skills"] == ["de", "en"]
    assert client.get("/agents/ann").get_json()["state"] == "offline"
    assert [agent["name"] for agent in client.get("/agents").get_json()["items"]] == ["Ann B."]
    assert client.get("/agents/nobody").status_code == 404
    assert "id" in problem_fields(client.post("/agents", json={"id": "", "name": "X"}))


# --- entries -------------------------------------------------------------------------------------


def test_one_entry_is_added_and_listed(client, db):
    customer = add_customer(db, time_zone="America/New_York")
    list_id = campaign(client)["id"]
    purchase_id = str(uuid.uuid4())
    response = add_entry(client, list_id, customer, purchase_id=purchase_id, due_at="2026-12-01T09:00:00+01:00")
    assert response.status_code == 201
    entry = response.get_json()
    assert (entry["state"], entry["time_zone"], entry["origin"]) == ("pending", "America/New_York", "api")
    assert entry["due_at"].startswith("2026-12-01T08:00:00")
    again = add_entry(client, list_id, customer, purchase_id=purchase_id)
    assert again.status_code == 409
    page = client.get(f"/campaigns/{list_id}/entries?state=pending").get_json()
    assert page["total"] == 1 and page["items"][0]["id"] == entry["id"]


def test_bad_entries_are_refused(client, db):
    list_id = campaign(client)["id"]
    unknown = add_entry(client, list_id, str(uuid.uuid4()))
    assert unknown.status_code == 422 and problem_fields(unknown) == {"customer_id"}
    assert "customer_id" in problem_fields(add_entry(client, list_id, "not-a-uuid"))
    assert add_entry(client, str(uuid.uuid4()), add_customer(db)).status_code == 404
    refused = add_entry(client, list_id, add_customer(db, do_not_call=True))
    assert refused.status_code == 422 and "do-not-call" in refused.get_data(as_text=True)
    assert client.get(f"/campaigns/{list_id}/entries").get_json()["total"] == 0


def test_a_csv_import_keeps_the_good_rows_and_reports_each_bad_one(client, db):
    list_id = campaign(client)["id"]
    good, also_good, blocked = add_customer(db), add_customer(db, name="Bo"), add_customer(db, do_not_call=True)
    bought = str(uuid.uuid4())
    lines = [
        "customer_id,purchase_id,due_at",
        f"{good},{bought},2026-12-01T09:00:00Z",  # line 2
        f"{uuid.uuid4()},,",  # 3: unknown customer
        "nonsense,,",  # 4
        f"{also_good},,2026-12-01",  # 5
        f"{good},{bought},",  # 6: that purchase again
        f"{blocked},,",  # 7: do not call
        f"{good},,next tuesday",  # 8
        f"{good},,,extra",  # 9
    ]
    response = client.post(
        f"/campaigns/{list_id}/entries", data="\n".join(lines) + "\n", content_type="text/csv; charset=utf-8"
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["created"] == 2
    assert [error["line"] for error in body["errors"]] == [3, 4, 6, 7, 8, 9]
    reasons = {error["line"]: error["reason"] for error in body["errors"]}
    assert "No such customer" in reasons[3] and "UUID" in reasons[4] and "purchase" in reasons[6]
    assert "do-not-call" in reasons[7] and "due_at" in reasons[8]
    listed = client.get(f"/campaigns/{list_id}/entries").get_json()
    assert sorted(entry["customer_id"] for entry in listed["items"]) == sorted([good, also_good])


def test_a_csv_saved_by_a_spreadsheet_with_a_byte_order_mark_is_read(client, db):
    list_id = campaign(client)["id"]
    body = f"\ufeffcustomer_id\r\n{add_customer(db)}\r\n".encode()
    response = client.post(f"/campaigns/{list_id}/entries", data=body, content_type="text/csv")
    assert (response.status_code, response.get_json()["created"]) == (200, 1)


def test_a_csv_without_a_customer_id_column_is_refused(client):
    list_id = campaign(client)["id"]
    response = client.post(f"/campaigns/{list_id}/entries", data="who,when\n1,2\n", content_type="text/csv")
    assert response.status_code == 422 and problem_fields(response) == {"file"}


def test_entries_are_paged_and_filtered(client, db):
    list_id = campaign(client)["id"]
    customers = [add_customer(db, name=f"C{n}") for n in range(5)]
    for n, customer in enumerate(customers):
        add_entry(client, list_id, customer, due_at=f"2026-12-0{n + 1}T10:00:00Z")
    page = client.get(f"/campaigns/{list_id}/entries?limit=2&offset=2").get_json()
    assert page["total"] == 5 and [e["customer_id"] for e in page["items"]] == customers[2:4]
    early = client.get(f"/campaigns/{list_id}/entries?due_before=2026-12-03T00:00:00Z").get_json()
    assert early["total"] == 2
    assert client.get(f"/campaigns/{list_id}/entries?customer_id={customers[4]}").get_json()["total"] == 1
    assert "state" in problem_fields(client.get(f"/campaigns/{list_id}/entries?state=lost"))
    assert "limit" in problem_fields(client.get(f"/campaigns/{list_id}/entries?limit=0"))


# --- the hand-out and outcomes --------------------------------------------------------------------


def test_an_agent_gets_the_customer_script_and_talking_point_and_the_same_entry_when_asking_again(client, db):
    make_agent(db)
    customer = add_customer(db, name="Ada")
    list_id = campaign(client, script="Hello, this is...", talking_point="The descaler, 20% off")["id"]
    entry_id = add_entry(client, list_id, customer).get_json()["id"]
    handed = lease(client)
    assert handed["entry"]["id"] == entry_id and handed["entry"]["state"] == "leased"
    assert handed["attempt"] == 1 and handed["lease_renewed"] is False
    assert handed["customer"]["name"] == "Ada"
    assert handed["campaign"]["script"] == "Hello, this is..."
    assert handed["campaign"]["talking_point"] == "The descaler, 20% off"
    again = lease(client)
    assert again["entry"]["id"] == entry_id and again["lease_renewed"] is True
    make_agent(db, "agent-2")
    assert client.post("/agents/agent-2/next-call").status_code == 204  # nothing else is due


def test_an_unknown_agent_cannot_ask_for_a_call(client):
    assert client.post("/agents/ghost/next-call").status_code == 404


def test_nothing_is_handed_out_outside_the_window_before_it_is_due_or_from_a_paused_list(client, db):
    make_agent(db)
    now = datetime.now(UTC)
    never = {"mon": ["00:00", "00:01"]} if now.weekday() != 0 else {"tue": ["00:00", "00:01"]}
    closed = campaign(client, calling_window=never)["id"]
    add_entry(client, closed, add_customer(db))
    later = campaign(client)["id"]
    add_entry(client, later, add_customer(db), due_at=(now + timedelta(hours=1)).isoformat())
    paused = campaign(client)["id"]
    add_entry(client, paused, add_customer(db))
    client.patch(f"/campaigns/{paused}", json={"active": False})
    assert client.post("/agents/agent-1/next-call").status_code == 204
    client.patch(f"/campaigns/{paused}", json={"active": True})
    assert lease(client)["entry"]["campaign_id"] == paused


def test_a_campaign_that_needs_a_skill_goes_only_to_agents_who_have_it(client, db):
    make_agent(db, "plain")
    make_agent(db, "linguist", skills=["fr"])
    list_id = campaign(client, required_skill="fr")["id"]
    add_entry(client, list_id, add_customer(db))
    assert client.post("/agents/plain/next-call").status_code == 204
    assert lease(client, "linguist")["entry"]["campaign_id"] == list_id


def test_reached_completes_the_entry_and_publishes_callentry_completed(client, db):
    make_agent(db)
    customer = add_customer(db)
    list_id = campaign(client)["id"]
    purchase_id = str(uuid.uuid4())
    entry_id = add_entry(client, list_id, customer, purchase_id=purchase_id).get_json()["id"]
    lease(client)
    response = outcome(client, entry_id, "reached", offer_accepted=True, notes="happy")
    assert response.status_code == 200
    body = response.get_json()
    assert body["entry"]["state"] == "completed" and body["entry"]["offer_accepted"] is True
    assert body["attempt"]["attempt"] == 1 and body["attempt"]["notes"] == "happy"
    [envelope] = published(db, "callentry.completed")
    assert f'"entry_id":"{entry_id}"' in envelope and f'"purchase_id":"{purchase_id}"' in envelope
    assert '"entry_state":"completed"' in envelope and '"campaign_purpose":"post_purchase"' in envelope
    again = outcome(client, entry_id, "reached")
    assert again.status_code == 409 and "already completed" in again.get_json()["detail"]
    history = client.get(f"/entries/{entry_id}").get_json()["history"]
    assert [(h["outcome"], h["agent_id"]) for h in history] == [("reached", "agent-1")]


def test_a_campaign_chooses_how_its_survey_reaches_the_customer_and_its_outcomes_say_so(client, db):
    make_agent(db)
    on_call = campaign(client)
    assert on_call["survey_delivery"] == "on_call"
    by_mail = client.patch(f"/campaigns/{on_call['id']}", json={"survey_delivery": "link_by_email"}).get_json()
    assert by_mail["survey_delivery"] == "link_by_email"
    entry_id = add_entry(client, on_call["id"], add_customer(db)).get_json()["id"]
    assert lease(client)["campaign"]["survey_delivery"] == "link_by_email"  # the agent's card knows
    assert outcome(client, entry_id, "reached").status_code == 200
    [envelope] = published(db, "callentry.completed")
    assert '"survey_delivery":"link_by_email"' in envelope


def test_no_answer_is_retried_after_the_delay_then_exhausted(client, db):
    make_agent(db)
    list_id = campaign(client, retry_policy={"no_answer": {"delay_minutes": 0, "max_attempts": 2}})["id"]
    entry_id = add_entry(client, list_id, add_customer(db)).get_json()["id"]
    lease(client)
    first = outcome(client, entry_id, "no_answer").get_json()
    assert first["entry"]["state"] == "pending" and first["entry"]["attempts"] == 1
    handed = lease(client)
    assert handed["entry"]["id"] == entry_id and handed["attempt"] == 2
    second = outcome(client, entry_id, "no_answer").get_json()
    assert second["entry"]["state"] == "exhausted"
    states = [e.split('"entry_state":"')[1].split('"')[0] for e in published(db, "callentry.completed")]
    assert sorted(states) == ["exhausted", "pending"]


def test_busy_is_due_again_after_its_delay(client, db):
    make_agent(db)
    list_id = campaign(client)["id"]
    entry_id = add_entry(client, list_id, add_customer(db)).get_json()["id"]
    lease(client)
    before = datetime.now(UTC)
    entry = outcome(client, entry_id, "busy").get_json()["entry"]
    due = datetime.fromisoformat(entry["due_at"])
    assert entry["state"] == "pending"
    assert before + timedelta(minutes=30) <= due <= datetime.now(UTC) + timedelta(minutes=30)
    assert client.post("/agents/agent-1/next-call").status_code == 204  # not due yet


def test_a_callback_needs_a_future_time_and_is_due_then(client, db):
    make_agent(db)
    list_id = campaign(client)["id"]
    entry_id = add_entry(client, list_id, add_customer(db)).get_json()["id"]
    lease(client)
    assert problem_fields(outcome(client, entry_id, "callback_requested")) == {"callback_at"}
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert problem_fields(outcome(client, entry_id, "callback_requested", callback_at=past)) == {"callback_at"}
    wanted = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    entry = outcome(client, entry_id, "callback_requested", callback_at=wanted.isoformat()).get_json()["entry"]
    assert entry["state"] == "pending" and datetime.fromisoformat(entry["due_at"]) == wanted


def test_wrong_number_cancels(client, db):
    make_agent(db)
    list_id = campaign(client)["id"]
    entry_id = add_entry(client, list_id, add_customer(db)).get_json()["id"]
    lease(client)
    assert outcome(client, entry_id, "wrong_number").get_json()["entry"]["state"] == "cancelled"


def test_do_not_call_lists_the_customer_and_cancels_every_open_entry_of_theirs(client, db):
    make_agent(db)
    customer = add_customer(db, phone="+4915112345678")
    first, second = campaign(client)["id"], campaign(client, name="Other")["id"]
    entry_id = add_entry(client, first, customer).get_json()["id"]
    add_entry(client, second, customer)
    leased = lease(client)["entry"]["id"]
    response = outcome(client, leased, "do_not_call")
    assert response.get_json()["entry"]["state"] == "cancelled"
    with db.engine.connect() as connection:
        listed = connection.execute(select(DoNotCall.customer_id, DoNotCall.phone, DoNotCall.source)).all()
        open_entries = connection.scalar(
            select(func.count()).select_from(CallEntry).where(CallEntry.state.in_(("pending", "leased")))
        )
    assert set(listed) == {(customer, None, "outcome"), (customer, "+4915112345678", "outcome")}
    assert open_entries == 0
    assert add_entry(client, first, customer).status_code == 422
    assert entry_id  # the other entry was the one leased or cancelled; both are closed now


def test_a_customer_who_opted_out_after_scheduling_is_cancelled_at_hand_out(client, db):
    make_agent(db)
    customer = add_customer(db)
    list_id = campaign(client)["id"]
    entry_id = add_entry(client, list_id, customer).get_json()["id"]
    add_customer(db, customer_id=customer, do_not_call=True)  # customer.created again, now with the opt-out
    assert client.post("/agents/agent-1/next-call").status_code == 204
    assert client.get(f"/entries/{entry_id}").get_json()["state"] == "cancelled"


def test_outcome_bad_input_and_illegal_states(client, db):
    make_agent(db)
    make_agent(db, "agent-2")
    list_id = campaign(client)["id"]
    entry_id = add_entry(client, list_id, add_customer(db)).get_json()["id"]
    assert outcome(client, entry_id, "reached").status_code == 409  # pending: nobody holds it
    lease(client)
    assert problem_fields(outcome(client, entry_id, "hung_up")) == {"outcome"}
    assert "agent_id" in problem_fields(client.post(f"/entries/{entry_id}/outcome", json={"outcome": "reached"}))
    stolen = outcome(client, entry_id, "reached", agent_id="agent-2")
    assert stolen.status_code == 409 and "does not hold" in stolen.get_json()["detail"]
    assert outcome(client, str(uuid.uuid4()), "reached").status_code == 404
    assert published(db, "callentry.completed") == []
    assert outcome(client, entry_id, "reached").status_code == 200


def test_an_agent_records_outcomes_only_in_their_own_name(client, db):
    make_agent(db)
    make_agent(db, "agent-2")
    list_id = campaign(client)["id"]
    entry_id = add_entry(client, list_id, add_customer(db)).get_json()["id"]
    lease(client)
    body = {"agent_id": "agent-1", "outcome": "reached"}
    posing = client.post(f"/entries/{entry_id}/outcome", json=body, headers=signed_as("agent-2", "agent"))
    assert posing.status_code == 403
    own = client.post(f"/entries/{entry_id}/outcome", json=body, headers=signed_as("agent-1", "agent"))
    assert own.status_code == 200


def test_an_outcome_post_with_an_idempotency_key_acts_once(client, db):
    make_agent(db)
    list_id = campaign(client)["id"]
    entry_id = add_entry(client, list_id, add_customer(db)).get_json()["id"]
    lease(client)
    body = {"agent_id": "agent-1", "outcome": "no_answer"}
    headers = {"Idempotency-Key": "outcome-1"}
    first = client.post(f"/entries/{entry_id}/outcome", json=body, headers=headers)
    replay = client.post(f"/entries/{entry_id}/outcome", json=body, headers=headers)
    assert first.status_code == replay.status_code == 200
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert len(published(db, "callentry.completed")) == 1


# --- the report ----------------------------------------------------------------------------------


def test_the_campaign_report_counts_per_day(client, db):
    make_agent(db)
    today = datetime.now(UTC).date()
    list_id = campaign(client, retry_policy={"no_answer": {"delay_minutes": 0, "max_attempts": 5}})["id"]
    customers = [add_customer(db, name=f"C{n}") for n in range(3)]
    for customer in customers:
        add_entry(client, list_id, customer)
    add_entry(client, list_id, add_customer(db), due_at=f"{today + timedelta(days=1)}T12:00:00Z")
    # entry A: no answer, then reached with the offer; B: reached; C: do not call
    results = {}
    for planned in (["no_answer", "reached"], ["reached"], ["do_not_call"]):
        for step in planned:
            handed = lease(client)
            entry_id = handed["entry"]["id"]
            results.setdefault(entry_id, []).append(step)
            outcome(client, entry_id, step, offer_accepted=True if step == "reached" and len(planned) == 2 else None)
    report = client.get(f"/campaigns/{list_id}/report?from={today}&to={today + timedelta(days=1)}").get_json()
    first_day, second_day = report["days"]
    assert (report["from"], report["to"]) == (today.isoformat(), (today + timedelta(days=1)).isoformat())
    assert first_day["date"] == today.isoformat()
    assert (first_day["due"], second_day["due"]) == (3, 1)
    # The random order decides which entry got which plan; the figures do not depend on it.
    assert first_day["attempts"] == 4 and first_day["attempted"] == 3
    assert first_day["reached"] == 2 and first_day["reached_rate"] == round(2 / 3, 4)
    assert first_day["attempts_per_reach"] == 2.0
    assert first_day["offers_accepted"] == 1 and first_day["do_not_call"] == 1
    assert report["totals"]["due"] == 4 and report["totals"]["reached"] == 2
    bad = client.get(f"/campaigns/{list_id}/report?from={today}&to={today - timedelta(days=1)}")
    assert bad.status_code == 422
    assert client.get(f"/campaigns/{list_id}/report?from=yesterday").status_code == 422


def test_a_refused_entry_does_not_hide_its_time_zone_from_later_hand_outs(client, db):
    make_agent(db)
    make_agent(db, "agent-2")
    list_id = campaign(client)["id"]
    bought = str(uuid.uuid4())
    add_entry(client, list_id, add_customer(db, time_zone="Europe/Berlin"), purchase_id=bought)
    in_kolkata = add_customer(db, time_zone="Asia/Kolkata")
    assert add_entry(client, list_id, in_kolkata, purchase_id=bought).status_code == 409  # rolled back
    kolkata_entry = add_entry(client, list_id, in_kolkata).get_json()["id"]
    handed = {lease(client)["entry"]["id"], lease(client, "agent-2")["entry"]["id"]}
    assert kolkata_entry in handed


def test_a_number_put_on_the_do_not_call_list_by_hand_stops_its_customers(client, db):
    make_agent(db)
    list_id = campaign(client)["id"]
    customer = add_customer(db, phone="+4930901820")
    entry_id = add_entry(client, list_id, customer).get_json()["id"]
    response = client.post("/do-not-call", json={"phone": "+49 30 901820"})
    assert response.status_code == 201
    assert (response.get_json()["phone"], response.get_json()["source"]) == ("+4930901820", "manual")
    assert client.get(f"/entries/{entry_id}").get_json()["state"] == "cancelled"
    assert add_entry(client, list_id, customer).status_code == 422
    listed = client.get("/do-not-call?phone=%2B4930901820").get_json()
    assert listed["total"] == 1 and listed["items"][0]["phone"] == "+4930901820"
    assert problem_fields(client.post("/do-not-call", json={})) == {"customer_id"}
    assert problem_fields(client.post("/do-not-call", json={"phone": "not a number"})) == {"phone"}
