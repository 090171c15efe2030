"""The backbone under failure: the broker goes away, a consumer dies mid-message, the
topology is broken under a running relay."""

import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pika
import pytest
from port_for import get_port
from pytest_rabbitmq.factories.executor import RabbitMqExecutor
from sqlalchemy import select

from services.tickets.app import create_app as create_tickets_app
from shared import topology
from shared.backbone import outbox
from shared.broker import declare_topology
from shared.config import PROJECT_ROOT, Settings
from shared.db import Database, migrate
from shared.deadletters import ParkingLot
from shared.events import Envelope
from tests.support.auth import signed_client
from tests.support.counting import applied, counting_handlers, publish_customers, start_counting_pipeline
from tests.support.counting import metadata as counting_metadata
from tests.support.services import Running, migrations_of, processed_ids, unpublished, wait_for


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test's own, so that stopping it disturbs no other test."""
    port = get_port(None)
    executor = RabbitMqExecutor(
        "/usr/lib/rabbitmq/bin/rabbitmq-server",
        "127.0.0.1",
        port,
        get_port(None, [port]),
        "/usr/lib/rabbitmq/bin/rabbitmqctl",
        logpath=tmp_path / "rabbit-logs",
        path=tmp_path / "rabbit",
        plugin_path=tmp_path / "rabbit",
        node_name=f"outage-{port}@localhost",
    )
    (tmp_path / "rabbit").mkdir()
    (tmp_path / "rabbit" / "plugins").write_text("[].")
    executor.start()
    yield executor, f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    executor.stop()


def test_events_written_while_the_broker_is_down_all_arrive_once_it_returns(
    own_broker, settings_factory, database_factory
):
    executor, url = own_broker
    running = Running()
    pipeline = start_counting_pipeline(settings_factory, running, amqp_url=url)
    tickets_db, database, relay = pipeline.tickets, pipeline.consumer, pipeline.relay
    try:
        before = publish_customers(tickets_db, 20)
        wait_for(lambda: len(applied(database)) == 20, what="the first 20 events")

        executor.stop()
        wait_for(lambda: not relay.ready.is_set(), what="the relay to notice the outage")
        during = publish_customers(tickets_db, 50)
        for _ in range(3):  # and in separate transactions
            during += publish_customers(tickets_db, 1)
        assert unpublished(tickets_db) == 53

        executor.start()
        wait_for(lambda: unpublished(tickets_db) == 0, timeout=60, what="the outbox to drain after the outage")
        wait_for(lambda: len(applied(database)) >= 73, timeout=60, what="all 73 events applied")
        assert sorted(applied(database)) == sorted(before + during)
        assert sorted(processed_ids(database)) == sorted(before + during)
    finally:
        running.close()


def start_consumer(settings, env_extra, log_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "GATEWAY_DATABASE_URL": settings.database_url,
        "AMQP_URL": settings.amqp_url,
        "CONSUMER_RETRY_DELAYS": "0.2,0.4",
        **env_extra,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.consumer_process"],
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
    )


@pytest.mark.parametrize("moment", ["handling", "committed"])
def test_a_consumer_killed_mid_message_has_it_redelivered_and_applied_once(moment, settings_factory, tmp_path: Path):
    tickets_settings, tickets_db = settings_factory("tickets")
    settings, database = settings_factory("gateway")
    flag = tmp_path / "paused"
    log = tmp_path / "consumer.log"
    victim = start_consumer(settings, {"PAUSE_AT": moment, "PAUSE_FLAG": str(flag)}, log)
    running = Running()
    running.relay(tickets_db, tickets_settings)
    try:
        (event_id,) = publish_customers(tickets_db, 1)
        wait_for(flag.exists, timeout=30, what=f"the consumer to pause while {moment}")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        expected = [event_id] if moment == "committed" else []
        assert applied(database) == expected, "only a commit makes an application"

        survivor = start_consumer(settings, {}, log)
        try:
            wait_for(lambda: processed_ids(database) == [event_id], timeout=30, what="the redelivery")
            wait_for(lambda: "duplicate" in log.read_text() or moment == "handling", what="the duplicate log line")
            assert applied(database) == [event_id]
        finally:
            survivor.terminate()
            assert survivor.wait(timeout=15) == 0, "a consumer stops cleanly on SIGTERM"
    finally:
        if victim.poll() is None:
            victim.kill()
        running.close()


