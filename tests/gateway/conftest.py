"""The gateway in front of the real services.

``stack`` starts tickets, call routing and surveys as real HTTP servers (werkzeug, threaded)
on their own migrated databases, with their outbox relays and consumers on the test broker,
and a gateway app pointed at them. A server can be stopped for real or slowed down.
"""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass, field

import pytest
from werkzeug.serving import make_server

from services.gateway.app import create_app as create_gateway
from shared.db import Database
from tests.support.auth import gateway_user
from tests.support.services import Running

BACKENDS = ("tickets", "callrouting", "surveys")
PHONE_WEBHOOK_SECRET = "gateway-test-webhook-secret"
# Settings each service gets beyond the defaults: call routing verifies phone webhooks with it.
BACKEND_OPTIONS = {"callrouting": {"webhook_secret": PHONE_WEBHOOK_SECRET}}


class ServiceServer:
    """One service app served over real HTTP on a free port; ``stop()`` closes the port."""

    def __init__(self, app):
        self.app = app
        self.delay = 0.0
        self._http = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._http.server_port}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        self.running = True

    def _wsgi(self, environ, start_response):
        if self.delay:
            time.sleep(self.delay)  # a slow service: every answer takes this long
        return self.app(environ, start_response)

    def stop(self) -> None:
        if self.running:
            self._http.shutdown()
            self._http.server_close()
            self._thread.join(timeout=10)
            self.running = False


@dataclass
class Stack:
    gateway: object
    gateway_database: Database
    servers: dict[str, ServiceServer]
    databases: dict[str, Database]
    settings: dict = field(default_factory=dict)

    @property
    def client(self):
        return self.gateway.test_client()

    def user(self, user_id: str, role: str = "agent") -> str:
        """Create ``user_id`` with ``role`` (if new) and return a fresh API token for them."""
        return gateway_user(self.gateway_database, user_id, role)

    def bearer(self, user_id: str, role: str = "agent") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user(user_id, role)}"}


@pytest.fixture
def stack(settings_factory):
    running = Running()
    servers: dict[str, ServiceServer] = {}
    databases: dict[str, Database] = {}
    all_settings = {}
    for service in BACKENDS:
        settings, database = settings_factory(service, **BACKEND_OPTIONS.get(service, {}))
        running.relay(database, settings)
        running.consumer(database, settings)
        app = importlib.import_module(f"services.{service}.app").create_app(settings)
        servers[service] = ServiceServer(app)
        databases[service] = database
        all_settings[service] = settings
    options = {f"{name.upper()}_URL": server.url for name, server in servers.items()}
    gateway_settings, gateway_database = settings_factory("gateway", options=options)
    running.relay(gateway_database, gateway_settings)
    running.consumer(gateway_database, gateway_settings)
    all_settings["gateway"] = gateway_settings
    gateway = create_gateway(gateway_settings)
    yield Stack(gateway, gateway_database, servers, databases, all_settings)
    hub = gateway.extensions.get("live_hub")  # started by a stream or a view: let go of the broker
    if hub is not None:
        hub.close()
    for server in servers.values():
        server.stop()
    running.close()
