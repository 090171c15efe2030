"""The phone system's webhooks on the real callrouting app: Twilio's (signed by twilio's own
validator, directly and behind a proxy) and the generic signed JSON one; duplicate,
out-of-order and orphan callbacks; the queue, the dial retry and bad input."""

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from services.callrouting.models import Call, CallCallback
from shared.backbone import outbox
from shared.webhooks import sign_json
from tests.callrouting.inbound_support import (
    DAY,
    SECRET,
    add_agents,
    agent_state,
    inbound_app,
    make_available,
    phone_event,
    rfc2822,
    twilio_post,
    twilio_signature,
)
from tests.support.auth import signed_as

VOICE = "/webhooks/twilio/voice"


@pytest.fixture
def phone(settings_factory):
    _, client, database = inbound_app(settings_factory, options={"INBOUND_MISSED_OFFERS_LIMIT": "2"})
    add_agents(database, "ann", "bob")
    return client, database


def ring(client, call_sid="CA1", caller="+14155550100", path=VOICE, at=DAY):
    return twilio_post(
        client, path, {"CallSid": call_sid, "From": caller, "To": "+14155550199", "Timestamp": rfc2822(at)}
    )


def leg(client, agent, status, sequence, at, call_sid="CA1", leg_sid=None, round_=1, **extra):
    params = {
        "CallSid": leg_sid or f"CL-{call_sid}-{agent}",
        "ParentCallSid": call_sid,
        "CallStatus": status,
        "SequenceNumber": str(sequence),
        "Timestamp": rfc2822(at),
        **extra,
    }
    return twilio_post(client, f"/webhooks/twilio/status?agent={agent}&round={round_}", params)


def count(database, model, *where):
    with database.sessions() as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def events(database, event_type):
    with database.engine.connect() as connection:
        rows = connection.execute(select(outbox.c.envelope).where(outbox.c.event_type == event_type)).all()
    return [json.loads(row.envelope)["data"] for row in rows]


def call_record(client, call_id="CA1"):
    response = client.get(f"/calls/{call_id}")
    assert response.status_code == 200
    return response.get_json()


# --- signatures -------------------------------------------------------------------------------


def test_a_signed_incoming_call_is_dialled_to_the_longest_idle_agent_as_twiml(phone):
    client, database = phone
    make_available(client, "bob", "ann")  # bob has waited longer
    response = ring(client)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    body = response.get_data(as_text=True)
    assert '<Dial action="/webhooks/twilio/voice?round=1"' in body
    assert '<Client statusCallback="/webhooks/twilio/status?agent=bob&amp;round=1"' in body and ">bob</Client>" in body
    assert agent_state(database, "bob") == "reserved" and agent_state(database, "ann") == "available"
    [started] = events(database, "call.started")
    assert (started["call_id"], started["agent_id"], started["from_number"]) == ("CA1", "bob", "+14155550100")


def test_each_agent_is_dialled_at_their_own_endpoint_kind(phone):
    client, _ = phone
    client.put("/agents/ann/routing", json={"endpoint_kind": "sip", "endpoint": "sip:ann@pbx.example.com"})
    client.put("/agents/bob/routing", json={"endpoint_kind": "number", "endpoint": "+4915112345678"})
    client.put("/queues/default", json={"strategy": "ring_all"})
    make_available(client, "ann", "bob")
    body = ring(client).get_data(as_text=True)
    assert ">sip:ann@pbx.example.com</Sip>" in body and ">+4915112345678</Number>" in body


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Twilio-Signature": "bm90IGl0"}],
    ids=["unsigned", "wrong"],
)
def test_an_unsigned_or_wrongly_signed_twilio_webhook_is_403_and_stores_nothing(phone, headers):
    client, database = phone
    make_available(client, "ann")
    form = {"CallSid": "CA1", "From": "+14155550100", "CallStatus": "ringing", "SequenceNumber": "0"}
    for path in (VOICE, "/webhooks/twilio/status", "/webhooks/twilio/queue", "/webhooks/twilio/wait"):
        response = client.post(path, data=form, headers=headers)
        assert response.status_code == 403, path
        assert response.mimetype == "application/problem+json"
    assert count(database, Call) == 0 and count(database, CallCallback) == 0
    assert agent_state(database, "ann") == "available"


