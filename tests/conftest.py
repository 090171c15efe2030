"""Fixtures: a real RabbitMQ node and real databases.

The broker is a throwaway node that pytest-rabbitmq starts on a free port with its own
data directory, once per run; each test starts from an empty topology. Databases are
SQLite files in the test's temporary directory, or, when ``TEST_DATABASE_URL`` names a
PostgreSQL server (``make test-postgres``), fresh databases created on it per test.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import replace

import pika
import pytest
from pytest_rabbitmq import factories
from sqlalchemy.engine import make_url

from shared import event_catalog, topology
from shared.config import Settings
from shared.db import Database, migrate
from shared.unit_of_work import CollectingUnitOfWork
from tests.support.postgres import create_database, drop_databases
from tests.support.services import migrations_of

# An Erlang node that fails to start writes erl_crash.dump into its working directory.
os.environ.setdefault("ERL_CRASH_DUMP", os.path.join(tempfile.gettempdir(), "callcenter-erl_crash.dump"))
# The services accept only requests the gateway signed (shared.auth): one secret per test run.
os.environ.setdefault("INTERNAL_AUTH_SECRET", uuid.uuid4().hex)
# Webhook signatures against the URL the test client called (shared.webhooks): the tests that
# are about a pinned PUBLIC_BASE_URL, and about refusing to go without one, say so themselves.
os.environ.setdefault("CALLCENTER_ENV", "development")
rabbitmq_proc = factories.rabbitmq_proc(port=None)

FAST_RETRIES = (0.2, 0.4)
DATABASE_FIXTURES = {"database_factory", "settings_factory", "uow_factory"}


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & DATABASE_FIXTURES:
            item.add_marker(pytest.mark.db)
        if "amqp_url" in used:
            item.add_marker(pytest.mark.broker)


@pytest.fixture(scope="session")
def broker_url(rabbitmq_proc) -> str:
    return f"amqp://guest:guest@{rabbitmq_proc.host}:{rabbitmq_proc.port}/%2F"


@pytest.fixture
def amqp_url(broker_url) -> str:
    """The shared test node, with every queue and exchange of ours deleted first."""
    reset_topology(broker_url)
    return broker_url


def reset_topology(url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for service in event_catalog.consuming_services():
        names = [topology.work_queue(service), topology.parking_queue(service)]
        names += [topology.retry_queue(service, delay) for delay in (*FAST_RETRIES, 1.0, 10.0, 60.0)]
        for name in names:
            channel.queue_delete(name)
    channel.queue_delete(topology.UNROUTED)
    channel.exchange_delete("events")
    channel.exchange_delete(topology.UNROUTED)
    connection.close()


class DatabaseFactory:
    """Makes empty databases: SQLite files, or PostgreSQL databases dropped afterwards.

    On PostgreSQL a migrated database is a copy (``CREATE DATABASE … TEMPLATE``) of one migrated
    per service and run: running every migration again for each of hundreds of tests was most of
    the run's time. The template is made over ``TEST_DATABASE_DIRECT_URL`` when PgBouncer stands
    in front (scripts/with-pgbouncer.sh): a pooled server connection left on it would block the copy.
    """

    templates: dict[str, str] = {}  # service -> its migrated template database, for this run

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.server = os.environ.get("TEST_DATABASE_URL")
        self.direct = os.environ.get("TEST_DATABASE_DIRECT_URL") or self.server
        self.created: list[str] = []
        self.opened: list[Database] = []

    @property
    def backend(self) -> str:
        return "postgresql" if self.server else "sqlite"

    def url(self, label: str, template: str | None = None) -> str:
        if not self.server:
            return f"sqlite:///{self.tmp_path / f'{label}.db'}"
        name = f"t_{label}_{uuid.uuid4().hex[:10]}"
        create_database(self.direct if template else self.server, name, template)
        self.created.append(name)
        return make_url(self.server).set(database=name).render_as_string(hide_password=False)

    def migrated(self, service: str) -> Database:
        if self.server:
            database = Database(self.url(service, template=self._template(service)))
        else:
            database = Database(self.url(service))
            migrate(database, migrations_of(service))
        self.opened.append(database)
        return database

    def _template(self, service: str) -> str:
        if service not in self.templates:
            name = f"template_{service}_{uuid.uuid4().hex[:10]}"
            template = Database(create_database(self.direct, name))
            migrate(template, migrations_of(service))
            template.dispose()  # no connection may stay on a template while it is copied
            self.templates[service] = name
        return self.templates[service]

    def cleanup(self) -> None:
        for database in self.opened:
            database.dispose()
        if not self.created:
            return
        drop_databases(self.server, self.created)

    @classmethod
    def drop_templates(cls) -> None:
        server = os.environ.get("TEST_DATABASE_DIRECT_URL") or os.environ.get("TEST_DATABASE_URL")
        if server and cls.templates:
            drop_databases(server, list(cls.templates.values()))
        cls.templates.clear()


@pytest.fixture(scope="session", autouse=True)
def _database_templates():
    yield
    DatabaseFactory.drop_templates()


@pytest.fixture
def database_factory(tmp_path):
    factory = DatabaseFactory(tmp_path)
    yield factory
    factory.cleanup()


# Where a service is told its broker is when a test has none: nothing listens there, so a
# test that needed one fails at once instead of silently talking to another test's broker.
NO_BROKER = "amqp://guest:guest@127.0.0.1:9/%2F?connection_attempts=1&socket_timeout=0.2"


@pytest.fixture
def settings_factory(database_factory, tmp_path, monkeypatch, request):
    """Settings for a service with a fresh migrated database, on the test broker (started on
    first use: ``broker=False`` is for tests that need none)."""
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))

    def make(service: str, *, broker: bool = True, **overrides) -> tuple[Settings, Database]:
        database = database_factory.migrated(service)
        amqp_url = request.getfixturevalue("amqp_url") if broker else NO_BROKER
        options = {"amqp_url": amqp_url, "retry_delays": FAST_RETRIES, "relay_poll_interval": 0.02, **overrides}
        settings = replace(Settings.from_env(service), database_url=database.url, **options)
        return settings, database

    return make


@pytest.fixture
def uow_factory(database_factory):
    """The seam for fast tests of use cases and event handlers: ``uow = uow_factory("tickets")``
    is a :class:`~shared.unit_of_work.CollectingUnitOfWork` on a fresh migrated database of that
    service, collecting what it publishes (no relay, no broker). Each call opens a new unit of
    work on the same database, so a test can act, then look, in two transactions."""
    databases: dict[str, Database] = {}

    def make(service: str, **options) -> CollectingUnitOfWork:
        if service not in databases:
            databases[service] = database_factory.migrated(service)
        return CollectingUnitOfWork(databases[service], source=service, **options)

    return make
