"""The gateway service's app factory (``gunicorn 'services.gateway.app:create_app()'``).

The one door: users sign in here (``users``), and every other request is checked here and
then passed on with a signed internal token (``upstream``). The web console (``console``) is
served from here too, at ``/``.
"""

from __future__ import annotations

from shared.config import Settings
from shared.group_commit import GroupCommit
from shared.web import create_service_app

from . import auth_api, console, docs, live, privacy, proxy, reports, users, view
from .api import customer_replicas
from .models import MIGRATIONS, AuditEntry
from .upstream import Upstreams

PARTS = (auth_api, proxy, view, reports, live, docs, privacy)
# Which role the gateway's own routes need beyond an agent (shared.auth), from each part.
ACCESS = [rule for part in PARTS for rule in part.ACCESS] + console.ACCESS


def create_app(settings: Settings | None = None):
    settings = settings or Settings.from_env("gateway")
    app = create_service_app(
        settings,
        title="Gateway",
        description="Sign-in, roles, the customer view and one front for every API.",
        migrations=MIGRATIONS,
        blueprints=[
            customer_replicas,
            auth_api.auth,
            proxy.front,
            view.customer_views,
            reports.reports,
            live.live,
            docs.docs,
            privacy.privacy,
        ],
        pages=[console.console],
        access=ACCESS,
        authenticate=users.authenticate,
        denied=console.denied,
    )
    app.extensions["upstreams"] = Upstreams(settings, app.extensions["internal_tokens"])
    app.extensions["audit_log"] = GroupCommit(app.extensions["database"], AuditEntry.__table__)
    console.i18n.init_app(app)
    return app
