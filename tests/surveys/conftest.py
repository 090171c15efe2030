"""Fixtures of the surveys tests: the surveys app on a fresh database, and ways to feed it."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from services.surveys.app import create_app
from shared.config import Settings
from tests.support.auth import signed_client

TWILIO_TOKEN = "test-twilio-token"
LINK_SECRET = "test-link-secret"
ANSWERS = {"product": 9, "service": 8, "purchase": 10, "recommend_product": 9, "recommend_store": 7}


def make_surveys_app(database_factory, amqp_url, **options):
    database = database_factory.migrated("surveys")
    settings = replace(
        Settings.from_env("surveys"),
        database_url=database.url,
        amqp_url=amqp_url,
        twilio_auth_token=TWILIO_TOKEN,
        options={"SURVEY_LINK_SECRET": LINK_SECRET, **options},
    )
    return create_app(settings), database


@pytest.fixture
def surveys_app(database_factory, broker_url):
    app, _ = make_surveys_app(database_factory, broker_url)
    return app


@pytest.fixture
def client(surveys_app):
    return signed_client(surveys_app)


@pytest.fixture
def database(surveys_app):
    return surveys_app.extensions["database"]


def response_body(**overrides) -> dict:
    body = {
        "customer_id": str(uuid.uuid4()),
        "channel": "agent",
        "agent_id": "agent-7",
        "call_id": f"CA{uuid.uuid4().hex}",
        "answers": dict(ANSWERS),
    }
    body.update(overrides)
    return body


def figure_of(group: dict, key: str, template_id: str | None = None, kind: str | None = None) -> dict:
    """The one figure of ``key`` in a metrics group (of the default template unless said, any kind
    unless said)."""
    from services.surveys.domain import DEFAULT_TEMPLATE_ID

    found = [
        figure
        for figure in group["questions"]
        if figure["key"] == key
        and figure["template_id"] == (template_id or DEFAULT_TEMPLATE_ID)
        and (kind is None or figure["kind"] == kind)
    ]
    assert len(found) == 1, found
    return found[0]
