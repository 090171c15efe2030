"""Helpers for the tickets tests: an app on a migrated database, and what it announced."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from services.tickets.app import create_app
from shared.backbone import outbox
from tests.support.auth import signed_as, signed_client

AGENT = signed_as("agent-7", "agent")


@pytest.fixture
def app(settings_factory, monkeypatch):
    monkeypatch.setenv("DEFAULT_PHONE_REGION", "DE")
    settings, _ = settings_factory("tickets")
    return create_app(settings)


@pytest.fixture
def client(app):
    return signed_client(app)


@pytest.fixture
def database(app):
    return app.extensions["database"]


def events(database, event_type: str | None = None) -> list[dict]:
    """The envelopes written to the outbox, in order (optionally of one type)."""
    query = select(outbox.c.envelope).order_by(outbox.c.id)
    if event_type:
        query = query.where(outbox.c.event_type == event_type)
    with database.engine.connect() as connection:
        return [json.loads(row.envelope) for row in connection.execute(query)]


def count(database, table) -> int:
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def fields_named(response) -> set[str]:
    assert response.status_code == 422, response.json
    return {error["field"] for error in response.json["errors"]}
