"""The raw broker ceiling: persistent messages into a durable quorum queue with plain pika.

* one by one: a BlockingChannel in confirm mode, each publish waits for its confirm
  (what ``shared.broker.ConfirmedPublisher`` does);
* batched: a SelectConnection publishes a window of messages, waits until every one is
  confirmed, and repeats (what ``shared.relay.OutboxRelay`` does).

No database, no envelopes, no consumers: whatever the event pipeline reaches is measured
against these two figures.
"""

from __future__ import annotations

import time
import uuid

import pika

from bench.procs import BenchError, say

ONE_BY_ONE_MESSAGES = 3_000
BATCHED_MESSAGES = 30_000
WINDOW = 500
TIME_LIMIT_S = 60.0
BODY = b'{"type":"bench.raw","data":{"customer_id":"00000000-0000-0000-0000-000000000000"}}'.ljust(400)
PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json")


def one_by_one(url: str, queue: str, count: int = ONE_BY_ONE_MESSAGES) -> float:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        started = time.perf_counter()
        sent = 0
        while sent < count and time.perf_counter() - started < TIME_LIMIT_S:
            channel.basic_publish("", queue, BODY, PERSISTENT, mandatory=True)  # returns once confirmed
            sent += 1
        return sent / (time.perf_counter() - started)
    finally:
        connection.close()


class WindowedPublisher:
    """Publish ``window`` messages, wait for all their confirms, repeat, until ``total``."""

    def __init__(self, url: str, queue: str, total: int, window: int):
        self.url, self.queue, self.total, self.window = url, queue, total, window
        self.sent = self.confirmed = self.nacked = 0
        self.next_tag = 1
        self.unconfirmed: set[int] = set()
        self.started = self.finished = 0.0
        self.error: str | None = None

    def run(self) -> float:
        connection = pika.SelectConnection(
            pika.URLParameters(self.url),
            on_open_callback=lambda conn: conn.channel(on_open_callback=self._on_channel),
            on_open_error_callback=self._on_failure,
            on_close_callback=lambda conn, _reason: conn.ioloop.stop(),
        )
        self.connection = connection
        connection.ioloop.call_later(TIME_LIMIT_S, lambda: self._stop("time limit reached"))
        connection.ioloop.start()
        if self.error or self.nacked or self.confirmed < self.total:
            raise BenchError(
                f"batched publish: {self.confirmed}/{self.total} confirmed, {self.nacked} nacked ({self.error})"
            )
        return self.confirmed / (self.finished - self.started)

    def _on_failure(self, connection, error) -> None:
        self.error = repr(error)
        connection.ioloop.stop()

    def _on_channel(self, channel) -> None:
        self.channel = channel
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame) -> None:
        self.started = time.perf_counter()
        self._publish_window()

    def _publish_window(self) -> None:
        for _ in range(min(self.window, self.total - self.sent)):
            self.channel.basic_publish("", self.queue, BODY, PERSISTENT, mandatory=True)
            self.unconfirmed.add(self.next_tag)
            self.next_tag += 1
            self.sent += 1

    def _on_confirm(self, frame) -> None:
        method = frame.method
        tags = {t for t in self.unconfirmed if t <= method.delivery_tag} if method.multiple else {method.delivery_tag}
        self.unconfirmed -= tags
        if isinstance(method, pika.spec.Basic.Ack):
            self.confirmed += len(tags)
        else:
            self.nacked += len(tags)
        if self.unconfirmed:
            return
        if self.sent < self.total:
            self._publish_window()
        else:
            self.finished = time.perf_counter()
            self._stop(None)

    def _stop(self, error: str | None) -> None:
        self.error = self.error or error
        if self.connection.is_open:
            self.connection.close()  # on_close_callback stops the ioloop
        else:
            self.connection.ioloop.stop()


def _on_channel_of(url: str, action) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        action(connection.channel())
    finally:
        connection.close()


def run(url: str) -> dict[str, float]:
    queue = f"bench.raw.{uuid.uuid4().hex[:8]}"
    _on_channel_of(
        url, lambda channel: channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    )
    try:
        results = {"one_by_one": one_by_one(url, queue)}
        say(f"raw broker, one by one: {results['one_by_one']:,.0f} msgs/s")
        results["batched"] = WindowedPublisher(url, queue, BATCHED_MESSAGES, WINDOW).run()
        say(f"raw broker, batched (window {WINDOW}): {results['batched']:,.0f} msgs/s")
        return results
    finally:
        _on_channel_of(url, lambda channel: channel.queue_delete(queue))
