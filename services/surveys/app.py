"""The surveys service's app factory (``gunicorn 'services.surveys.app:create_app()'``)."""

from __future__ import annotations

from shared import privacy as data_protection
from shared.auth import WRITES, rule
from shared.config import Settings
from shared.web import create_service_app, unit_of_work

from .api import customer_replicas, keypad, links, responses, survey_metrics, templates
from .mail_api import survey_mail
from .models import MIGRATIONS, PrivacyErasure
from .privacy import export_customer

# Which role each route needs beyond an agent (shared.auth); the gateway signs who asks.
ACCESS = [
    rule("/templates", "supervisor", *WRITES),
    rule("/survey-metrics", "supervisor"),
    *data_protection.ACCESS,
]

# GET /privacy/customers/<id>/export, GET /privacy/erasures (shared.privacy)
privacy_routes = data_protection.privacy_blueprint("surveys", PrivacyErasure, export_customer, unit_of_work)


def create_app(settings: Settings | None = None):
    return create_service_app(
        settings or Settings.from_env("surveys"),
        title="Surveys",
        description="1-10 follow-up surveys, their metrics and the closed loop.",
        migrations=MIGRATIONS,
        access=ACCESS,
        blueprints=[
            customer_replicas,
            templates,
            responses,
            survey_mail,
            links,
            survey_metrics,
            keypad,
            privacy_routes,
        ],
    )