def test_a_signature_for_other_parameters_is_refused(phone):
    client, database = phone
    signature = twilio_signature("http://localhost" + VOICE, {"CallSid": "CA1", "From": "+14155550100"})
    response = client.post(
        VOICE, data={"CallSid": "CA1", "From": "+14155550111"}, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403 and count(database, Call) == 0


def test_behind_a_proxy_the_signature_is_checked_against_the_public_url(settings_factory):
    params = {"CallSid": "CA9", "From": "+14155550100", "To": "+14155550199"}
    public = "https://cc.example.com" + VOICE
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "cc.example.com",
        "X-Twilio-Signature": twilio_signature(public, params),
    }
    _, direct, _ = inbound_app(settings_factory)
    assert direct.post(VOICE, data=params, headers=forwarded).status_code == 403  # headers not trusted
    _, proxied, database = inbound_app(settings_factory, proxy_hops=1)
    assert proxied.post(VOICE, data=params, headers=forwarded).status_code == 200
    assert count(database, Call) == 1
    _, configured, _ = inbound_app(settings_factory, public_base_url="https://cc.example.com")
    headers = {"X-Twilio-Signature": twilio_signature(public, params)}
    assert configured.post(VOICE, data=params, headers=headers).status_code == 200


# --- Twilio callbacks ---------------------------------------------------------------------------


def test_an_answered_call_goes_through_on_call_and_wrap_up_and_completes_with_its_reason(phone):
    client, database = phone
    make_available(client, "ann")
    ring(client)
    assert leg(client, "ann", "ringing", 1, DAY + timedelta(seconds=1)).get_json()["outcome"] == "applied"
    leg(client, "ann", "in-progress", 2, DAY + timedelta(seconds=9))
    assert agent_state(database, "ann") == "on_call"
    leg(client, "ann", "completed", 3, DAY + timedelta(seconds=189), CallDuration="180")
    record = call_record(client)
    assert (record["state"], record["result"], record["wait_seconds"], record["talk_seconds"]) == (
        "wrap_up",
        "answered",
        9,
        180,
    )
    assert agent_state(database, "ann") == "wrap_up"
    ticket = "5b0a4c9e-8d4b-4a39-9a53-6a4b1f6f1a11"
    response = client.post(
        "/calls/CA1/wrap-up", json={"reason": "refund", "notes": "sent a new one", "ticket_id": ticket}
    )
    assert response.status_code == 200 and response.get_json()["state"] == "completed"
    assert agent_state(database, "ann") == "available"
    [completed] = events(database, "call.completed")
    assert (completed["reason"], completed["agent_id"], completed["ticket_id"], completed["talk_seconds"]) == (
        "refund",
        "ann",
        ticket,
        180,
    )
    assert [e["new_state"] for e in events(database, "agent.state_changed")] == [
        "available",
        "reserved",
        "on_call",
        "wrap_up",
        "available",
    ]


def test_a_repeated_callback_is_stored_once_and_changes_nothing(phone):
    client, database = phone
    make_available(client, "ann")
    ring(client)
    first = leg(client, "ann", "in-progress", 2, DAY + timedelta(seconds=9))
    again = leg(client, "ann", "in-progress", 2, DAY + timedelta(seconds=9))
    assert (first.get_json()["outcome"], again.get_json()["outcome"]) == ("applied", "duplicate")
    assert count(database, CallCallback, CallCallback.call_id == "CL-CA1-ann") == 1
    assert len(events(database, "call.answered")) == 1


