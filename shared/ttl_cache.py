"""One small TTL cache for the whole code base: bounded, least recently used first, entries
expiring ``ttl`` seconds after they were stored.

The interface is a subset of ``cachetools.TTLCache`` (``TTLCache(maxsize, ttl, timer)``,
``cache[key] = value``, ``get``, ``pop``, ``clear``, ``len``, ``in``) plus two keyword extras
for callers that know better than the clock: ``set(key, value, at=...)`` dates an entry when
its value was read rather than when it is stored, and ``get(key, max_age=...)`` asks for a
fresher entry than ``ttl``. cachetools is not in ``requirements.lock``; this is the one
hand-rolled cache, so switching to it later is one module. Not thread-safe: callers lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

_MISSING = object()


class TTLCache:
    def __init__(self, maxsize: int, ttl: float, timer: Callable[[], float] = time.monotonic):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.ttl = ttl
        self.timer = timer
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()  # key -> (stored at, value)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __setitem__(self, key: Hashable, value: Any) -> None:
        self.set(key, value)

    def set(self, key: Hashable, value: Any, *, at: float | None = None) -> None:
        """Keep ``value`` as of ``at`` (the timer's now unless given); the least recently used
        entry goes once there are more than ``maxsize``."""
        self._entries[key] = (self.timer() if at is None else at, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)

    def get(self, key: Hashable, default: Any = None, *, max_age: float | None = None, now: float | None = None):
        """The value of ``key`` if it is at most ``max_age`` (else ``ttl``) seconds old, else
        ``default``; an expired entry is forgotten, a hit becomes the most recently used."""
        entry = self._entries.get(key)
        if entry is None:
            return default
        now = self.timer() if now is None else now
        if now - entry[0] > (self.ttl if max_age is None else max_age):
            del self._entries[key]
            return default
        self._entries.move_to_end(key)
        return entry[1]

    def pop(self, key: Hashable, default: Any = None) -> Any:
        entry = self._entries.pop(key, None)
        return default if entry is None else entry[1]

    def clear(self) -> None:
        self._entries.clear()
