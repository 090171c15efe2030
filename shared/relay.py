"""The outbox relay: sends committed outbox rows to the topic exchange.

At-least-once, never lost: a row is marked published only after the broker confirmed it
(persistent, ``mandatory``); a nack, a return or a dropped connection puts it back with a
backoff. Consumers dedupe by event id, so a row sent twice is harmless.

Several relays may run against one database. Each claims a batch before sending it
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises the
claim), and a claim lapses after ``relay_claim_seconds`` if its relay dies.

Publishing uses pika's asynchronous connection so a whole batch is in flight at once and
confirmed together; the blocking adapter waits for each confirm in turn, which caps a
relay at a few hundred events a second.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

import pika
from pika.spec import Basic
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from shared import metrics
from shared.backbone import outbox
from shared.broker import connection_parameters, declare_topology
from shared.config import Settings
from shared.db import Database, is_postgresql
from shared.reconnect import Backoff, keep_connected

log = logging.getLogger(__name__)

MAX_ROW_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class PendingEvent:
    row_id: int
    event_id: str
    event_type: str
    envelope: str
    created_ts: float


class OutboxStore:
    """The relay's view of the outbox table.

    Each batch costs one write transaction: the outcome of the previous batch is recorded
    in the same transaction that claims the next. An idle relay only reads (which on
    SQLite neither takes nor waits for the write lock), so polling never holds up the
    requests that write events.
    """

    def __init__(self, database: Database, relay_id: str, claim_seconds: float):
        self.database = database
        self.relay_id = relay_id
        self.claim_seconds = claim_seconds

    @staticmethod
    def _due(now: float):
        return and_(
            outbox.c.published_ts.is_(None),
            outbox.c.next_attempt_ts <= now,
            or_(outbox.c.claimed_until_ts.is_(None), outbox.c.claimed_until_ts < now),
        )

    def has_due(self) -> bool:
        with self.database.reader.connect() as connection:
            return connection.execute(select(outbox.c.id).where(self._due(time.time())).limit(1)).first() is not None

    def settle_and_claim(self, published: list[int], refused: list[int], error: str, limit: int) -> list[PendingEvent]:
        """Record the last batch (published, or refused and due again later); claim the next."""
        now = time.time()
        query = (
            select(outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.envelope, outbox.c.created_ts)
            .where(self._due(now))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if is_postgresql(self.database.engine):
            query = query.with_for_update(skip_locked=True)
        with self.database.engine.begin() as connection:
            self._settle(connection, published, refused, error, now)
            rows = connection.execute(query).all() if limit else []
            if rows:
                connection.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([row.id for row in rows]))
                    .values(claimed_by=self.relay_id, claimed_until_ts=now + self.claim_seconds)
                )
        return [PendingEvent(row.id, row.event_id, row.event_type, row.envelope, row.created_ts) for row in rows]

    def _settle(self, connection, published: list[int], refused: list[int], error: str, now: float) -> None:
        if published:
            connection.execute(
                update(outbox)
                .where(outbox.c.id.in_(published))
                .values(published_ts=now, claimed_by=None, claimed_until_ts=None, last_error=None)
            )
        if refused:
            # Each refused row backs off by how often it has failed.
            for row in connection.execute(select(outbox.c.id, outbox.c.attempts).where(outbox.c.id.in_(refused))):
                connection.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id)
                    .values(
                        claimed_by=None,
                        claimed_until_ts=None,
                        attempts=row.attempts + 1,
                        next_attempt_ts=now + min(0.5 * 2**row.attempts, MAX_ROW_BACKOFF_SECONDS),
                        last_error=error[:2000],
                    )
                )

    def settle(self, published: list[int], refused: list[int], error: str) -> None:
        self.settle_and_claim(published, refused, error, limit=0)

    def release_own_claims(self) -> None:
        """After a reconnect: whatever this relay had in flight may not have been sent."""
        with self.database.engine.begin() as connection:
            connection.execute(
                update(outbox)
                .where(and_(outbox.c.claimed_by == self.relay_id, outbox.c.published_ts.is_(None)))
                .values(claimed_by=None, claimed_until_ts=None)
            )


class OutboxRelay:
    def __init__(self, database: Database, settings: Settings, stop: threading.Event | None = None):
        self.settings = settings
        self.relay_id = f"{settings.service}-{uuid.uuid4().hex[:12]}"
        self.store = OutboxStore(database, self.relay_id, settings.relay_claim_seconds)
        self.stop_requested = stop or threading.Event()
        self._connection: pika.SelectConnection | None = None
        self._channel = None
        self._was_ready = False  # reached confirm mode on the current connection
        self.ready = threading.Event()  # set while connected and publishing
        self.published_count = 0
        self._next_tag = 1  # delivery tags count per channel, from 1
        self._in_flight: dict[int, PendingEvent] = {}  # delivery tag -> event
        self._confirmed: list[PendingEvent] = []
        self._refused: list[PendingEvent] = []
        self._returned: set[str] = set()  # event ids
        self._backoff = Backoff()

    # -- lifecycle ------------------------------------------------------------------

    def run(self) -> None:
        """Relay until asked to stop, reconnecting with backoff while the broker is away."""
        keep_connected(
            self._session,
            stop=self.stop_requested,
            backoff=self._backoff,
            on_error=self._interrupted,
            after=lambda: self._abandon_batch("connection lost"),
        )
        log.info("relay stopped", extra={"relay_id": self.relay_id})

    def _session(self) -> None:
        """One connection, until it is lost or the relay is asked to stop."""
        declare_topology(self.settings)
        self._connection = pika.SelectConnection(
            # SelectConnection takes one node: a random one of a cluster's each time round.
            connection_parameters(self.settings.amqp_url)[0],
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_failed,
            on_close_callback=self._on_connection_closed,
        )
        self._connection.ioloop.start()
        if self._was_ready:  # it worked for a while: the next outage starts afresh
            self._backoff.reset()

    def _interrupted(self, error: Exception) -> None:
        # broker or database trouble: wait, reconnect
        log.warning("relay interrupted", extra={"error": repr(error)})

    def _on_connection_open(self, connection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_failed(self, connection, error) -> None:
        log.warning("relay connection failed", extra={"error": repr(error)})
        connection.ioloop.stop()

    def _on_connection_closed(self, connection, reason) -> None:
        self._channel = None
        if not self.stop_requested.is_set():
            log.warning("relay connection closed", extra={"reason": repr(reason)})
        connection.ioloop.stop()

    def _on_channel_open(self, channel) -> None:
        self._channel = channel
        channel.add_on_return_callback(self._on_returned)
        channel.add_on_close_callback(lambda _channel, reason: self._close(f"channel closed: {reason!r}"))
        channel.confirm_delivery(ack_nack_callback=self._on_confirmation, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame) -> None:
        self._was_ready = True
        self.ready.set()
        self.store.release_own_claims()
        log.info("relay ready", extra={"relay_id": self.relay_id})
        self._schedule(0)

    def _close(self, why: str) -> None:
        if self._connection and self._connection.is_open:
            log.info("relay closing connection", extra={"why": why})
            self._connection.close()

    # -- the publishing loop ----------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        self._connection.ioloop.call_later(delay, self._tick)

    def _tick(self) -> None:
        if self.stop_requested.is_set() and not self._confirmed and not self._refused:
            self._close("stop requested")
            return
        if self._channel is None or not self._channel.is_open:
            return
        confirmed, refused = self._confirmed, self._refused
        if not confirmed and not refused and not self.store.has_due():
            self._schedule(self.settings.relay_poll_interval)
            return
        limit = 0 if self.stop_requested.is_set() else self.settings.relay_batch_size
        batch = self.store.settle_and_claim(
            [event.row_id for event in confirmed],
            [event.row_id for event in refused],
            "broker refused or returned the event",
            limit,
        )
        self._confirmed, self._refused = [], []
        self._count_settled(confirmed, refused)
        if not batch:
            self._schedule(0 if self.stop_requested.is_set() else self.settings.relay_poll_interval)
            return
        for event in batch:
            self._channel.basic_publish(
                exchange=self.settings.exchange,
                routing_key=event.event_type,
                body=event.envelope.encode(),
                properties=pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=event.event_id,
                    type=event.event_type,
                    app_id=self.settings.service,
                ),
                mandatory=True,
            )
            self._in_flight[self._next_tag] = event
            self._next_tag += 1

    def _count_settled(self, confirmed: list[PendingEvent], refused: list[PendingEvent]) -> None:
        self.published_count += len(confirmed)
        now = time.time()
        for event in confirmed:
            metrics.EVENTS_PUBLISHED.labels(event_type=event.event_type).inc()
            metrics.OUTBOX_LAG.observe(max(0.0, now - event.created_ts))
        if refused:
            metrics.EVENTS_REFUSED.inc(len(refused))

    def _on_returned(self, _channel, method, properties, _body) -> None:
        # A return always precedes the ack of the same message.
        log.warning("event unroutable", extra={"event_id": properties.message_id, "reply": method.reply_text})
        self._returned.add(properties.message_id)

    def _on_confirmation(self, frame) -> None:
        method = frame.method
        tags = (
            [tag for tag in self._in_flight if tag <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        )
        accepted = isinstance(method, Basic.Ack)
        for tag in tags:
            event = self._in_flight.pop(tag, None)
            if event is None:
                continue
            if accepted and event.event_id not in self._returned:
                self._confirmed.append(event)
            else:
                self._refused.append(event)
        if not self._in_flight:
            self._finish_batch()

    def _finish_batch(self) -> None:
        # The next tick records this batch and claims the next one in one transaction.
        self._returned = set()
        self._schedule(0)

    def _abandon_batch(self, why: str) -> None:
        """The connection went away mid-batch: nothing unconfirmed counts as sent."""
        confirmed, unconfirmed = self._confirmed, [*self._refused, *self._in_flight.values()]
        self._in_flight, self._confirmed, self._refused, self._returned = {}, [], [], set()
        self._next_tag = 1
        self._was_ready = False
        self.ready.clear()
        if not confirmed and not unconfirmed:
            return
        try:
            # Confirmed rows really were taken by the broker: record them as published.
            self.store.settle([e.row_id for e in confirmed], [e.row_id for e in unconfirmed], why)
            self._count_settled(confirmed, unconfirmed)
        except SQLAlchemyError as error:
            # Their claims lapse after relay_claim_seconds and they are sent again: at least once.
            log.warning("relay could not record its last batch", extra={"error": repr(error)})
