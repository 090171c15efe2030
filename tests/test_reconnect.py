"""The one reconnect-with-backoff loop (shared/reconnect.py) on its own."""

from __future__ import annotations

import threading

import pytest

from shared.reconnect import Backoff, keep_connected


def test_the_backoff_doubles_up_to_its_maximum_and_starts_over_when_reset():
    backoff = Backoff(first=0.5, maximum=3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


class _Stop(threading.Event):
    """A stop that records each wait instead of waiting, and sets itself after ``waits`` of them."""

    def __init__(self, waits: int):
        super().__init__()
        self.waits, self.waited = waits, []

    def wait(self, timeout=None):
        self.waited.append(timeout)
        if len(self.waited) >= self.waits:
            self.set()
        return self.is_set()


def test_sessions_run_again_after_errors_with_the_waits_on_error_names_and_stop_when_done():
    stop, runs, heard, afters = _Stop(waits=10), [], [], []
    outcomes = [OSError("refused"), ValueError("odd"), None, OSError("lost"), True]

    def session():
        outcome = outcomes[len(runs)]
        runs.append(outcome)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def on_error(error):
        heard.append(error)
        return 7.0 if isinstance(error, ValueError) else None

    keep_connected(session, stop=stop, backoff=Backoff(1.0, 30.0), on_error=on_error, after=lambda: afters.append(1))
    assert len(runs) == 5 and len(afters) == 5  # the last session said it is done: no wait after it
    assert [type(e) for e in heard] == [OSError, ValueError, OSError]
    assert stop.waited == [1.0, 7.0, 2.0, 4.0]


def test_a_stop_ends_the_loop_and_without_on_error_an_error_propagates():
    stop = _Stop(waits=2)
    calls = []
    keep_connected(lambda: calls.append(1), stop=stop)
    assert len(calls) == 2 and stop.waited == [0.5, 1.0]
    with pytest.raises(OSError):
        keep_connected(lambda: (_ for _ in ()).throw(OSError("down")), stop=threading.Event())
