"""The customer views of one gateway process: a bounded cache that events keep true.

``ViewCache`` holds complete customer views (opaque values here) by customer id, each for at
most the age asked (``VIEW_CACHE_SECONDS``) and the least recently used going first (a
``cachetools.LRUCache`` of (stored at, view): each read says the age it accepts, so the entries
need no ttl of their own). What it adds: one fetch per customer at a time
(``Flight``), and the guard that a fetch begun before a customer changed never stores what it
read. The live hub (``live_hub``) drops a customer's entry on every event naming them and
clears the cache whenever it binds or lets go.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable

from cachetools import LRUCache

REMEMBERED_DROPS = 10_000  # customers whose last drop is remembered (then the floor rises)


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

    def __init__(self, size: int = 2000, remembered: int = REMEMBERED_DROPS):
        self.size = size
        self.remembered = remembered
        # id -> (monotonic time it was read, value); each get says the age it accepts (VIEW_CACHE_SECONDS)
        self._views: LRUCache = LRUCache(maxsize=size)
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
            entry = self._views.get(customer_id)  # a hit becomes the most recently used
            if entry is None:
                return None
            if now - entry[0] > max_age:
                del self._views[customer_id]  # expired: forgotten, not kept to crowd out the rest
                return None
            return entry[1]

    def begin(self) -> int:
        """Call before fetching; pass the number to ``store``."""
        with self._lock:
            return self._sequence

    def store(self, customer_id: str, value, began: int, now: float | None = None) -> bool:
        """Keep ``value`` unless its customer was dropped (or the cache cleared) since ``began``."""
        with self._lock:
            if began < self._floor or self._dropped.get(customer_id, 0) > began:
                return False
            # ``now``: when the fetch began reading, so its age counts from then
            self._views[customer_id] = (time.monotonic() if now is None else now, value)
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