def test_callbacks_out_of_order_give_the_same_record_as_in_order(phone):
    client, database = phone
    make_available(client, "ann")
    ring(client)
    # the end arrives first: its CallDuration already says when the talk began
    leg(client, "ann", "completed", 3, DAY + timedelta(seconds=189), CallDuration="180")
    leg(client, "ann", "in-progress", 2, DAY + timedelta(seconds=9))  # late
    leg(client, "ann", "ringing", 1, DAY + timedelta(seconds=1))  # later still
    twilio_post(
        client,
        "/webhooks/twilio/status",
        {
            "CallSid": "CA1",
            "CallStatus": "completed",
            "SequenceNumber": "1",
            "Timestamp": rfc2822(DAY + timedelta(seconds=190)),
        },
    )
    record = call_record(client)
    assert (record["state"], record["answered_at"], record["ended_at"]) == (
        "wrap_up",
        "2026-11-23T09:00:09.000000Z",
        "2026-11-23T09:03:09.000000Z",
    )
    assert (record["talk_seconds"], record["last_sequence"]) == (180, 3)
    assert len(events(database, "call.answered")) == 1 and agent_state(database, "ann") == "wrap_up"


def test_the_caller_hanging_up_while_an_agent_rings_waits_for_that_legs_report(phone):
    client, database = phone
    make_available(client, "ann")
    ring(client)
    gone = {
        "CallSid": "CA1",
        "CallStatus": "completed",
        "SequenceNumber": "1",
        "Timestamp": rfc2822(DAY + timedelta(seconds=12)),
    }
    twilio_post(client, "/webhooks/twilio/status", gone)
    assert call_record(client)["result"] is None  # the leg may yet report an answer
    leg(client, "ann", "canceled", 2, DAY + timedelta(seconds=12))
    record = call_record(client)
    assert (record["state"], record["result"], record["wait_seconds"]) == ("abandoned", "abandoned", 12)
    assert agent_state(database, "ann") == "available"  # not the agent's fault: no missed offer
    assert client.get("/agents/ann/routing").get_json()["missed_offers"] == 0
    [abandoned] = events(database, "call.abandoned")
    assert (abandoned["wait_seconds"], abandoned["short_abandon"]) == (12, False)


def test_a_callback_for_an_unknown_call_is_kept_as_an_orphan_and_reported(phone):
    client, database = phone
    params = {"CallSid": "CA-unknown", "CallStatus": "completed", "SequenceNumber": "4", "Timestamp": rfc2822(DAY)}
    assert twilio_post(client, "/webhooks/twilio/status", params).get_json()["outcome"] == "orphan"
    assert twilio_post(client, "/webhooks/twilio/status", params).get_json()["outcome"] == "duplicate"
    [orphan] = client.get("/calls/orphans").get_json()["items"]
    assert (orphan["call_id"], orphan["sequence"], orphan["payload"]["CallStatus"]) == ("CA-unknown", 4, "completed")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert client.get(f"/reports/daily?date={today}").get_json()["orphan_callbacks"] == 1
    assert count(database, Call) == 0


def test_an_unanswered_dial_counts_a_miss_and_offers_the_call_to_the_next_agent(phone):
    client, database = phone
    make_available(client, "ann", "bob")
    assert ">ann</Client>" in ring(client).get_data(as_text=True)
    retry = twilio_post(client, f"{VOICE}?round=1", {"CallSid": "CA1", "DialCallStatus": "no-answer"})
    body = retry.get_data(as_text=True)
    assert ">bob</Client>" in body and "round=2" in body
    assert agent_state(database, "ann") == "available" and agent_state(database, "bob") == "reserved"
    assert client.get("/agents/ann/routing").get_json()["missed_offers"] == 1
    # Twilio retrying the same dial action changes nothing: the miss belongs to round 1
    again = twilio_post(client, f"{VOICE}?round=1", {"CallSid": "CA1", "DialCallStatus": "no-answer"})
    assert ">bob</Client>" in again.get_data(as_text=True)
    assert client.get("/agents/ann/routing").get_json()["missed_offers"] == 1


