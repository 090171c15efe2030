"""Consuming events: idempotent handlers, acked after commit, failures retried then parked.

For each message on ``<service>.events``:

1. Parse and validate the envelope. A malformed message is parked at once with the reason.
2. In one database transaction: skip it if its id is in ``processed_events``; otherwise run
   the handler and record the id. Commit, then ack. A crash before the ack means a
   redelivery, which step 2 recognises as a duplicate.
3. A handler that raises: the message is republished to the next retry queue (which
   dead-letters it back after its TTL) with the attempt and the error in its headers, or,
   after the last retry, to the parking lot ``<service>.dead``. Only then is it acked, so
   it is never lost and never requeued in a hot loop.
4. A database that cannot be reached is not the message's fault: the consumer lets the
   message go back unacked, disconnects and reconnects with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
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
from shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, Envelope], None]
MAX_RECONNECT_BACKOFF_SECONDS = 30.0


class DatabaseUnavailable(RuntimeError):
    """The handler could not reach its database; the message is not at fault."""


def apply_once(database: Database, service: str, handler: Handler, envelope: Envelope) -> str:
    """Run a handler for an event unless it already ran; 'applied' or 'duplicate'."""
    try:
        with UnitOfWork(database, source=service) as uow:
            seen = uow.session.execute(
                select(processed_events.c.event_id).where(processed_events.c.event_id == envelope.id)
            ).first()
            if seen:
                return "duplicate"
            handler(uow, envelope)
            uow.session.execute(
                insert(processed_events).values(
                    event_id=envelope.id,
                    event_type=envelope.type,
                    occurred_at=envelope.occurred_at,
                    processed_ts=time.time(),
                )
            )
            try:
                uow.commit()
            except IntegrityError:
                # Another consumer of this service applied it in the meantime.
                uow.rollback()
                if uow.session.execute(
                    select(processed_events.c.event_id).where(processed_events.c.event_id == envelope.id)
                ).first():
                    return "duplicate"
                raise
            return "applied"
    except OperationalError as error:
        if error.connection_invalidated or _is_connectivity(error):
            raise DatabaseUnavailable(str(error)) from error
        raise


def _is_connectivity(error: DBAPIError) -> bool:
    text = str(error.orig).lower()
    return any(sign in text for sign in ("database is locked", "connection", "could not connect", "server closed"))


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

    def run(self) -> None:
        backoff = 0.5
        while not self.stop_requested.is_set():
            connection = None
            try:
                connection = pika.BlockingConnection(connection_parameters(self.settings.amqp_url))
                self._publisher = ConfirmedPublisher(self.settings.amqp_url)
                channel = connection.channel()
                topology.declare(channel, self.settings.exchange, self.settings.retry_delays)
                channel.basic_qos(prefetch_count=self.settings.consumer_prefetch)
                channel.basic_consume(self.queue, on_message_callback=self._on_message)
                log.info("consumer ready", extra={"queue": self.queue})
                backoff = 0.5
                while not self.stop_requested.is_set():
                    connection.process_data_events(time_limit=0.5)
            except DatabaseUnavailable as error:
                log.warning("database unavailable; backing off", extra={"error": str(error)})
            except pika.exceptions.AMQPError as error:
                log.warning("consumer lost the broker", extra={"error": repr(error)})
            finally:
                for closable in (connection, self._publisher and self._publisher.connection):
                    try:
                        if closable is not None and closable.is_open:
                            closable.close()
                    except pika.exceptions.AMQPError:
                        pass
            if self.stop_requested.wait(backoff):
                break
            backoff = min(backoff * 2, MAX_RECONNECT_BACKOFF_SECONDS)
        log.info("consumer stopped", extra={"queue": self.queue})

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        headers = dict(properties.headers or {})
        attempt = int(headers.get("x-attempt", 0))
        try:
            envelope = Envelope.from_json(body)
        except InvalidEvent as error:
            with correlated(properties.correlation_id):
                self._park(method, properties, body, f"malformed: {error}", attempt)
            channel.basic_ack(method.delivery_tag)
            metrics.EVENTS_CONSUMED.labels(event_type=method.routing_key, outcome="malformed").inc()
            return
        with correlated(envelope.correlation_id):
            context = {"event_id": envelope.id, "event_type": envelope.type, "attempt": attempt}
            try:
                outcome = apply_once(self.database, self.settings.service, self.handlers[envelope.type], envelope)
            except DatabaseUnavailable:
                raise  # leave the message unacked; run() reconnects after a pause
            except Exception as error:
                log.warning("event handler failed", extra={**context, "error": repr(error)}, exc_info=True)
                self._retry_or_park(envelope, method, properties, body, attempt, repr(error))
                outcome = "failed"
            else:
                log.info("event handled", extra={**context, "outcome": outcome})
            channel.basic_ack(method.delivery_tag)
            metrics.EVENTS_CONSUMED.labels(event_type=envelope.type, outcome=outcome).inc()

    def _retry_or_park(self, envelope, method, properties, body, attempt, error) -> None:
        delays = self.settings.retry_delays
        if attempt < len(delays):
            headers = dict(properties.headers or {})
            headers.setdefault("x-original-routing-key", method.routing_key)
            headers.update({"x-attempt": attempt + 1, "x-last-error": error[:1000]})
            self._publisher.publish(
                "",
                topology.retry_queue(self.settings.service, delays[attempt]),
                body,
                _copy_properties(properties, headers),
            )
            return
        self._park(method, properties, body, f"handler failed {attempt + 1} times: {error}", attempt)

    def _park(self, method, properties, body, reason: str, attempt: int) -> None:
        headers = dict(properties.headers or {})
        headers.update(
            {
                "x-reason": reason[:2000],
                "x-attempt": attempt,
                "x-original-routing-key": headers.get("x-original-routing-key", method.routing_key),
                "x-parked-at": datetime.now(UTC).isoformat(),
                "x-service": self.settings.service,
            }
        )
        self._publisher.publish(
            "", topology.parking_queue(self.settings.service), body, _copy_properties(properties, headers)
        )
        log.error("event parked", extra={"reason": reason, "message_id": properties.message_id})


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
