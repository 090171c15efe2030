"""Rows that many requests add at once, committed together: group commit within one process.

A request that must not answer before its row is on disk (the gateway's audit log: every look at
a customer's data) pays for a transaction of its own: on SQLite the one write lock and a flush,
for a row of a few hundred bytes. Under load those transactions queue behind each other: the
cached customer view, a lookup in memory, was held to the rate of one commit at a time.

Here a request hands its row over and waits. If no commit is under way, it leads: it takes every
row waiting (its own included) and inserts them in one transaction. Rows that arrive meanwhile
wait for the next commit, led by the first of them. So each request still answers only once its
row is committed (nothing acknowledged is lost), alone when the process is quiet (one commit, as
before), and under load many rows share one lock and one flush. A failed commit fails every
request of its batch with the error, and none of their rows is written.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Table, insert

from shared.db import Database


@dataclass
class _Waiter:
    row: dict
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # woken to commit the next batch, not because its row is in
    error: BaseException | None = None


class GroupCommit:
    def __init__(self, database: Database, table: Table, max_batch: int = 500):
        self.database = database
        self.table = table
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Waiter] = []
        self._committing = False
        self.commits = 0  # how many transactions carried the rows so far (for tests and metrics)

    def add(self, row: dict) -> None:
        """Insert ``row``; return once it is committed (raise what the commit raised)."""
        waiter = _Waiter(row)
        with self._lock:
            self._waiting.append(waiter)
            leads = not self._committing
            self._committing = True
        while True:
            if leads:
                self._commit_next_batch()
            waiter.done.wait()
            if not waiter.lead:
                break
            waiter.lead, leads = False, True
            waiter.done.clear()
        if waiter.error is not None:
            raise waiter.error

    def _commit_next_batch(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
        error = None
        try:
            with self.database.engine.begin() as connection:
                connection.execute(insert(self.table), [waiter.row for waiter in batch])
            self.commits += 1
        except Exception as failure:  # noqa: BLE001 - raised again in every request of the batch
            error = failure
        with self._lock:
            if self._waiting:  # the first of those who came meanwhile leads the next commit
                successor = self._waiting[0]
                successor.lead = True
                successor.done.set()
            else:
                self._committing = False
        for waiter in batch:
            waiter.error = error
            waiter.done.set()