def test_an_agent_who_misses_offers_in_a_row_goes_on_break(phone):
    client, database = phone  # INBOUND_MISSED_OFFERS_LIMIT=2
    make_available(client, "ann")
    for n, call_sid in enumerate(("CA1", "CA2"), start=1):
        ring(client, call_sid=call_sid)
        leg(client, "ann", "no-answer", 1, DAY + timedelta(seconds=20), call_sid=call_sid)
        assert agent_state(database, "ann") == ("available" if n == 1 else "on_break")
    changes = events(database, "agent.state_changed")
    assert (changes[-1]["new_state"], changes[-1]["reason"]) == ("on_break", "missed_offers")


def test_a_caller_waits_in_the_queue_hears_their_position_and_gets_the_next_free_agent(phone):
    client, database = phone
    first = ring(client, call_sid="CA1").get_data(as_text=True)
    enqueue = '<Enqueue action="/webhooks/twilio/queue" waitUrl="/webhooks/twilio/wait" waitUrlMethod="POST">'
    assert enqueue + "default</Enqueue>" in first
    ring(client, call_sid="CA2", caller="+14155550101", at=DAY + timedelta(seconds=1))
    wait = twilio_post(client, "/webhooks/twilio/wait", {"CallSid": "CA2", "QueueTime": "5"}).get_data(as_text=True)
    assert "You are number 2 in line" in wait and "<Pause" in wait
    live = client.get("/live").get_json()
    assert (live["calls_waiting"], live["queues"][0]["waiting"]) == (2, 2)
    make_available(client, "ann")
    # the second caller may not jump the line
    assert "number 2" in twilio_post(client, "/webhooks/twilio/wait", {"CallSid": "CA2", "QueueTime": "9"}).get_data(
        as_text=True
    )
    assert "<Leave" in twilio_post(client, "/webhooks/twilio/wait", {"CallSid": "CA1", "QueueTime": "10"}).get_data(
        as_text=True
    )
    dial = twilio_post(client, "/webhooks/twilio/queue", {"CallSid": "CA1", "QueueResult": "leave", "QueueTime": "10"})
    assert ">ann</Client>" in dial.get_data(as_text=True)
    assert "number 1" in twilio_post(client, "/webhooks/twilio/wait", {"CallSid": "CA2", "QueueTime": "12"}).get_data(
        as_text=True
    )
    twilio_post(client, "/webhooks/twilio/queue", {"CallSid": "CA2", "QueueResult": "hangup", "QueueTime": "3"})
    assert call_record(client, "CA2")["result"] == "short_abandon"
    assert events(database, "call.abandoned")[0]["short_abandon"] is True


def test_a_caller_who_waited_the_queues_maximum_leaves_with_an_apology_as_a_timeout(phone):
    client, _ = phone
    client.put("/queues/default", json={"max_wait_seconds": 60})
    ring(client)
    assert "<Leave" in twilio_post(client, "/webhooks/twilio/wait", {"CallSid": "CA1", "QueueTime": "61"}).get_data(
        as_text=True
    )
    bye = twilio_post(client, "/webhooks/twilio/queue", {"CallSid": "CA1", "QueueResult": "leave", "QueueTime": "61"})
    assert "<Say>" in bye.get_data(as_text=True) and "<Hangup" in bye.get_data(as_text=True)
    assert call_record(client)["result"] == "timeout"


@pytest.mark.parametrize(
    ("path", "form", "field"),
    [
        (VOICE, {"From": "+14155550100"}, "CallSid"),
        ("/webhooks/twilio/status", {"CallSid": "CA1"}, "CallStatus"),
        (
            "/webhooks/twilio/status",
            {"CallSid": "CA1", "CallStatus": "ringing", "SequenceNumber": "x"},
            "SequenceNumber",
        ),
        ("/webhooks/twilio/status", {"CallSid": "CA1", "CallStatus": "ringing", "Timestamp": "yesterday"}, "Timestamp"),
        ("/webhooks/twilio/queue", {"CallSid": "CA1"}, "QueueResult"),
    ],
)
def test_a_malformed_twilio_request_is_a_422_naming_the_field_and_stores_nothing(phone, path, form, field):
    client, database = phone
    response = twilio_post(client, path, form)
    assert response.status_code == 422 and field in json.dumps(response.get_json())
    assert count(database, CallCallback) == 0 and count(database, Call) == 0


