"""The callrouting service's app factory (``gunicorn 'services.callrouting.app:create_app()'``)."""

from __future__ import annotations

from shared.config import Settings
from shared.web import create_service_app

from . import phone_api
from .api import agents, campaigns, customer_replicas, do_not_call, entries
from .models import MIGRATIONS


def create_app(settings: Settings | None = None):
    return create_service_app(
        settings or Settings.from_env("callrouting"),
        title="Call routing",
        description="Follow-up call lists, inbound routing and agent states.",
        migrations=MIGRATIONS,
        blueprints=[customer_replicas, agents, campaigns, entries, do_not_call, *phone_api.BLUEPRINTS],
    )
