"""Reconnecting with backoff: the one loop every long-lived broker connection runs in (the outbox
relay, the event consumer, the gateway's live hub).

``keep_connected(session, stop=...)`` runs ``session()`` again and again until ``stop`` is set:
a session connects, works until its connection is lost (it returns, or raises), and the loop
waits before the next one. The waits double from ``first`` up to ``maximum`` seconds and start
afresh once a session called ``backoff.reset()`` (it connected: the next outage is a new one).
``on_error`` hears what a session raised (to log it, clear a ready flag...) and may name the
wait itself. ``tenacity`` would do this too but is not in ``requirements.lock``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


class Backoff:
    """The waits between attempts: ``first``, doubling, at most ``maximum``; ``reset()`` starts over."""

    def __init__(self, first: float = FIRST_BACKOFF_SECONDS, maximum: float = MAX_BACKOFF_SECONDS):
        self.first = first
        self.maximum = maximum
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def next(self) -> float:
        """The wait before the next attempt (and one failure more)."""
        delay = min(self.first * 2**self.failures, self.maximum)
        self.failures += 1
        return delay


def keep_connected(
    session: Callable[[], bool | None],
    *,
    stop: threading.Event,
    backoff: Backoff | None = None,
    on_error: Callable[[Exception], float | None] | None = None,
    after: Callable[[], None] | None = None,
) -> None:
    """Run ``session`` until ``stop`` is set, waiting ``backoff`` between runs.

    ``session`` returns True when its work is done (no reconnect). What it raises goes to
    ``on_error``, which may return the wait (None: the backoff's next); without ``on_error``
    it propagates. ``after`` runs after every session, whatever happened (the relay puts back
    the batch it had in flight).
    """
    backoff = backoff or Backoff()
    while not stop.is_set():
        delay = None
        try:
            if session():
                return
        except Exception as error:
            if on_error is None:
                raise
            delay = on_error(error)
        finally:
            if after is not None:
                after()
        if stop.wait(backoff.next() if delay is None else delay):
            return
