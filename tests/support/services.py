"""Helpers to run the real relays and consumers inside a test, and to wait for outcomes."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable

from sqlalchemy import func, select

from shared.backbone import outbox, processed_events
from shared.consumer import Consumer
from shared.relay import OutboxRelay


def migrations_of(service: str):
    return importlib.import_module(f"services.{service}.models").MIGRATIONS


def handlers_of(service: str):
    return importlib.import_module(f"services.{service}.events").HANDLERS


class Running:
    """Background threads running relays/consumers, stopped together."""

    def __init__(self):
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def relay(self, database, settings) -> OutboxRelay:
        relay = OutboxRelay(database, settings, self.stop)
        self._start(relay.run, f"relay-{settings.service}")
        return relay

    def consumer(self, database, settings, handlers=None) -> Consumer:
        consumer = Consumer(database, settings, handlers or handlers_of(settings.service), self.stop)
        self._start(consumer.run, f"consumer-{settings.service}")
        return consumer

    def _start(self, target, name) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)
        alive = [thread.name for thread in self.threads if thread.is_alive()]
        assert not alive, f"did not stop: {alive}"


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def count_rows(database, table) -> int:
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def processed_ids(database) -> list[str]:
    with database.engine.connect() as connection:
        return [row.event_id for row in connection.execute(select(processed_events.c.event_id))]


def unpublished(database) -> int:
    with database.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(outbox).where(outbox.c.published_ts.is_(None))
        ).scalar_one()