# --- the generic JSON webhook -------------------------------------------------------------------


def test_the_json_webhook_routes_a_ringing_call_and_follows_it_to_wrap_up(phone):
    client, _ = phone
    make_available(client, "ann")
    ringing = phone_event(client, "call.ringing", "J1", 0, DAY, **{"from": "+14155550100", "to": "+14155550199"})
    assert ringing.status_code == 200
    decision = ringing.get_json()
    assert (decision["action"], decision["offers"][0]["agent_id"], decision["outcome"]) == ("dial", "ann", "routed")
    phone_event(client, "call.answered", "J1", 1, DAY + timedelta(seconds=4), agent_id="ann")
    ended = phone_event(client, "call.ended", "J1", 2, DAY + timedelta(seconds=64), agent_id="ann")
    assert ended.get_json()["outcome"] == "applied"
    # The same event sent again, signed afresh (a resend): stored once. The very same signed request: refused.
    resent = phone_event(
        client, "call.ended", "J1", 2, DAY + timedelta(seconds=64), int(time.time()) - 1, agent_id="ann"
    )
    assert resent.get_json()["outcome"] == "duplicate"
    record = call_record(client, "J1")
    assert (record["state"], record["wait_seconds"], record["talk_seconds"]) == ("wrap_up", 4, 60)


def test_the_json_webhook_answers_a_queued_call_with_its_position(phone):
    client, _ = phone
    phone_event(client, "call.ringing", "J1", 0, DAY)
    second = phone_event(client, "call.ringing", "J2", 0, DAY + timedelta(seconds=1), queue="default").get_json()
    assert (second["action"], second["position"], second["outcome"]) == ("queue", 2, "queued")
    phone_event(client, "call.abandoned", "J1", 1, DAY + timedelta(seconds=30))
    assert phone_event(client, "call.ringing", "J2", 1, DAY + timedelta(seconds=31)).get_json()["position"] == 1
    assert call_record(client, "J1")["result"] == "abandoned"


