"""The broker side of live updates: one consumer thread per gateway process, fanning events out
to the open streams of that process.

The thread starts with the first stream (so after gunicorn forked the worker) and owns its own
pika connection, heartbeats on. It reads a server-named, exclusive, auto-delete, non-durable
queue bound to the events exchange for the few event types screens need. That queue lives and
dies with the connection: this is a transient fan-out, not a durable consumer (the gateway is
deliberately not a consumer of these types in ``shared.event_catalog``). Events published
while the thread is disconnected are not replayed; each time it (re)binds, every stream is told
``ready`` and the console refetches what it shows.

``LiveRouter`` decides who is told what; it keeps a little state (the calls seen ringing) and
runs only on the hub's thread. Streams take their notices from a bounded queue each.

The same queue also carries every event that names a customer (``CUSTOMER_EVENT_TYPES``): each
drops that customer's entry from the process's ``ViewCache`` of complete customer views
(``view``). The cache is only used while the hub is bound (nothing would invalidate it
otherwise) and is emptied whenever it binds or lets go; views asked for keep the hub up like
open streams do.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field

import pika
import pika.exceptions

from shared import topology
from shared.auth import User
from shared.broker import connection_parameters
from shared.config import Settings
from shared.event_catalog import CATALOG
from shared.events import Envelope, InvalidEvent

log = logging.getLogger(__name__)

LIVE_EVENT_TYPES = ("call.started", "agent.state_changed", "ticket.created", "ticket.updated")


# Every event type whose data names a customer (``customer_id``, ``merged_customer_id``,
# ``into_customer_id``, ...), by the fields that do: each such event drops those customers' views.
def _customer_fields() -> dict[str, tuple[str, ...]]:
    named: dict[str, dict[str, None]] = {}
    for entry in CATALOG.values():
        for name in entry.receiving_schema.fields:
            if name.endswith("customer_id"):
                named.setdefault(entry.name, {})[name] = None
    return {event_type: tuple(names) for event_type, names in named.items()}


CUSTOMER_FIELDS = _customer_fields()
CUSTOMER_EVENT_TYPES = tuple(sorted(CUSTOMER_FIELDS))
BOUND_EVENT_TYPES = tuple(sorted(set(LIVE_EVENT_TYPES) | set(CUSTOMER_EVENT_TYPES)))
# A customer's view is dropped again this long after its event: another service may still be
# acting on the same event (call routing adds a follow-up on ``followup.requested``, a call-list
# entry on ``purchase.recorded``) when a view fetched right after the first drop asks it.
SETTLE_SECONDS = 1.0
RECOVERY_CATEGORY = "service_recovery"
MAX_RECONNECT_BACKOFF_SECONDS = 30.0
# A stream that falls this far behind is ended (its client reconnects and refetches).
STREAM_BACKLOG = 1000
# The queue keeps at most this many messages when the hub cannot keep up; the oldest go first.
QUEUE_MAX_LENGTH = 10_000
_REMEMBERED = 10_000  # event ids (duplicates from an at-least-once relay) and calls remembered


@dataclass(frozen=True)
class Notice:
    """One server-sent event: ``event`` name, ``id``, JSON-able ``data``."""

    event: str
    id: str | None
    data: dict


@dataclass(frozen=True)
class Audience:
    """Who a notice is for: one user (``user_id``), or everybody with at least ``role``."""

    user_id: str | None = None
    role: str | None = None

    def includes(self, user: User) -> bool:
        if self.user_id is not None:
            return user.id == self.user_id
        return self.role is not None and user.has_role(self.role)


def to_user(user_id: str) -> Audience:
    return Audience(user_id=user_id)


def to_role(role: str) -> Audience:
    return Audience(role=role)


class _Bounded(OrderedDict):
    """An insertion-ordered dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int = _REMEMBERED):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


# --- who is told what ------------------------------------------------------------------------


