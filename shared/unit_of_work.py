"""The unit of work: one database transaction, and the events it announces.

Service functions change the domain and call ``uow.publish(...)``; both land in the same
commit, or neither does. Nothing reaches the broker from here: the outbox relay sends
committed rows later, so a rolled-back change can never be announced.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import insert
from sqlalchemy.orm import Session

from shared.backbone import outbox
from shared.db import Database
from shared.events import Envelope

_INSERT_OUTBOX = insert(outbox)  # one statement, compiled once


class UnitOfWork:
    def __init__(
        self,
        database: Database,
        source: str,
        *,
        read_only: bool = False,
        on_begin: Callable[[Session], None] | None = None,
    ):
        self.database = database
        self.source = source
        self.read_only = read_only
        self.on_begin = on_begin  # e.g. claim the request's Idempotency-Key in this transaction
        self.session: Session | None = None

    def __enter__(self) -> UnitOfWork:
        factory = self.database.read_sessions if self.read_only else self.database.sessions
        self.session = factory()
        if self.on_begin is not None:
            try:
                self.on_begin(self.session)
            except BaseException:
                self.session.close()
                raise
        return self

    def __exit__(self, *exc_info) -> None:
        # Closing discards whatever was not committed, so a half-done change never lands;
        # unlike rollback() it leaves loaded objects readable for the response.
        self.session.close()

    def publish(self, event_type: str, data: dict, *, version: int = 1) -> Envelope:
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot publish events")
        envelope = Envelope(type=event_type, data=data, source=self.source, version=version).validate_contract()
        self._announce(envelope)
        return envelope

    def _announce(self, envelope: Envelope) -> None:
        """The envelope joins this transaction's outbox rows (the relay sends them once committed)."""
        row = {
            "event_id": envelope.id,
            "event_type": envelope.type,
            "envelope": envelope.to_json().decode(),
            "created_ts": time.time(),
        }
        self.session.execute(_INSERT_OUTBOX, row)

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()


class CollectingUnitOfWork(UnitOfWork):
    """A unit of work for unit tests of use cases and event handlers: the changes go to a real
    (throwaway) database, and each published envelope is collected in ``published`` instead of
    the outbox, so a test says what was announced without a relay or a broker.

    ``committed`` lists the envelopes of the transactions that committed: what the relay would
    have sent. The tests that prove delivery keep using the real outbox and broker.
    """

    def __init__(self, database: Database, source: str = "test", **options):
        super().__init__(database, source, **options)
        self.published: list[Envelope] = []
        self.committed: list[Envelope] = []

    def _announce(self, envelope: Envelope) -> None:
        self.published.append(envelope)

    def commit(self) -> None:
        super().commit()
        self.committed.extend(self.published)
        self.published.clear()

    def rollback(self) -> None:
        super().rollback()
        self.published.clear()

    def types(self) -> list[str]:
        """The committed events' types, in publishing order."""
        return [envelope.type for envelope in self.committed]