def test_a_replayed_json_event_with_an_old_timestamp_is_refused(phone):
    client, database = phone
    body = json.dumps({"event": "call.ringing", "call_id": "J1", "sequence": 0, "timestamp": DAY.isoformat()}).encode()
    old = sign_json(SECRET, body, timestamp=int(time.time()) - 3600)
    response = client.post(
        "/webhooks/events", data=body, headers={"Content-Type": "application/json", "X-Signature": old}
    )
    assert response.status_code == 403
    unsigned = client.post("/webhooks/events", data=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 403
    assert count(database, Call) == 0


def signed_post(client, body: bytes):
    return client.post(
        "/webhooks/events",
        data=body,
        headers={"Content-Type": "application/json", "X-Signature": sign_json(SECRET, body)},
    )


def test_an_event_naming_an_unknown_agent_is_a_422_naming_the_field_and_stores_nothing(phone):
    client, database = phone
    make_available(client, "ann")
    phone_event(client, "call.ringing", "J1", 0, DAY, **{"from": "+14155550100", "to": "+14155550199"})
    stored = count(database, CallCallback)
    for sequence, event in enumerate(("call.answered", "call.ended"), start=1):
        response = phone_event(client, event, "J1", sequence, DAY + timedelta(seconds=4), agent_id="nobody")
        assert response.status_code == 422, response.get_json()
        assert [error["field"] for error in response.get_json()["errors"]] == ["agent_id"]
        assert "No agent nobody." in response.get_json()["errors"][0]["detail"]
    assert count(database, CallCallback) == stored
    assert call_record(client, "J1")["state"] != "connected"


def test_a_malformed_json_event_is_400_or_422_naming_the_fields(phone):
    client, database = phone
    assert signed_post(client, b"{not json").status_code == 400
    response = signed_post(client, json.dumps({"event": "call.exploded", "call_id": "", "sequence": -1}).encode())
    assert response.status_code == 422
    named = json.dumps(response.get_json())
    assert all(field in named for field in ("event", "call_id", "sequence", "timestamp"))
    no_agent = phone_event(client, "call.answered", "J1", 1, DAY)
    assert no_agent.status_code == 422 and "agent_id" in json.dumps(no_agent.get_json())
    assert count(database, Call) == 0 and count(database, CallCallback) == 0


# --- wrap-up ----------------------------------------------------------------------------------


def test_an_unknown_reason_is_a_422_and_a_call_not_in_wrap_up_is_a_409(phone):
    client, _ = phone
    make_available(client, "ann")
    phone_event(client, "call.ringing", "J1", 0, DAY)
    assert client.post("/calls/J1/wrap-up", json={"reason": "complaint"}).status_code == 409  # still ringing
    phone_event(client, "call.answered", "J1", 1, DAY, agent_id="ann")
    phone_event(client, "call.ended", "J1", 2, DAY + timedelta(seconds=30), agent_id="ann")
    unknown = client.post("/calls/J1/wrap-up", json={"reason": "because"})
    assert unknown.status_code == 422 and "reason" in json.dumps(unknown.get_json())
    assert client.post("/calls/J1/wrap-up", json={"reason": "question"}).status_code == 200
    assert client.post("/calls/J1/wrap-up", json={"reason": "question"}).status_code == 409
    assert client.post("/calls/nope/wrap-up", json={"reason": "question"}).status_code == 404


def test_an_agent_wraps_up_only_their_own_calls_a_supervisor_any(phone):
    client, _ = phone
    make_available(client, "ann")
    phone_event(client, "call.ringing", "J1", 0, DAY)
    phone_event(client, "call.answered", "J1", 1, DAY, agent_id="ann")
    phone_event(client, "call.ended", "J1", 2, DAY + timedelta(seconds=30), agent_id="ann")
    other = client.post("/calls/J1/wrap-up", json={"reason": "question"}, headers=signed_as("bob", "agent"))
    assert other.status_code == 403
    own = client.post("/calls/J1/wrap-up", json={"reason": "question"}, headers=signed_as("ann", "agent"))
    assert own.status_code == 200 and own.get_json()["state"] == "completed"


def test_calls_are_listed_newest_first_with_filters_and_paging(phone):
    client, _ = phone
    for n in range(5):
        phone_event(client, "call.ringing", f"J{n}", 0, DAY + timedelta(minutes=n))
    page = client.get("/calls?limit=2&offset=1").get_json()
    assert (page["total"], [c["id"] for c in page["items"]]) == (5, ["J3", "J2"])
    assert client.get("/calls?date=2026-11-23&state=queued").get_json()["total"] == 5
    assert client.get("/calls?date=2026-11-22").get_json()["total"] == 0
    assert client.get("/calls?limit=0").status_code == 422


def test_a_retried_wrap_up_with_the_same_idempotency_key_gets_the_first_answer(phone):
    client, database = phone
    make_available(client, "ann")
    phone_event(client, "call.ringing", "J1", 0, DAY)
    phone_event(client, "call.answered", "J1", 1, DAY, agent_id="ann")
    phone_event(client, "call.ended", "J1", 2, DAY + timedelta(seconds=30), agent_id="ann")
    headers = {"Idempotency-Key": "wrap-J1"}
    first = client.post("/calls/J1/wrap-up", json={"reason": "question"}, headers=headers)
    again = client.post("/calls/J1/wrap-up", json={"reason": "question"}, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert len(events(database, "call.completed")) == 1


def test_a_json_call_ended_without_an_agent_while_ringing_one_is_abandoned_and_frees_the_agent(phone):
    client, database = phone
    make_available(client, "ann")
    assert phone_event(client, "call.ringing", "J1", 0, DAY).get_json()["offers"][0]["agent_id"] == "ann"
    phone_event(client, "call.ended", "J1", 1, DAY + timedelta(seconds=7))
    record = call_record(client, "J1")
    assert (record["state"], record["result"], record["wait_seconds"]) == ("abandoned", "abandoned", 7)
    assert agent_state(database, "ann") == "available"
