"""The tickets service's app factory (``gunicorn 'services.tickets.app:create_app()'``)."""

from __future__ import annotations

from shared.config import Settings
from shared.web import create_service_app

from .api import customers, reports, sla, tickets
from .models import MIGRATIONS


def create_app(settings: Settings | None = None):
    return create_service_app(
        settings or Settings.from_env("tickets"),
        title="Tickets",
        description="The customer directory and the service desk.",
        migrations=MIGRATIONS,
        blueprints=[customers, tickets, sla, reports],
    )
