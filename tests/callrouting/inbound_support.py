"""Helpers for the inbound-call tests: a callrouting app with webhook secrets, agents, and
requests signed the way Twilio (its own RequestValidator) and a JSON adapter sign them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from twilio.request_validator import RequestValidator

from services.callrouting.app import create_app
from services.callrouting.models import Agent
from shared.webhooks import sign_json
from tests.support.auth import signed_client

TOKEN = "test-twilio-token"
SECRET = "test-webhook-secret"
DAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def inbound_app(settings_factory, **overrides):
    """The real callrouting app on a fresh database; (app, client, database)."""
    settings, database = settings_factory("callrouting", twilio_auth_token=TOKEN, webhook_secret=SECRET, **overrides)
    app = create_app(settings)
    return app, signed_client(app), database


def add_agents(database, *agent_ids, skills=(), state="offline"):
    with database.sessions() as session:
        for agent_id in agent_ids:
            session.add(Agent(agent_id=agent_id, name=agent_id.title(), skills=list(skills), state=state))
        session.commit()


def agent_state(database, agent_id) -> str:
    with database.sessions() as session:
        return session.get(Agent, agent_id).state


def make_available(client, *agent_ids):
    for agent_id in agent_ids:
        response = client.put(f"/agents/{agent_id}/state", json={"state": "available"})
        assert response.status_code == 200, response.get_json()


def twilio_signature(url: str, params: dict, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def twilio_post(client, path: str, params: dict, base: str = "http://localhost", headers=None):
    """POST form params to ``path`` signed by Twilio's own validator for ``base + path``."""
    signature = twilio_signature(base + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature, **(headers or {})})


def rfc2822(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000")


def phone_event(client, event: str, call_id: str, sequence: int, at: datetime, signed_at=None, **fields):
    """A signed JSON event; ``signed_at`` (unix seconds) signs a resend afresh, as the phone system does."""
    body = json.dumps(
        {"event": event, "call_id": call_id, "sequence": sequence, "timestamp": at.isoformat(), **fields}
    ).encode()
    return client.post(
        "/webhooks/events",
        data=body,
        headers={"Content-Type": "application/json", "X-Signature": sign_json(SECRET, body, signed_at)},
    )


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
