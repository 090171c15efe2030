"""The tickets service's app factory (``gunicorn 'services.tickets.app:create_app()'``)."""

from __future__ import annotations

from shared import privacy
from shared.auth import WRITES, rule
from shared.config import Settings
from shared.web import create_service_app

from . import privacy_api
from .customers_api import customers
from .mail_api import mails
from .models import MIGRATIONS
from .reports_api import reports
from .sla_api import sla
from .tickets_api import tickets

# Which role each route needs beyond an agent (shared.auth); the gateway signs who asks.
ACCESS = [
    rule("/business-calendar", "supervisor", *WRITES),
    rule("/sla-policies/<priority>", "supervisor", *WRITES),
    rule("/customers/<customer_id>/merge", "supervisor"),
    rule("/customers/duplicates", "supervisor"),
    rule("/reports/*", "supervisor"),
    *privacy.ACCESS,
    rule("/mail/parked", "supervisor"),
]


def create_app(settings: Settings | None = None):
    return create_service_app(
        settings or Settings.from_env("tickets"),
        title="Tickets",
        description="The customer directory and the service desk.",
        migrations=MIGRATIONS,
        access=ACCESS,
        blueprints=[customers, tickets, sla, reports, privacy_api.blueprint, mails],
    )
