"""The event backbone end to end on a real broker and real databases: an event committed
with a business change reaches every consumer exactly once, and nothing else does."""

import importlib
import uuid

import pika
import pytest
from sqlalchemy import select

from services.tickets import customers as tickets
from shared import topology
from shared.backbone import outbox
from shared.broker import declare_topology
from shared.events import Envelope
from shared.unit_of_work import UnitOfWork
from tests.support.counting import applied, counting_handlers, start_counting_pipeline
from tests.support.counting import metadata as counting_metadata
from tests.support.services import Running, count_rows, processed_ids, unpublished, wait_for

CONSUMERS = ("callrouting", "surveys", "gateway")


@pytest.fixture
def running():
    workers = Running()
    yield workers
    workers.close()


@pytest.fixture
def system(settings_factory, running):
    """Tickets with its relay, and the three real consumers of customer.created."""
    tickets_settings, tickets_db = settings_factory("tickets")
    consumers = {}
    for name in CONSUMERS:
        settings, database = settings_factory(name)
        consumers[name] = database
        running.consumer(database, settings)
    running.relay(tickets_db, tickets_settings)
    return tickets_settings, tickets_db, consumers


def create_customer(database, name="Ada", phone="+4915112345678"):
    with UnitOfWork(database, source="tickets") as uow:
        return tickets.create_customer(uow, name=name, phone=phone, email=None)


def test_a_committed_event_reaches_each_consumer_once_and_builds_its_replica(system):
    _, tickets_db, consumers = system
    customer = create_customer(tickets_db)
    for name, database in consumers.items():
        replicas = _replicas(name)
        wait_for(lambda db=database, table=replicas: count_rows(db, table) == 1, what=f"{name} replica")
        with database.engine.connect() as connection:
            replica = connection.execute(select(replicas)).one()
        assert (replica.customer_id, replica.name, replica.phone) == (customer.id, "Ada", "+4915112345678")
        assert len(processed_ids(database)) == 1
    assert unpublished(tickets_db) == 0


def _replicas(service):
    return importlib.import_module(f"services.{service}.models").CustomerReplica.__table__


def test_each_event_is_applied_exactly_once_per_consumer(settings_factory, running):
    pipeline = start_counting_pipeline(settings_factory, running)
    tickets_db, database = pipeline.tickets, pipeline.consumer
    created = [create_customer(tickets_db, name=f"Customer {n}", phone=None) for n in range(40)]
    wait_for(lambda: len(applied(database)) >= 40, what="40 applications")
    published = _published_event_ids(tickets_db)
    assert sorted(applied(database)) == sorted(published)
    assert len(set(published)) == len(created) == 40


def _published_event_ids(database):
    with database.engine.connect() as connection:
        return [row.event_id for row in connection.execute(select(outbox.c.event_id))]


def test_an_event_whose_transaction_rolled_back_is_never_published(settings_factory, running):
    pipeline = start_counting_pipeline(settings_factory, running)
    tickets_db, database = pipeline.tickets, pipeline.consumer

    with pytest.raises(RuntimeError), UnitOfWork(tickets_db, source="tickets") as uow:
        doomed = uow.publish("customer.created", {"customer_id": str(uuid.uuid4()), "name": "Doomed"})
        raise RuntimeError("the business change failed after the event was written")
    with UnitOfWork(tickets_db, source="tickets") as uow:  # left without commit
        abandoned = uow.publish("customer.created", {"customer_id": str(uuid.uuid4()), "name": "Abandoned"})
    marker = create_customer(tickets_db, name="Committed", phone=None)

    wait_for(lambda: len(applied(database)) == 1, what="the committed event")
    (only,) = applied(database)
    assert only not in (doomed.id, abandoned.id)
    assert _published_event_ids(tickets_db) == [only]
    assert marker.name == "Committed"


def test_a_duplicate_delivery_is_applied_once(settings_factory, running, amqp_url):
    settings, database = settings_factory("gateway")
    counting_metadata.create_all(database.engine)
    declare_topology(settings)
    envelope = Envelope(
        type="customer.created", data={"customer_id": str(uuid.uuid4()), "name": "Twice"}, source="tickets"
    ).validate()
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for _ in range(3):  # the same event, delivered three times
        channel.basic_publish("events", "customer.created", envelope.to_json(), mandatory=True)
    connection.close()

    running.consumer(database, settings, counting_handlers(settings.service))
    wait_for(lambda: _queue_depth(amqp_url, topology.work_queue("gateway")) == 0, what="queue drained")
    wait_for(lambda: applied(database), what="first application")
    assert applied(database) == [envelope.id]
    assert processed_ids(database) == [envelope.id]


def _queue_depth(amqp_url, queue) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_two_relays_at_once_publish_each_event_once(settings_factory, running, amqp_url):
    tickets_settings, tickets_db = settings_factory("tickets", relay_batch_size=25)
    declare_topology(tickets_settings)
    # A private queue that sees every customer.created the relays send.
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    tap = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(tap, "events", routing_key="customer.created")

    first, second = running.relay(tickets_db, tickets_settings), running.relay(tickets_db, tickets_settings)
    wait_for(lambda: first.ready.is_set() and second.ready.is_set(), what="both relays ready")
    with UnitOfWork(tickets_db, source="tickets") as uow:
        for n in range(600):
            uow.publish("customer.created", {"customer_id": str(uuid.uuid4()), "name": f"C{n}"})
        uow.commit()
    wait_for(lambda: unpublished(tickets_db) == 0, what="the outbox to drain")
    running.close()

    received = []
    while (message := channel.basic_get(tap, auto_ack=True))[0] is not None:
        received.append(message[1].message_id)
    connection.close()
    assert len(received) == 600
    assert len(set(received)) == 600
    assert first.published_count > 0 and second.published_count > 0, "both relays took part"
    assert first.published_count + second.published_count == 600
