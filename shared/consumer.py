"""Consuming events: idempotent handlers, acked after commit, failures retried then parked.

The consumer takes what the prefetch window has already delivered (up to
``consumer_prefetch`` messages) as a batch:

1. Parse and validate each envelope. A malformed message is parked at once with the reason.
2. In one database transaction: skip the events whose ids are in ``processed_events``; run
   the handler of each other event and record its id. Commit, then ack the batch. A crash
   before the ack means a redelivery, which this step recognises as a duplicate.
   If any handler in the batch raises, the transaction is dropped and the batch is handled
   again one event per transaction, so only the failing event goes to step 3.
3. A handler that raises: the message is republished to the next retry queue (which
   dead-letters it back after its TTL) with the attempt and the error in its headers, or,
   after the last retry, to the parking lot ``<service>.dead``. Only then is it acked, so
   it is never lost and never requeued in a hot loop.
4. A database that cannot be reached is not the message's fault: the consumer lets the
   message go back unacked, disconnects and reconnects with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pika
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from shared import event_catalog, metrics, topology
from shared.backbone import processed_events
from shared.broker import ConfirmedPublisher, connection_parameters
from shared.config import Settings
from shared.db import Database
from shared.events import Envelope, InvalidEvent
from shared.logs import correlated
from shared.reconnect import Backoff, keep_connected
from shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, Envelope], None]


class DatabaseUnavailable(RuntimeError):
    """The handler could not reach its database; the message is not at fault."""


def apply_once(database: Database, service: str, handler: Handler, envelope: Envelope) -> str:
    """Run a handler for an event unless it already ran; 'applied' or 'duplicate'."""
    outcomes = apply_batch(database, service, {envelope.type: handler}, [envelope], raise_errors=True)
    return outcomes[envelope.id]


def apply_batch(
    database: Database,
    service: str,
    handlers: dict[str, Handler],
    envelopes: list[Envelope],
    *,
    raise_errors: bool = False,
) -> dict[str, str] | None:
    """Apply new events in one transaction: {event id: 'applied' | 'duplicate'}.

    Returns None, having changed nothing, when a handler raised or another consumer
    committed one of these events meanwhile, unless ``raise_errors`` asks for the error.
    """
    try:
        with UnitOfWork(database, source=service) as uow:
            ids = [envelope.id for envelope in envelopes]
            seen = set(
                uow.session.scalars(select(processed_events.c.event_id).where(processed_events.c.event_id.in_(ids)))
            )
            outcomes: dict[str, str] = {}
            records = []
            for envelope in envelopes:
                if envelope.id in seen:
                    outcomes[envelope.id] = "duplicate"
                    continue
                seen.add(envelope.id)
                with correlated(envelope.correlation_id):
                    try:
                        handlers[envelope.type](uow, envelope)
                    except Exception:  # the caller retries one by one, or asked for the error
                        if raise_errors:
                            raise
                        return None
                outcomes[envelope.id] = "applied"
                records.append(
                    {
                        "event_id": envelope.id,
                        "event_type": envelope.type,
                        "occurred_at": envelope.occurred_at,
                        "processed_ts": time.time(),
                    }
                )
            if records:
                uow.session.execute(insert(processed_events), records)
            try:
                uow.commit()
            except IntegrityError:
                # Another consumer of this service committed one of these events meanwhile.
                if not raise_errors:
                    return None
                if len(envelopes) == 1 and _was_processed(database, envelopes[0].id):
                    return {envelopes[0].id: "duplicate"}
                raise
            return outcomes
    except OperationalError as error:
        if error.connection_invalidated or _is_connectivity(error):
            raise DatabaseUnavailable(str(error)) from error
        raise


def _was_processed(database: Database, event_id: str) -> bool:
    with database.engine.connect() as connection:
        query = select(processed_events.c.event_id).where(processed_events.c.event_id == event_id)
        return connection.execute(query).first() is not None


def _is_connectivity(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return any(sign in text for sign in ("database is locked", "connection", "could not connect", "server closed"))


@dataclass
class Delivery:
    delivery_tag: int
    routing_key: str
    properties: pika.BasicProperties
    body: bytes

    @property
    def attempt(self) -> int:
        return int((self.properties.headers or {}).get("x-attempt", 0))


class Consumer:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        handlers: dict[str, Handler],
        stop: threading.Event | None = None,
    ):
        expected = set(event_catalog.consumed_by(settings.service))
        if set(handlers) != expected:
            raise ValueError(
                f"{settings.service} handles {sorted(handlers)} but the catalog routes {sorted(expected)} to it"
            )
        self.database = database
        self.settings = settings
        self.handlers = handlers
        self.stop_requested = stop or threading.Event()
        self.queue = topology.work_queue(settings.service)
        self._publisher: ConfirmedPublisher | None = None
        self._received: list[Delivery] = []
        self._backoff = Backoff()

    def run(self) -> None:
        """Consume until asked to stop, reconnecting with backoff (``shared.reconnect``)."""
        keep_connected(self._session, stop=self.stop_requested, backoff=self._backoff, on_error=self._interrupted)
        log.info("consumer stopped", extra={"queue": self.queue})

    def _session(self) -> None:
        """One connection: consume until it is lost or the consumer is asked to stop."""
        connection = None
        try:
            connection = pika.BlockingConnection(connection_parameters(self.settings.amqp_url))
            self._publisher = ConfirmedPublisher(self.settings.amqp_url)
            channel = connection.channel()
            topology.declare(channel, self.settings.exchange, self.settings.retry_delays)
            channel.basic_qos(prefetch_count=self.settings.consumer_prefetch)
            channel.basic_consume(self.queue, on_message_callback=self._receive)
            log.info("consumer ready", extra={"queue": self.queue})
            self._backoff.reset()
            while not self.stop_requested.is_set():
                # Collect what has arrived (up to the prefetch window), then handle it.
                connection.process_data_events(time_limit=0 if self._received else 0.25)
                self._publisher.keep_alive()  # idle for minutes, it must still be there to retry
                if self._received:
                    batch, self._received = self._received, []
                    self._handle(channel, batch)
        finally:
            self._received = []  # unacked: the broker redelivers them
            for closable in (connection, self._publisher and self._publisher.connection):
                # closing a broken connection may fail too; the loop reconnects either way
                with contextlib.suppress(pika.exceptions.AMQPError):
                    if closable is not None and closable.is_open:
                        closable.close()

    def _interrupted(self, error: Exception) -> None:
        if isinstance(error, DatabaseUnavailable):
            log.warning("database unavailable; backing off", extra={"error": str(error)})
        elif isinstance(error, pika.exceptions.AMQPError):
            log.warning("consumer lost the broker", extra={"error": repr(error)})
        else:  # unforeseen: the messages stay unacked, start afresh
            log.exception("consumer interrupted")

    def _receive(self, _channel, method, properties, body: bytes) -> None:
        self._received.append(Delivery(method.delivery_tag, method.routing_key, properties, body))

    def _handle(self, channel, batch: list[Delivery]) -> None:
        parsed: list[tuple[Delivery, Envelope]] = []
        for delivery in batch:
            try:
                parsed.append((delivery, Envelope.from_json(delivery.body)))
            except InvalidEvent as error:
                with correlated(delivery.properties.correlation_id):
                    self._park(delivery, f"malformed: {error}")
                metrics.EVENTS_CONSUMED.labels(event_type=delivery.routing_key, outcome="malformed").inc()
        envelopes = [envelope for _, envelope in parsed]
        outcomes = None  # a batch of one goes straight to the one-by-one path
        if len(parsed) > 1:
            outcomes = apply_batch(self.database, self.settings.service, self.handlers, envelopes)
        for delivery, envelope in parsed:
            if outcomes is None:  # one event per transaction: a batch of one, or a handler failed
                outcome = self._handle_alone(delivery, envelope)
            else:
                outcome = outcomes[envelope.id]
                self._log_handled(delivery, envelope, outcome)
            metrics.EVENTS_CONSUMED.labels(event_type=envelope.type, outcome=outcome).inc()
        channel.basic_ack(batch[-1].delivery_tag, multiple=True)

    def _handle_alone(self, delivery: Delivery, envelope: Envelope) -> str:
        try:
            outcome = apply_once(self.database, self.settings.service, self.handlers[envelope.type], envelope)
        except DatabaseUnavailable:
            raise  # leave the batch unacked; run() reconnects after a pause
        except Exception as error:  # any handler failure is retried, then parked
            with correlated(envelope.correlation_id):
                log.warning(
                    "event handler failed",
                    extra={"event_id": envelope.id, "event_type": envelope.type, "attempt": delivery.attempt},
                    exc_info=True,
                )
                self._retry_or_park(delivery, repr(error))
            return "failed"
        self._log_handled(delivery, envelope, outcome)
        return outcome

    def _log_handled(self, delivery: Delivery, envelope: Envelope, outcome: str) -> None:
        with correlated(envelope.correlation_id):
            log.info(
                "event handled",
                extra={
                    "event_id": envelope.id,
                    "event_type": envelope.type,
                    "attempt": delivery.attempt,
                    "outcome": outcome,
                },
            )

    def _retry_or_park(self, delivery: Delivery, error: str) -> None:
        delays = self.settings.retry_delays
        attempt = delivery.attempt
        if attempt < len(delays):
            headers = dict(delivery.properties.headers or {})
            headers.setdefault("x-original-routing-key", delivery.routing_key)
            headers.update({"x-attempt": attempt + 1, "x-last-error": error[:1000]})
            queue = topology.retry_queue(self.settings.service, delays[attempt])
            self._publisher.publish("", queue, delivery.body, _copy_properties(delivery.properties, headers))
            return
        self._park(delivery, f"handler failed {attempt + 1} times: {error}")

    def _park(self, delivery: Delivery, reason: str) -> None:
        headers = dict(delivery.properties.headers or {})
        headers.update(
            {
                "x-reason": reason[:2000],
                "x-attempt": delivery.attempt,
                "x-original-routing-key": headers.get("x-original-routing-key", delivery.routing_key),
                "x-parked-at": datetime.now(UTC).isoformat(),
                "x-service": self.settings.service,
            }
        )
        queue = topology.parking_queue(self.settings.service)
        self._publisher.publish("", queue, delivery.body, _copy_properties(delivery.properties, headers))
        log.error("event parked", extra={"reason": reason, "message_id": delivery.properties.message_id})


def _copy_properties(properties: pika.BasicProperties, headers: dict) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=properties.content_type or "application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=properties.message_id,
        type=properties.type,
        app_id=properties.app_id,
        correlation_id=properties.correlation_id,
        headers=headers,
    )
