"""Group commit (shared/group_commit.py) on a real database: each request returns once its own row
is committed, rows that arrive during a commit share the next one, and a failed commit fails
every request of its batch and writes none of its rows.

The first commit is held back by another transaction holding the table (SQLite's write lock, or
a PostgreSQL table lock), so that the others are known to be waiting when it goes through."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from services.gateway.models import AuditEntry
from shared.db import is_postgresql
from shared.group_commit import GroupCommit

pytestmark = pytest.mark.db
AT = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
TABLE = AuditEntry.__table__


def row(n: int, action: str | None = "customer.viewed") -> dict:
    return {
        "at": AT,
        "actor_id": f"agent-{n}",
        "actor_role": "agent",
        "action": action,
        "customer_id": f"c-{n}",
        "request_id": f"r-{n}",
        "detail": {"n": n},
    }


@contextlib.contextmanager
def table_held(database):
    """Another transaction holds what an insert into the audit log needs, until the block ends."""
    with database.engine.connect() as other:
        raw = other.connection.driver_connection
        if is_postgresql(database.engine):
            other.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        else:
            raw.execute("BEGIN IMMEDIATE")  # SQLite's one write lock
        try:
            yield
        finally:
            raw.rollback() if not is_postgresql(database.engine) else other.rollback()


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def rows_of(database) -> dict[str, str]:
    with database.engine.connect() as look:
        return dict(look.execute(select(TABLE.c.actor_id, TABLE.c.action)).all())


def test_rows_that_arrive_during_a_commit_share_the_next_and_each_returns_once_its_row_is_in(database_factory):
    database = database_factory.migrated("gateway")
    log = GroupCommit(database, TABLE)
    seen_at_return: dict[int, int] = {}

    def request(n: int) -> None:
        log.add(row(n))
        with database.engine.connect() as look:  # another connection sees it: it is committed
            seen_at_return[n] = look.scalar(select(func.count()).where(TABLE.c.actor_id == f"agent-{n}"))

    with table_held(database):
        leader = threading.Thread(target=request, args=(0,))
        leader.start()
        wait_until(lambda: log._committing and not log._waiting)  # the leader took its row and waits for the table
        followers = [threading.Thread(target=request, args=(n,)) for n in range(1, 21)]
        for follower in followers:
            follower.start()
        wait_until(lambda: len(log._waiting) == 20)
        assert seen_at_return == {}  # nobody answered before a commit
    for thread in (leader, *followers):
        thread.join(10)

    assert seen_at_return == {n: 1 for n in range(21)}
    assert log.commits == 2  # the leader's row alone, then the twenty that waited, together
    assert len(rows_of(database)) == 21


def test_a_failed_commit_fails_every_request_of_its_batch_and_writes_none_of_them(database_factory):
    database = database_factory.migrated("gateway")
    log = GroupCommit(database, TABLE)
    outcomes: dict[int, str] = {}

    def request(n: int, action: str | None) -> None:
        try:
            log.add(row(n, action))
            outcomes[n] = "committed"
        except Exception as error:
            outcomes[n] = type(error).__name__

    with table_held(database):
        first = threading.Thread(target=request, args=(0, "customer.viewed"))
        first.start()
        wait_until(lambda: log._committing and not log._waiting)
        broken = threading.Thread(target=request, args=(1, None))  # action is NOT NULL
        broken.start()
        wait_until(lambda: len(log._waiting) == 1)
        innocent = threading.Thread(target=request, args=(2, "customer.viewed"))
        innocent.start()
        wait_until(lambda: len(log._waiting) == 2)
    for thread in (first, broken, innocent):
        thread.join(10)

    assert outcomes == {0: "committed", 1: "IntegrityError", 2: "IntegrityError"}
    assert rows_of(database) == {"agent-0": "customer.viewed"}
    log.add(row(3))  # the log goes on after a failed batch
    assert set(rows_of(database)) == {"agent-0", "agent-3"}
