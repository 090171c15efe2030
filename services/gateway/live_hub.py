"""The broker side of live updates: one consumer thread per gateway process, fanning events out
to the open streams of that process.

The thread starts with the first stream (so after gunicorn forked the worker) and owns its own
pika connection, heartbeats on. It reads a server-named, exclusive, auto-delete, non-durable
queue bound to the events exchange for the few event types screens need. That queue lives and
dies with the connection: this is a transient fan-out, not a durable consumer (the gateway is
deliberately not a consumer of these types in ``shared.event_catalog``). Events published
while the thread is disconnected are not replayed; each time it (re)binds, every stream is told
``ready`` and the console refetches what it shows.

``live_router.LiveRouter`` decides who is told what, on the hub's thread. Streams take their
notices from a bounded queue each.

The same queue also carries every event that names a customer (``CUSTOMER_EVENT_TYPES``): each
drops that customer's entry from the process's ``view_cache.ViewCache`` of complete customer
views (``view``). The cache is only used while the hub is bound (nothing would invalidate it
otherwise) and is emptied whenever it binds or lets go; views asked for keep the hub up like
open streams do. The thread reconnects with ``shared.reconnect`` like the relay and the consumer.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator

import pika
import pika.exceptions

from shared import topology
from shared.auth import User
from shared.broker import connection_parameters
from shared.config import Settings
from shared.events import Envelope, InvalidEvent
from shared.reconnect import Backoff, keep_connected

from .live_router import BOUND_EVENT_TYPES, Audience, LiveRouter, Notice, customers_named
from .view_cache import Flight, ViewCache

log = logging.getLogger(__name__)

# A customer's view is dropped again this long after its event: another service may still be
# acting on the same event (call routing adds a follow-up on ``followup.requested``, a call-list
# entry on ``purchase.recorded``) when a view fetched right after the first drop asks it.
SETTLE_SECONDS = 1.0
# A stream that falls this far behind is ended (its client reconnects and refetches).
STREAM_BACKLOG = 1000
# The queue keeps at most this many messages when the hub cannot keep up; the oldest go first.
QUEUE_MAX_LENGTH = 10_000


# --- the streams of this process ------------------------------------------------------------


class StreamClosed(Exception):
    """The hub ended this stream (it fell too far behind, or the hub is closing)."""


class TooManyStreams(Exception):
    """This process already serves its ``LIVE_MAX_STREAMS`` streams."""


_END = object()
_OPENED = itertools.count()


class Subscription:
    """One open stream: the notices for one signed-in user."""

    def __init__(self, hub: LiveHub, user: User):
        self.hub = hub
        self.user = user
        self._notices: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = False
        self.opened = next(_OPENED)  # the order streams were opened in

    def offer(self, notice: Notice) -> None:
        if self.closed:
            return
        if self._notices.qsize() >= STREAM_BACKLOG:
            log.warning("live stream too far behind; ending it", extra={"user_id": self.user.id})
            self.end()
            return
        self._notices.put(notice)

    def end(self) -> None:
        self.closed = True
        self._notices.put(_END)

    def next(self, timeout: float) -> Notice | None:
        """The next notice, or None after ``timeout`` seconds of quiet; raises StreamClosed."""
        try:
            notice = self._notices.get(timeout=timeout)
        except queue.Empty:
            return None
        if notice is _END:
            raise StreamClosed()
        return notice

    def close(self) -> None:
        self.closed = True
        self.hub.unsubscribe(self)


class LiveHub:
    """The consumer thread and the registry of open streams of one gateway process."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_streams: int = 24,
        grace: float = 0.25,
        idle_seconds: float = 5.0,
        view_cache_size: int = 2000,
    ):
        self.settings = settings
        self.max_streams = max_streams
        self.grace = grace
        self.idle_seconds = idle_seconds
        self.router = LiveRouter(grace=grace)
        self.pid = os.getpid()
        self.ready = threading.Event()  # bound to the exchange and consuming
        self._streams: set[Subscription] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._empty_since: float | None = None
        self.views = ViewCache(view_cache_size)
        self._views_used_at: float | None = None
        self._redrops: deque[tuple[float, list[str]]] = deque()  # (when, customers): see SETTLE_SECONDS
        self._backoff = Backoff()

    # -- streams ---------------------------------------------------------------------------------

    def subscribe(self, user: User) -> Subscription:
        subscription = Subscription(self, user)
        with self._lock:
            if len(self._streams) >= self.max_streams:
                # A page the user left keeps its stream until the next heartbeat finds the client
                # gone: an agent clicking through the console would fill the process with their own
                # dead streams. Their oldest stream makes room for the newest before anyone is refused.
                own = [stream for stream in self._streams if stream.user.id == user.id]
                if not own:
                    raise TooManyStreams()
                oldest = min(own, key=lambda stream: stream.opened)
                self._streams.discard(oldest)
                oldest.end()
            self._streams.add(subscription)
            self._start()
        if self.ready.is_set():
            subscription.offer(self._ready_notice())
        return subscription

    def _start(self) -> None:
        """Start the thread unless it runs (under ``_lock``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-hub", daemon=True)
            self._thread.start()

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._streams.discard(subscription)

    @property
    def stream_count(self) -> int:
        with self._lock:
            return len(self._streams)

    @property
    def running(self) -> bool:
        """Whether the consumer thread runs (it does while streams are open, and ``idle_seconds`` after)."""
        with self._lock:
            return self._thread is not None

    def streams_of(self, user_id: str) -> int:
        with self._lock:
            return sum(1 for stream in self._streams if stream.user.id == user_id)

    def deliver(self, deliveries: list[tuple[Audience, Notice]]) -> None:
        if not deliveries:
            return
        with self._lock:
            streams = list(self._streams)
        for audience, notice in deliveries:
            for stream in streams:
                if not stream.closed and audience.includes(stream.user):
                    stream.offer(notice)

    def _broadcast(self, notice: Notice) -> None:
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.offer(notice)

    def _ready_notice(self) -> Notice:
        return Notice("ready", None, {"refetch": True})

    # -- customer views --------------------------------------------------------------------------

    def use_views(self) -> None:
        """A view was asked for: keep the hub up (``idle_seconds`` from now), start it if need be."""
        with self._lock:
            self._views_used_at = time.monotonic()
            self._start()

    def cached_view(self, customer_id: str, max_age: float):
        """The cached view of ``customer_id``, only while bound (else nothing would drop it)."""
        return self.views.get(customer_id, max_age) if self.ready.is_set() else None

    def begin_view(self) -> int | None:
        """Before a fetch: the number for ``store_view``; None when not bound (nothing to store)."""
        return self.views.begin() if self.ready.is_set() else None

    def view_flight(self, customer_id: str) -> tuple[Flight, bool] | None:
        """``ViewCache.flight``, only while bound (None: fetch alone, nothing will be stored)."""
        return self.views.flight(customer_id) if self.ready.is_set() else None

    def store_view(self, customer_id: str, value, began: int, fetched_at: float | None = None) -> bool:
        return self.ready.is_set() and self.views.store(customer_id, value, began, now=fetched_at)

    # -- the broker ------------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and end every stream (tests; a process on its way out)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.end()

    def _leave_if_idle(self) -> bool:
        """True when no stream has been open and no view asked for in ``idle_seconds``: the
        thread then ends (and its connection and queue with it); the next stream or view starts
        another."""
        with self._lock:
            if self._streams:
                self._empty_since = None
                return False
            now = time.monotonic()
            if self._empty_since is None:
                self._empty_since = now
            quiet_since = max(self._empty_since, self._views_used_at or 0.0)
            if now - quiet_since < self.idle_seconds:
                return False
            self._thread, self._empty_since = None, None
            self.router = LiveRouter(grace=self.grace)  # what it knew of offers may be stale by then
            self.views.clear()
            return True

    def _run(self) -> None:
        keep_connected(self._session, stop=self._stop, backoff=self._backoff, on_error=self._connection_lost)

    def _session(self) -> bool:
        """One connection to the broker; True once the hub let go (idle): then no reconnect."""
        if self._leave_if_idle():
            return True
        for _ in self._consume():
            self._backoff.reset()  # bound: the next outage starts afresh
            if self._leave_if_idle():
                return True
        return False  # asked to stop

    def _connection_lost(self, error: Exception) -> float:
        self.ready.clear()
        if isinstance(error, pika.exceptions.AMQPError | OSError):
            delay = self._backoff.next()
            log.warning(
                "live updates: broker connection lost; reconnecting",
                extra={"error": f"{type(error).__name__}: {error}", "retry_in_s": delay},
            )
            return delay
        log.exception("live updates: unexpected error; reconnecting")
        return 1.0

    def _consume(self) -> Iterator[None]:
        connection = pika.BlockingConnection(connection_parameters(self.settings.amqp_url))
        try:
            channel = connection.channel()
            # Like every relay and consumer: the exchange (and its alternate) exist before we bind.
            topology.declare(channel, self.settings.exchange, self.settings.retry_delays)
            declared = channel.queue_declare(
                "",
                exclusive=True,
                auto_delete=True,
                durable=False,
                arguments={"x-max-length": QUEUE_MAX_LENGTH, "x-overflow": "drop-head"},
            )
            name = declared.method.queue
            for event_type in BOUND_EVENT_TYPES:
                channel.queue_bind(name, self.settings.exchange, routing_key=event_type)
            # No acks: the queue dies with this connection anyway, so an ack would protect nothing.
            channel.basic_consume(name, self._on_message, auto_ack=True)
            self.views.clear()  # events were missed while not bound: no view kept from before may stay
            self._redrops.clear()
            self.ready.set()
            log.info("live updates: listening", extra={"queue": name})
            self._broadcast(self._ready_notice())
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.05)
                self.deliver(self.router.overdue())
                self._drop_settled()
                yield
        finally:
            self.ready.clear()
            self.views.clear()
            if connection.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):  # closing a broken connection may fail too
                    connection.close()

    def _on_message(self, _channel, _method, _properties, body: bytes) -> None:
        try:
            envelope = Envelope.from_json(body)
        except InvalidEvent as error:
            log.warning("live updates: an invalid event was ignored", extra={"errors": error.errors})
            return
        customers = customers_named(envelope)
        if customers:
            self.views.drop(customers)
            self._redrops.append((time.monotonic() + SETTLE_SECONDS, customers))
        try:
            self.deliver(self.router.route(envelope))
        except Exception:  # one odd event must not stop the screens of everybody
            log.exception("live updates: an event could not be routed", extra={"event_id": envelope.id})

    def _drop_settled(self) -> None:
        now = time.monotonic()
        while self._redrops and self._redrops[0][0] <= now:
            self.views.drop(self._redrops.popleft()[1])


# --- one hub per process --------------------------------------------------------------------

_hubs_lock = threading.Lock()


def hub_of(app) -> LiveHub:
    """This process's hub for ``app``, made on first use (after gunicorn forked the worker)."""
    hub = app.extensions.get("live_hub")
    if hub is not None and hub.pid == os.getpid():
        return hub
    with _hubs_lock:
        hub = app.extensions.get("live_hub")
        if hub is None or hub.pid != os.getpid():
            settings = app.extensions["settings"]
            # Each stream holds a worker thread: by default a quarter of them stay for ordinary requests.
            threads = int(settings.option("GATEWAY_THREADS", "32"))
            hub = LiveHub(
                settings,
                max_streams=int(settings.option("LIVE_MAX_STREAMS") or max(1, threads * 3 // 4)),
                grace=float(settings.option("LIVE_RING_GRACE_SECONDS", "0.25")),
                idle_seconds=float(settings.option("LIVE_IDLE_SECONDS", "5")),
                view_cache_size=int(settings.option("VIEW_CACHE_SIZE", "2000")),
            )
            app.extensions["live_hub"] = hub
    return hub
