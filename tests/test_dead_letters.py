"""Poison messages: parked with their reason, never blocking the queue, and replayable."""

import io
import os
import subprocess
import sys
import time
import uuid

import pika
import pytest
from sqlalchemy import insert

from shared import deadletters, event_catalog, topology
from shared.broker import declare_topology
from shared.config import PROJECT_ROOT
from shared.events import Envelope
from tests.support.counting import applications, applied, metadata
from tests.support.services import Running, wait_for


def customer_created(name="Ada"):
    return Envelope(
        type="customer.created", data={"customer_id": str(uuid.uuid4()), "name": name}, source="tickets"
    ).validate()


def publish_raw(amqp_url, body: bytes, routing_key="customer.created", message_id=None):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    properties = pika.BasicProperties(delivery_mode=2, message_id=message_id or str(uuid.uuid4()))
    channel.basic_publish("events", routing_key, body, properties, mandatory=True)
    connection.close()
    return properties.message_id


def parked(settings) -> list[deadletters.ParkedMessage]:
    lot = deadletters.ParkingLot(settings)
    try:
        return lot.browse()
    finally:
        lot.close()


class FlakyHandler:
    """Fails for the names it is told to, until it is told to stop failing."""

    def __init__(self):
        self.failing = {"Poison"}
        self.attempts: list[str] = []

    def __call__(self, uow, envelope):
        self.attempts.append(envelope.id)
        if envelope.data["name"] in self.failing:
            raise ValueError(f"cannot handle {envelope.data['name']}")
        uow.session.execute(insert(applications).values(event_id=envelope.id))


@pytest.fixture
def gateway(settings_factory):
    settings, database = settings_factory("gateway")
    metadata.create_all(database.engine)
    declare_topology(settings)
    running = Running()
    handler = FlakyHandler()
    running.consumer(database, settings, dict.fromkeys(event_catalog.consumed_by(settings.service), handler))
    yield settings, database, handler
    running.close()


def test_a_malformed_message_is_parked_at_once_with_its_reason_and_blocks_nothing(gateway, amqp_url):
    settings, database, handler = gateway
    bad_id = publish_raw(amqp_url, b"{this is not json")
    good = customer_created()
    publish_raw(amqp_url, good.to_json(), message_id=good.id)

    wait_for(lambda: applied(database) == [good.id], what="the good event behind the bad one")
    (message,) = wait_for(lambda: parked(settings), what="the malformed message parked")
    assert message.message_id == bad_id
    assert message.headers["x-reason"].startswith("malformed: ")
    assert "not JSON" in message.headers["x-reason"]
    assert message.headers["x-attempt"] == 0, "parked at once, without retries"
    assert handler.attempts == [good.id]


def test_an_envelope_breaking_its_contract_is_parked_at_once(gateway, amqp_url):
    settings, _, handler = gateway
    bad = Envelope(type="customer.created", data={"customer_id": "not-a-uuid", "name": "X"}, source="tickets")
    publish_raw(amqp_url, bad.to_json(), message_id=bad.id)
    (message,) = wait_for(lambda: parked(settings), what="the invalid envelope parked")
    assert "customer_id" in message.headers["x-reason"]
    assert handler.attempts == []


def test_a_failing_event_is_retried_through_delay_queues_then_parked_and_can_be_replayed(gateway, amqp_url):
    settings, database, handler = gateway
    poison = customer_created("Poison")
    publish_raw(amqp_url, poison.to_json(), message_id=poison.id)
    healthy = [customer_created(f"Healthy {n}") for n in range(5)]
    for event in healthy:
        publish_raw(amqp_url, event.to_json(), message_id=event.id)

    (message,) = wait_for(lambda: parked(settings), timeout=30, what="the failing event parked")
    attempts = len(settings.retry_delays) + 1
    assert message.headers["x-attempt"] == attempts - 1, "tried once, then once from each retry queue"
    assert handler.attempts.count(poison.id) >= attempts
    assert message.message_id == poison.id
    assert message.headers["x-reason"] == f"handler failed {attempts} times: ValueError('cannot handle Poison')"
    assert message.headers["x-original-routing-key"] == "customer.created"
    assert sorted(applied(database)) == sorted(event.id for event in healthy), "the rest went through meanwhile"

    # The operator fixes the cause and replays the parked event with the CLI.
    handler.failing.clear()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "AMQP_URL": amqp_url}
    cli = [sys.executable, "-m", "shared.deadletters"]
    listing = subprocess.run([*cli, "list", "gateway"], env=env, capture_output=True, text=True, check=True)
    assert poison.id in listing.stdout and "handler failed" in listing.stdout
    shown = subprocess.run([*cli, "show", "gateway", poison.id], env=env, capture_output=True, text=True, check=True)
    assert '"Poison"' in shown.stdout and "x-reason" in shown.stdout
    assert parked(settings), "listing and showing leave the message parked"

    replay = subprocess.run([*cli, "replay", "gateway", poison.id], env=env, capture_output=True, text=True)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    wait_for(lambda: poison.id in applied(database), what="the replayed event applied")
    assert parked(settings) == []
    assert applied(database).count(poison.id) == 1


def test_replaying_an_unknown_id_says_so_and_changes_nothing(gateway, amqp_url, monkeypatch):
    settings, _, _ = gateway
    monkeypatch.setenv("AMQP_URL", amqp_url)
    publish_raw(amqp_url, b"not an envelope")
    wait_for(lambda: parked(settings), what="something parked")
    out = io.StringIO()
    assert deadletters.main(["replay", "gateway", "no-such-id"], out=out) == 1
    assert "no parked message no-such-id" in out.getvalue()
    assert len(parked(settings)) == 1


def test_work_and_parking_queues_are_durable_quorum_queues(amqp_url, gateway):
    """Re-declaring with different arguments fails (PRECONDITION_FAILED), so this passes
    only if the queues really are durable quorum queues."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for queue in (topology.work_queue("gateway"), topology.parking_queue("gateway")):
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        channel.queue_declare(topology.work_queue("gateway"), durable=True, arguments={"x-queue-type": "classic"})
    assert refused.value.reply_code == 406
    connection.close()


def test_a_consumer_idle_for_many_heartbeats_can_still_retry_without_reconnecting(settings_factory, amqp_url, caplog):
    """Its retry publisher has a connection of its own, which must be kept alive too."""
    settings, database = settings_factory("gateway", amqp_url=amqp_url + "?heartbeat=1")
    metadata.create_all(database.engine)
    declare_topology(settings)
    running = Running()
    handler = FlakyHandler()
    running.consumer(database, settings, dict.fromkeys(event_catalog.consumed_by(settings.service), handler))
    try:
        time.sleep(6)  # several missed heartbeats, had nobody answered them
        poison = customer_created("Poison")
        publish_raw(amqp_url, poison.to_json(), message_id=poison.id)
        wait_for(lambda: parked(settings), timeout=30, what="the failing event parked")
        assert not [r for r in caplog.records if r.getMessage() == "consumer lost the broker"]
    finally:
        running.close()
