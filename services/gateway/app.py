"""The gateway service's app factory (``gunicorn 'services.gateway.app:create_app()'``)."""

from __future__ import annotations

from shared.config import Settings
from shared.web import create_service_app

from .api import customer_replicas
from .models import MIGRATIONS


def create_app(settings: Settings | None = None):
    return create_service_app(
        settings or Settings.from_env("gateway"),
        title="Gateway",
        description="Sign-in, roles, the customer view and one front for every API.",
        migrations=MIGRATIONS,
        blueprints=[customer_replicas],
    )
