"""Signed phone webhooks (shared/webhooks.py): Twilio's signature, checked with twilio's own
validator, directly and behind a proxy; and the generic JSON webhook's HMAC with replay window."""

import json
import tempfile
import time
from dataclasses import replace

import pytest
from flask import Flask, jsonify
from twilio.request_validator import RequestValidator

from shared import webhooks
from shared.config import Settings
from shared.db import Database
from shared.webhooks import sign_json, signed

TOKEN = "test-twilio-token"
SECRET = "test-webhook-secret"
FORM = {"CallSid": "CA123", "From": "+14155550100", "To": "+14155550199", "CallStatus": "ringing"}


def make_app(**overrides) -> Flask:
    app = Flask("webhooks")
    secrets = {"twilio_auth_token": TOKEN, "webhook_secret": SECRET}
    settings = replace(Settings.from_env("callrouting"), **{**secrets, **overrides})
    app.extensions["settings"] = settings
    # Where the JSON webhook's signatures are claimed once (a service's own database).
    database = Database(f"sqlite:///{tempfile.mkdtemp(prefix='webhooks-')}/webhooks.db")
    webhooks.metadata.create_all(database.engine)
    app.extensions["database"] = database
    received = []
    app.extensions["received"] = received

    @app.post("/webhooks/twilio/voice")
    @signed("twilio")
    def voice():
        received.append("twilio")
        return "<Response/>", 200, {"Content-Type": "text/xml"}

    @app.post("/webhooks/events")
    @signed("json")
    def events():
        received.append("json")
        return jsonify(ok=True)

    return app


def twilio_signature(url: str, params: dict) -> str:
    return RequestValidator(TOKEN).compute_signature(url, params)


def test_a_request_signed_by_twilio_for_the_url_it_called_passes():
    app = make_app()
    url = "http://localhost/webhooks/twilio/voice"
    response = app.test_client().post(
        "/webhooks/twilio/voice", data=FORM, headers={"X-Twilio-Signature": twilio_signature(url, FORM)}
    )
    assert response.status_code == 200
    assert app.extensions["received"] == ["twilio"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Twilio-Signature": "bm90IGl0"}, {"X-Twilio-Signature": twilio_signature("http://elsewhere/x", FORM)}],
    ids=["unsigned", "garbage", "signed-for-another-url"],
)
def test_a_request_not_signed_for_this_url_and_body_is_403_and_never_reaches_the_view(headers):
    app = make_app()
    response = app.test_client().post("/webhooks/twilio/voice", data=FORM, headers=headers)
    assert response.status_code == 403
    assert app.extensions["received"] == []


def test_a_changed_parameter_breaks_the_signature():
    app = make_app()
    signature = twilio_signature("http://localhost/webhooks/twilio/voice", FORM)
    response = app.test_client().post(
        "/webhooks/twilio/voice", data={**FORM, "From": "+14155550111"}, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


def test_behind_a_trusted_proxy_the_public_url_is_rebuilt_from_forwarded_headers():
    public = "https://cc.example.com/webhooks/twilio/voice"
    headers = {
        "X-Twilio-Signature": twilio_signature(public, FORM),
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "cc.example.com",
    }
    behind_proxy = make_app(proxy_hops=1).test_client()
    assert behind_proxy.post("/webhooks/twilio/voice", data=FORM, headers=headers).status_code == 200
    # Without trusting the proxy, the same request is checked against the URL Flask saw, and fails.
    direct = make_app().test_client()
    assert direct.post("/webhooks/twilio/voice", data=FORM, headers=headers).status_code == 403


def test_a_configured_public_base_url_wins_over_what_the_request_says():
    public = "https://cc.example.com/webhooks/twilio/voice?queue=sales"
    app = make_app(public_base_url="https://cc.example.com")
    response = app.test_client().post(
        "/webhooks/twilio/voice?queue=sales",
        data=FORM,
        headers={"X-Twilio-Signature": twilio_signature(public, FORM), "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 200


def test_without_a_configured_token_every_twilio_request_is_refused():
    app = make_app(twilio_auth_token=None)
    signature = twilio_signature("http://localhost/webhooks/twilio/voice", FORM)
    response = app.test_client().post("/webhooks/twilio/voice", data=FORM, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def post_json(app, body: bytes, signature: str):
    return app.test_client().post(
        "/webhooks/events", data=body, content_type="application/json", headers={"X-Signature": signature}
    )


def test_a_json_event_signed_now_passes():
    app = make_app()
    body = json.dumps({"event": "call.ringing", "call_id": "c1"}).encode()
    assert post_json(app, body, sign_json(SECRET, body)).status_code == 200


@pytest.mark.parametrize(
    "signature",
    ["", "t=abc,v1=00", f"t={int(time.time())},v1=deadbeef", sign_json("another-secret", b"{}")],
    ids=["missing", "malformed", "wrong-digest", "wrong-secret"],
)
def test_a_json_event_with_a_bad_signature_is_403(signature):
    app = make_app()
    assert post_json(app, b"{}", signature).status_code == 403
    assert app.extensions["received"] == []


def test_a_replayed_json_event_with_an_old_timestamp_is_refused():
    app = make_app()
    body = b'{"event": "call.ended", "call_id": "c1"}'
    old = sign_json(SECRET, body, timestamp=int(time.time()) - 301)
    assert post_json(app, body, old).status_code == 403
    recent = sign_json(SECRET, body, timestamp=int(time.time()) - 200)
    assert post_json(app, body, recent).status_code == 200


def test_a_json_body_changed_after_signing_is_refused():
    app = make_app()
    signature = sign_json(SECRET, b'{"call_id": "c1"}')
    assert post_json(app, b'{"call_id": "c2"}', signature).status_code == 403


def test_a_json_event_replayed_within_its_window_is_refused():
    app = make_app()
    body = b'{"event": "call.ended", "call_id": "c1"}'
    signature = sign_json(SECRET, body)
    assert post_json(app, body, signature).status_code == 200
    replay = post_json(app, body, signature)
    assert replay.status_code == 403
    assert "already received" in replay.get_data(as_text=True)
    assert app.extensions["received"] == ["json"]
    # the phone system's retry of the same event is signed afresh, and is the handler's to dedupe
    assert post_json(app, body, sign_json(SECRET, body, timestamp=int(time.time()) - 1)).status_code == 200


def test_outside_development_a_twilio_webhook_needs_the_pinned_public_url():
    # An attacker signs for their own host and sends that Host: without a pinned URL it would pass.
    forged_url = "http://attacker.example/webhooks/twilio/voice"
    headers = {"X-Twilio-Signature": twilio_signature(forged_url, FORM), "Host": "attacker.example"}
    unpinned = make_app(development=False)
    response = unpinned.test_client().post("/webhooks/twilio/voice", data=FORM, headers=headers)
    assert response.status_code == 403
    assert unpinned.extensions["received"] == []
    pinned = make_app(development=False, public_base_url="https://cc.example.com")
    assert pinned.test_client().post("/webhooks/twilio/voice", data=FORM, headers=headers).status_code == 403
    genuine = {"X-Twilio-Signature": twilio_signature("https://cc.example.com/webhooks/twilio/voice", FORM)}
    assert pinned.test_client().post("/webhooks/twilio/voice", data=FORM, headers=genuine).status_code == 200


def test_without_callcenter_env_a_service_is_in_production(monkeypatch):
    monkeypatch.delenv("CALLCENTER_ENV", raising=False)
    assert Settings.from_env("callrouting").development is False
    monkeypatch.setenv("CALLCENTER_ENV", "development")
    assert Settings.from_env("callrouting").development is True