def test_the_relay_recovers_when_its_exchange_is_deleted_under_it(settings_factory, amqp_url):
    running = Running()
    pipeline = start_counting_pipeline(settings_factory, running)
    tickets_db, database, relay = pipeline.tickets, pipeline.consumer, pipeline.relay
    try:
        first = publish_customers(tickets_db, 5)
        wait_for(lambda: len(applied(database)) == 5, what="the first events")
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        connection.channel().exchange_delete("events")  # an operator's mistake
        connection.close()
        later = publish_customers(tickets_db, 5)
        wait_for(lambda: unpublished(tickets_db) == 0, timeout=30, what="the relay to redeclare and send")
        wait_for(lambda: len(applied(database)) == 10, timeout=30, what="the later events applied")
        assert sorted(applied(database)) == sorted(first + later)
        assert relay.ready.is_set()
    finally:
        running.close()


def test_an_unroutable_event_stays_in_the_outbox_until_routing_is_repaired(settings_factory, amqp_url):
    running = Running()
    pipeline = start_counting_pipeline(settings_factory, running)
    tickets_db, database = pipeline.tickets, pipeline.consumer
    try:
        wait_for(pipeline.relay.ready.is_set, what="the relay")
        # Break routing: no queue bound for customer.created and no alternate exchange,
        # so the broker returns the (mandatory) message instead of routing it.
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        for service in ("callrouting", "surveys", "gateway"):
            channel.queue_unbind(topology.work_queue(service), "events", routing_key="customer.created")
        channel.exchange_delete(topology.UNROUTED)
        connection.close()

        (event_id,) = publish_customers(tickets_db, 1)
        wait_for(lambda: _outbox_row(tickets_db)["attempts"] >= 1, what="the broker to return the event")
        row = _outbox_row(tickets_db)
        assert row["published_ts"] is None, "a returned event is not marked published"
        assert "returned" in row["last_error"]
        assert applied(database) == []

        declare_topology(pipeline.relay.settings)  # an operator repairs the topology
        wait_for(lambda: applied(database) == [event_id], timeout=30, what="the event after the repair")
        # The consumer may commit before the relay has recorded the broker's confirm.
        wait_for(lambda: unpublished(tickets_db) == 0, what="the relay to mark the event published")
    finally:
        running.close()


def _outbox_row(database) -> dict:
    with database.engine.connect() as connection:
        return dict(connection.execute(select(outbox)).mappings().one())


def test_a_consumer_whose_database_stays_locked_backs_off_and_loses_nothing(amqp_url, tmp_path, monkeypatch, caplog):
    """SQLite only: another process holds the write lock past the busy timeout."""
    monkeypatch.setenv("SQLITE_BUSY_TIMEOUT_MS", "300")
    path = tmp_path / "gateway.db"
    database = Database(f"sqlite:///{path}")
    migrate(database, migrations_of("gateway"))
    counting_metadata.create_all(database.engine)
    settings = replace(Settings.from_env("gateway"), database_url=database.url, amqp_url=amqp_url)
    declare_topology(settings)
    running = Running()
    running.consumer(database, settings, counting_handlers(settings.service))
    other_process = sqlite3.connect(path, isolation_level=None)
    try:
        other_process.execute("BEGIN IMMEDIATE")
        event = Envelope(
            type="customer.created", data={"customer_id": str(uuid.uuid4()), "name": "Patient"}, source="tickets"
        ).validate()
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        connection.channel().basic_publish("events", "customer.created", event.to_json())
        connection.close()
        wait_for(
            lambda: any(r.getMessage() == "database unavailable; backing off" for r in caplog.records),
            what="the consumer to back off",
        )
        other_process.execute("ROLLBACK")
        wait_for(lambda: applied(database) == [event.id], timeout=30, what="the event once the lock is gone")
        lot = ParkingLot(settings)
        assert lot.browse() == [], "a locked database is not the message's fault: nothing parked"
        lot.close()
    finally:
        other_process.close()
        running.close()
        database.dispose()


def test_a_request_that_finds_the_database_locked_gets_a_503_to_retry(broker_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SQLITE_BUSY_TIMEOUT_MS", "300")
    path = tmp_path / "tickets.db"
    settings = replace(Settings.from_env("tickets"), database_url=f"sqlite:///{path}", amqp_url=broker_url)
    client = signed_client(create_tickets_app(settings))
    other_process = sqlite3.connect(path, isolation_level=None)
    try:
        other_process.execute("BEGIN IMMEDIATE")
        response = client.post("/customers", json={"name": "Ada"})
    finally:
        other_process.close()
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "1"
    assert client.post("/customers", json={"name": "Ada"}).status_code == 201, "and a retry succeeds"
