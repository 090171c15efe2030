"""A consumer that counts: its handler records each real application of an event in a
test-only table, so tests can assert "applied exactly once" rather than infer it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Column, MetaData, String, Table, insert, select

from shared import event_catalog
from shared.db import Database
from shared.relay import OutboxRelay
from shared.unit_of_work import UnitOfWork

metadata = MetaData()
applications = Table("test_applications", metadata, Column("event_id", String(36)))


def counting_handler(uow, envelope) -> None:
    uow.session.execute(insert(applications).values(event_id=envelope.id))


def counting_handlers(service: str) -> dict:
    """The counting handler for every type the catalog routes to ``service`` (a consumer
    refuses to start with fewer); the tests publish only ``customer.created``."""
    return dict.fromkeys(event_catalog.consumed_by(service), counting_handler)


def applied(database: Database) -> list[str]:
    with database.engine.connect() as connection:
        return [row.event_id for row in connection.execute(select(applications.c.event_id))]


def publish_customers(database: Database, count: int) -> list[str]:
    """Commit ``count`` customer.created events in one transaction; their ids."""
    ids = []
    with UnitOfWork(database, source="tickets") as uow:
        for n in range(count):
            ids.append(uow.publish("customer.created", {"customer_id": str(uuid.uuid4()), "name": f"C{n}"}).id)
        uow.commit()
    return ids


@dataclass
class CountingPipeline:
    tickets: Database  # where events are written
    relay: OutboxRelay
    consumer: Database  # the counting consumer's database


def start_counting_pipeline(settings_factory, running, amqp_url=None) -> CountingPipeline:
    """The tickets relay and a counting consumer (as the gateway), running in ``running``."""
    broker = {"amqp_url": amqp_url} if amqp_url else {}
    tickets_settings, tickets_db = settings_factory("tickets", **broker)
    settings, database = settings_factory("gateway", **broker)
    metadata.create_all(database.engine)
    relay = running.relay(tickets_db, tickets_settings)
    running.consumer(database, settings, counting_handlers("gateway"))
    return CountingPipeline(tickets_db, relay, database)
