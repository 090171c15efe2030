"""The callrouting service's app factory (``gunicorn 'services.callrouting.app:create_app()'``)."""

from __future__ import annotations

from shared import privacy as data_protection
from shared.auth import WRITES, rule
from shared.config import Settings
from shared.web import create_service_app, unit_of_work

from .customers import customer_replicas
from .inbound import api as inbound_api
from .inbound import staffing_api
from .models import MIGRATIONS, PrivacyErasure
from .outbound.api import agents, campaigns, do_not_call, entries
from .privacy import export_customer

# Which role each route needs beyond an agent (shared.auth); the gateway signs who asks.
ACCESS = [
    rule("/campaigns/<campaign_id>/report", "supervisor"),
    rule("/campaigns*", "supervisor", *WRITES),
    rule("/agents", "supervisor", *WRITES),
    rule("/agents/<agent_id>/routing", "supervisor", *WRITES),
    rule("/agents/<agent_id>/next-call", "agent", own="agent_id"),
    rule("/agents/<agent_id>/state", "agent", own="agent_id"),
    rule("/queues/<name>", "supervisor", *WRITES),
    rule("/calls/orphans", "supervisor"),
    rule("/reports/*", "supervisor"),
    *data_protection.ACCESS,
]

# GET /privacy/customers/<id>/export, GET /privacy/erasures (shared.privacy)
privacy_routes = data_protection.privacy_blueprint("callrouting", PrivacyErasure, export_customer, unit_of_work)


def create_app(settings: Settings | None = None):
    return create_service_app(
        settings or Settings.from_env("callrouting"),
        title="Call routing",
        description="Follow-up call lists, inbound routing and agent states.",
        migrations=MIGRATIONS,
        access=ACCESS,
        blueprints=[
            customer_replicas,
            agents,
            campaigns,
            entries,
            do_not_call,
            *inbound_api.BLUEPRINTS,
            staffing_api.blueprint,
            privacy_routes,
        ],
    )