@dataclass
class LiveRouter:
    """Turns events into notices for audiences.

    A call rings for an agent when call routing reserves them for it: ``agent.state_changed`` to
    ``reserved`` with a ``call_id``. The caller's details come from that call's ``call.started``.
    When a call is routed straight to an agent, both events are published in one transaction,
    the reservation first, so the reservation waits (``pending``) for the ``call.started`` right
    behind it; a call queued earlier was seen starting and is known at once. A reservation whose
    call was never seen (it started before this process listened) rings after ``grace`` seconds
    with the call id only, and the stream fills in the rest from call routing.
    """

    grace: float = 0.25
    calls: _Bounded = field(default_factory=_Bounded)  # call id -> what call.started said
    pending: dict = field(default_factory=dict)  # call id -> {agent id: (monotonic time, event id)}
    rung: dict = field(default_factory=dict)  # agent id -> the call id they were last told of
    seen: _Bounded = field(default_factory=_Bounded)  # event ids, to drop duplicates

    def route(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        if envelope.id in self.seen:
            return []  # the relay delivers at least once
        self.seen[envelope.id] = True
        handler = getattr(self, "_" + envelope.type.replace(".", "_"), None)
        return handler(envelope) if handler else []

    def overdue(self, now: float | None = None) -> list[tuple[Audience, Notice]]:
        """Reservations whose ``call.started`` did not follow within ``grace`` seconds."""
        now = time.monotonic() if now is None else now
        out = []
        for call_id in list(self.pending):
            waiting = self.pending[call_id]
            for agent_id, (since, event_id) in list(waiting.items()):
                if now - since >= self.grace:
                    del waiting[agent_id]
                    out += self._ring(agent_id, {"call_id": call_id}, event_id)
            if not waiting:
                del self.pending[call_id]
        return out

    # -- call routing ----------------------------------------------------------------------------

    def _call_started(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        data = envelope.data
        call_id = data["call_id"]
        facts = {
            "call_id": call_id,
            "from_number": data.get("from_number"),
            "customer_id": _text(data.get("customer_id")),
            "queue": data.get("queue"),
            "started_at": _text(data.get("started_at")),
        }
        self.calls[call_id] = facts
        agents = list(self.pending.pop(call_id, {}))
        if data.get("agent_id") and data["agent_id"] not in agents:
            agents.append(data["agent_id"])
        out = []
        for agent_id in agents:
            out += self._ring(agent_id, facts, envelope.id)
        return out

    def _agent_state_changed(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        data = envelope.data
        agent_id, call_id, new_state = data["agent_id"], data.get("call_id"), data["new_state"]
        state = {
            "agent_id": agent_id,
            "old_state": data["old_state"],
            "new_state": new_state,
            "reason": data.get("reason"),
            "call_id": call_id,
            "changed_at": _text(data.get("changed_at")),
        }
        notice = Notice("agent.state", f"{envelope.id}:agent.state", state)
        # The agent sees their own state; supervisors see everyone's (the console's live wall).
        out = [(to_user(agent_id), notice), (to_role("supervisor"), notice)]
        if new_state != "reserved":
            self.rung.pop(agent_id, None)  # the offer is over: the same call may be offered again later
            for waiting in self.pending.values():
                waiting.pop(agent_id, None)
            return out
        if call_id is None:
            return out
        facts = self.calls.get(call_id)
        if facts is not None:
            out += self._ring(agent_id, facts, envelope.id)
        else:
            self.pending.setdefault(call_id, {})[agent_id] = (time.monotonic(), envelope.id)
        return out

    def _ring(self, agent_id: str, facts: dict, event_id: str) -> list[tuple[Audience, Notice]]:
        if self.rung.get(agent_id) == facts["call_id"]:
            return []
        self.rung[agent_id] = facts["call_id"]
        return [(to_user(agent_id), Notice("call.ringing", f"{event_id}:call.ringing", dict(facts)))]

    # -- tickets ---------------------------------------------------------------------------------

    def _ticket_created(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        data = envelope.data
        ticket = {
            "ticket_id": _text(data["ticket_id"]),
            "number": data["number"],
            "subject": data["subject"],
            "category": data["category"],
            "priority": data["priority"],
            "status": data["status"],
            "customer_id": _text(data.get("customer_id")),
            "group": data.get("group"),
            "call_id": data.get("call_id"),
            "created_at": _text(data.get("created_at")),
        }
        out = []
        if data.get("assignee_id"):
            assigned = {
                **ticket,
                "assignee_id": data["assignee_id"],
                "assigned_by": data.get("created_by"),  # a ticket I open for myself is not news to me
                "previous_assignee_id": None,
            }
            out.append(
                (to_user(data["assignee_id"]), Notice("ticket.assigned", f"{envelope.id}:ticket.assigned", assigned))
            )
        if data["category"] == RECOVERY_CATEGORY:
            recovery = {
                **ticket,
                "assignee_id": data.get("assignee_id"),
                "survey_response_id": _text(data.get("survey_response_id")),
                "resolution_due_at": _text(data.get("resolution_due_at")),
            }
            out.append((to_role("supervisor"), Notice("recovery.opened", f"{envelope.id}:recovery.opened", recovery)))
        return out

    def _ticket_updated(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        data = envelope.data
        change = data["changes"].get("assignee_id")
        if not change or not change.get("new"):
            return []
        assigned = {
            "ticket_id": _text(data["ticket_id"]),
            "customer_id": _text(data.get("customer_id")),
            "assignee_id": change["new"],
            "assigned_by": data.get("actor_id"),
            "previous_assignee_id": change.get("old"),
        }
        return [(to_user(change["new"]), Notice("ticket.assigned", f"{envelope.id}:ticket.assigned", assigned))]


def _text(value) -> str | None:
    """Event data as received (marshmallow validated it but the raw values are kept): text or None."""
    return None if value is None else str(value)


def customers_named(envelope: Envelope) -> list[str]:
    """The customers an event is about (both of a merge), as the event's data names them."""
    data = envelope.data
    return [str(data[name]) for name in CUSTOMER_FIELDS.get(envelope.type, ()) if data.get(name)]


# --- the customer views of this process -----------------------------------------------------


class ViewCache:
    """A bounded LRU of complete customer views (opaque values here), by customer id.

    One fetch per customer at a time (``flight``): when an entry expires under load, the
    requests for it wait for the one fetch under way instead of all asking the services at once
    (which made the whole process wait on them). A drop lets the next request start a new one.

    The race it guards against: a fetch that began before a customer changed and ends after
    must not store what it read. ``begin()`` hands out the current sequence number; every
    ``drop()`` takes a new one and remembers it per customer, and ``store()`` refuses a value
    whose fetch began before its customer's last drop. The per-customer numbers are bounded
    too: a forgotten one raises ``floor``, below which no fetch may store (conservative: a few
    needless misses, never a stale entry). ``clear()`` raises the floor for everything.
    """

    def __init__(self, size: int = 2000, remembered: int = _REMEMBERED):
        self.size = size
        self.remembered = remembered
        self._views: OrderedDict[str, tuple[float, object]] = OrderedDict()  # id -> (stored at, value)
        self._flights: dict[str, Flight] = {}  # id -> the fetch under way that others may wait for
        self._dropped: OrderedDict[str, int] = OrderedDict()  # id -> the sequence number of its last drop
        self._sequence = 0
        self._floor = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._views)

    def get(self, customer_id: str, max_age: float, now: float | None = None):
        """The value stored for ``customer_id`` at most ``max_age`` seconds ago, else None."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._views.get(customer_id)
            if entry is None:
                return None
            if now - entry[0] > max_age:
                del self._views[customer_id]
                return None
            self._views.move_to_end(customer_id)
            return entry[1]

    def begin(self) -> int:
        """Call before fetching; pass the number to ``store``."""
        with self._lock:
            return self._sequence

    def store(self, customer_id: str, value, began: int, now: float | None = None) -> bool:
        """Keep ``value`` unless its customer was dropped (or the cache cleared) since ``began``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if began < self._floor or self._dropped.get(customer_id, 0) > began:
                return False
            self._views[customer_id] = (now, value)
            self._views.move_to_end(customer_id)
            while len(self._views) > self.size:
                self._views.popitem(last=False)
            return True

    def flight(self, customer_id: str) -> tuple[Flight, bool]:
        """The fetch under way for ``customer_id`` and False, or a new one and True: then the
        caller fetches and must ``land`` it (also on failure), whatever happens."""
        with self._lock:
            flight = self._flights.get(customer_id)
            if flight is not None:
                return flight, False
            flight = self._flights[customer_id] = Flight()
            return flight, True

    def land(self, customer_id: str, flight: Flight, value=None, error: BaseException | None = None) -> None:
        with self._lock:
            if self._flights.get(customer_id) is flight:
                del self._flights[customer_id]
        flight.value, flight.error = value, error
        flight.done.set()

    def drop(self, customer_ids: Iterable[Hashable]) -> None:
        with self._lock:
            self._sequence += 1
            for customer_id in customer_ids:
                self._views.pop(customer_id, None)
                self._flights.pop(customer_id, None)  # begun before the change: nobody new joins it
                self._dropped[customer_id] = self._sequence
                self._dropped.move_to_end(customer_id)
            while len(self._dropped) > self.remembered:
                _, sequence = self._dropped.popitem(last=False)
                self._floor = max(self._floor, sequence)

    def clear(self) -> None:
        with self._lock:
            self._sequence += 1
            self._floor = self._sequence
            self._views.clear()
            self._dropped.clear()
            self._flights.clear()


class Flight:
    """One fetch of a customer's view that other requests wait for (``done``), then share."""

    def __init__(self):
        self.done = threading.Event()
        self.value = None
        self.error: BaseException | None = None


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
        failures = 0
        while not self._stop.is_set() and not self._leave_if_idle():
            try:
                for _ in self._consume():
                    failures = 0
                    if self._leave_if_idle():
                        return
            except (pika.exceptions.AMQPError, OSError) as error:
                self.ready.clear()
                if self._stop.is_set():
                    break
                delay = min(0.5 * 2**failures, MAX_RECONNECT_BACKOFF_SECONDS)
                failures += 1
                log.warning(
                    "live updates: broker connection lost; reconnecting",
                    extra={"error": f"{type(error).__name__}: {error}", "retry_in_s": delay},
                )
                self._stop.wait(delay)
            except Exception:
                self.ready.clear()
                log.exception("live updates: unexpected error; reconnecting")
                self._stop.wait(1.0)

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
