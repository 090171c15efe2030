"""One front: /api/<service>/... reaches the real services with the caller's identity, and the
phone webhooks and survey links reach them with the original URL, so the signatures verify."""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ElementTree

import pytest
from twilio.request_validator import RequestValidator

from shared.problems import PROBLEM_JSON
from shared.webhooks import sign_json

TWILIO_TOKEN = "gateway-test-twilio-token"
WEBHOOK_SECRET = "gateway-test-webhook-secret"
LINK_SECRET = "gateway-test-link-secret"
# The services sit behind the gateway: one trusted proxy hop (docs/gateway.md, "One front").
PHONE_ENV = {
    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    "PHONE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "SURVEY_LINK_SECRET": LINK_SECRET,
    "PROXY_HOPS": "1",
}
ANSWERS = {"product": 9, "service": 8, "purchase": 10, "recommend_product": 9, "recommend_store": 7}


@pytest.fixture(autouse=True)
def phone_env(monkeypatch):
    for name, value in PHONE_ENV.items():
        monkeypatch.setenv(name, value)


def twilio_post(client, path: str, params: dict, token: str = TWILIO_TOKEN):
    """POST ``params`` to the gateway's ``path``, signed as Twilio signs the public URL it calls."""
    signature = RequestValidator(token).compute_signature(f"http://localhost{path}", params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def json_webhook(client, body: dict, secret: str = WEBHOOK_SECRET):
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Signature": sign_json(secret, raw)}
    return client.post("/webhooks/events", data=raw, headers=headers)


# --- /api/<service>/... -------------------------------------------------------------------------


def test_an_api_call_reaches_the_service_as_the_signed_in_user_and_comes_back_with_its_headers(stack):
    client, agent = stack.client, stack.bearer("agent-7", "agent")
    created = client.post("/api/tickets/customers", json={"name": "Ada Front", "phone": "+14155550111"}, headers=agent)
    assert created.status_code == 201, created.get_json()
    listed = client.get("/api/tickets/customers?q=Ada&limit=5", headers=agent)
    assert listed.status_code == 200
    assert listed.headers["X-Total-Count"] == "1" and listed.get_json()["items"][0]["id"] == created.get_json()["id"]
    assert listed.headers["Content-Type"].startswith("application/json")


def test_a_redirect_from_a_service_points_under_its_prefix_on_the_front(stack):
    client, supervisor = stack.client, stack.bearer("sue", "supervisor")
    first = client.post("/api/tickets/customers", json={"name": "Twin One"}, headers=supervisor).get_json()
    second = client.post("/api/tickets/customers", json={"name": "Twin Two"}, headers=supervisor).get_json()
    merged = client.post(f"/api/tickets/customers/{first['id']}/merge", json={"into": second["id"]}, headers=supervisor)
    assert merged.status_code == 200, merged.get_json()
    moved = client.get(f"/api/tickets/customers/{first['id']}", headers=supervisor)
    assert moved.status_code == 308
    assert moved.headers["Location"] == f"/api/tickets/customers/{second['id']}"


def test_a_client_error_of_a_service_comes_back_as_it_is_with_the_request_id(stack):
    client, agent = stack.client, stack.bearer("agent-7", "agent")
    invalid = client.post("/api/tickets/customers", json={"name": ""}, headers={**agent, "X-Request-ID": "front-1"})
    assert invalid.status_code == 422 and invalid.headers["Content-Type"] == PROBLEM_JSON
    body = invalid.get_json()
    assert body["errors"] and body["request_id"] == "front-1" and invalid.headers["X-Request-ID"] == "front-1"
    missing = client.get(f"/api/surveys/customers/{uuid.uuid4()}/surveys", headers=agent)
    unknown = client.get("/api/callrouting/no-such-route", headers=agent)
    assert missing.status_code in (200, 404) and unknown.status_code == 404
    assert unknown.headers["Content-Type"] == PROBLEM_JSON


def test_the_idempotency_key_is_passed_on_so_a_retry_gets_the_first_answer(stack):
    client, agent = stack.client, stack.bearer("agent-7", "agent")
    body = {"customer_id": str(uuid.uuid4()), "agent_id": "agent-7"}
    first = client.post("/api/surveys/links", json=body, headers={**agent, "Idempotency-Key": "front-link-1"})
    again = client.post("/api/surveys/links", json=body, headers={**agent, "Idempotency-Key": "front-link-1"})
    assert first.status_code == again.status_code == 201, first.get_json()
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"


def test_the_role_check_of_a_service_comes_back_through_the_front(stack):
    client = stack.client
    refused = client.get("/api/tickets/reports/daily?date=2026-11-20", headers=stack.bearer("agent-7", "agent"))
    assert refused.status_code == 403 and refused.headers["Content-Type"] == PROBLEM_JSON
    allowed = client.get("/api/tickets/reports/daily?date=2026-11-20", headers=stack.bearer("sue", "supervisor"))
    assert allowed.status_code == 200 and allowed.get_json()["date"] == "2026-11-20"


def test_a_services_spec_is_read_through_the_front_and_the_front_is_no_path_of_the_gateways_spec(stack):
    agent = stack.bearer("agent-7", "agent")
    spec = stack.client.get("/api/callrouting/openapi.json", headers=agent)
    assert spec.status_code == 200 and "/agents/{agent_id}/next-call" in spec.get_json()["paths"]
    own = stack.client.get("/openapi.json", headers=agent).get_json()["paths"]
    assert not [path for path in own if path.startswith(("/api/tickets", "/api/callrouting", "/api/surveys"))]
    assert not [path for path in own if path.startswith(("/webhooks", "/links"))]


# --- /webhooks/... --------------------------------------------------------------------------------


def test_a_twilio_signed_voice_webhook_through_the_gateway_gets_twiml_from_call_routing(stack):
    params = {"CallSid": "CAfront1", "From": "+14155550100", "To": "+14155550199", "CallStatus": "ringing"}
    answer = twilio_post(stack.client, "/webhooks/twilio/voice", params)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"].startswith(("text/xml", "application/xml"))
    twiml = ElementTree.fromstring(answer.get_data())
    assert twiml.tag == "Response" and (twiml.find("Enqueue") is not None or twiml.find("Dial") is not None)
    call = stack.client.get("/api/callrouting/calls/CAfront1", headers=stack.bearer("sue", "supervisor"))
    assert call.status_code == 200 and call.get_json()["id"] == "CAfront1"


def test_a_forged_twilio_webhook_is_refused_by_the_service_through_the_gateway(stack):
    params = {"CallSid": "CAforged", "From": "+14155550100", "To": "+14155550199"}
    forged = twilio_post(stack.client, "/webhooks/twilio/voice", params, token="not-the-token")
    assert forged.status_code == 403 and forged.headers["Content-Type"] == PROBLEM_JSON
    unsigned = stack.client.post("/webhooks/twilio/voice", data=params)
    assert unsigned.status_code == 403
    # Signed for another host than the one called: the public URL is what Twilio signs.
    elsewhere_url = "https://elsewhere.example/webhooks/twilio/voice"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(elsewhere_url, params)
    elsewhere = stack.client.post("/webhooks/twilio/voice", data=params, headers={"X-Twilio-Signature": signature})
    assert elsewhere.status_code == 403


def test_the_signed_json_webhook_goes_through_and_a_forged_one_is_refused(stack):
    event = {
        "event": "call.ringing",
        "call_id": "CAjson1",
        "sequence": 1,
        "timestamp": "2026-11-20T09:00:00+00:00",
        "from": "+14155550100",
        "to": "+14155550199",
    }
    answer = json_webhook(stack.client, event)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["outcome"] in ("routed", "queued")
    forged = json_webhook(stack.client, {**event, "call_id": "CAjson2"}, secret="not-the-secret")
    assert forged.status_code == 403 and forged.headers["Content-Type"] == PROBLEM_JSON


def test_the_keypad_survey_webhook_reaches_surveys_and_its_twiml_comes_back_byte_for_byte(stack):
    path = f"/webhooks/twilio/survey?customer_id={uuid.uuid4()}"
    answer = twilio_post(stack.client, path, {"CallSid": "CAsurvey1"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    twiml = ElementTree.fromstring(answer.get_data())
    gather = twiml.find("Gather")
    assert gather is not None and gather.get("action").startswith("/webhooks/twilio/survey/answer?")
    # The service's own answer to the same retried webhook, asked directly: the same bytes.
    direct = stack.servers["surveys"].app.test_client()
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(f"http://localhost{path}", {"CallSid": "CAsurvey1"})
    again = direct.post(path, data={"CallSid": "CAsurvey1"}, headers={"X-Twilio-Signature": signature})
    assert again.get_data() == answer.get_data()


# --- /links/<token> -------------------------------------------------------------------------------


def test_a_customers_survey_link_works_through_the_gateway_without_sign_in(stack):
    agent = stack.bearer("agent-7", "agent")
    issued = stack.client.post(
        "/api/surveys/links", json={"customer_id": str(uuid.uuid4()), "agent_id": "agent-7"}, headers=agent
    )
    assert issued.status_code == 201, issued.get_json()
    token = issued.get_json()["token"]
    page = stack.client.get(f"/links/{token}")
    assert page.status_code == 200 and [q["key"] for q in page.get_json()["questions"]] == list(ANSWERS)
    answered = stack.client.post(f"/links/{token}", json={"answers": ANSWERS})
    assert answered.status_code == 201, answered.get_json()
    assert stack.client.get(f"/links/{token}").status_code == 409  # single use
    assert stack.client.get(f"/links/{token[:-2]}xx").status_code == 404


# --- /api/docs ------------------------------------------------------------------------------------


def test_the_documentation_page_links_every_spec_through_the_front_and_escapes_what_it_shows(stack):
    odd = stack.bearer("<b>agent</b>&co", "agent")
    page = stack.client.get("/api/docs", headers=odd)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"] == "default-src 'none'"
    html = page.get_data(as_text=True)
    assert "&lt;b&gt;agent&lt;/b&gt;&amp;co" in html and "<b>agent" not in html
    links = re.findall(r'href="([^"]+)"', html)
    assert links == [
        "/openapi.json",
        "/api/tickets/openapi.json",
        "/api/callrouting/openapi.json",
        "/api/surveys/openapi.json",
    ]
    for link in links:
        spec = stack.client.get(link, headers=odd)
        assert spec.status_code == 200 and spec.get_json()["openapi"].startswith("3."), link
    assert stack.client.get("/api/docs").status_code == 401


def test_an_oversized_or_unsigned_webhook_is_refused_at_the_gateway_before_it_is_read_or_passed_on(stack):
    """Issue 20: the gateway read and forwarded a 10 MB unauthenticated body before any check."""
    passed_on = []
    callrouting = stack.servers["callrouting"]
    inner = callrouting.app

    def counting(environ, start_response):
        passed_on.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    callrouting.app = counting
    try:
        huge = b"{" + b" " * (10 * 1024 * 1024) + b"}"
        big = stack.client.post(
            "/webhooks/events", data=huge, headers={"Content-Type": "application/json", "X-Signature": "t=1,v1=00"}
        )
        assert big.status_code == 413 and big.headers["Content-Type"] == PROBLEM_JSON
        unsigned = stack.client.post("/webhooks/events", json={"event": "call.ringing"})
        assert unsigned.status_code == 403 and "no signature" in unsigned.get_json()["detail"]
        assert passed_on == []
    finally:
        callrouting.app = inner
