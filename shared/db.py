"""Databases: engines that behave the same on SQLite and PostgreSQL, and migrations.

SQLite is the default for development and several processes share each file (gunicorn
workers, the relay, the consumer), so every SQLite transaction that may write starts with
``BEGIN IMMEDIATE``: it takes the write lock up front and waits ``busy_timeout`` for it,
instead of failing with "database is locked" when a reader later tries to write.
Read-only work (``Database.reader``, ``UnitOfWork(read_only=True)``) begins a deferred
transaction instead: in WAL mode it neither waits for nor holds up any writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, Table, create_engine, event, exc, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker

from shared import config
from shared.errors import NotFound

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite checkpoints the WAL into the database from inside the commit that grows it past
# this many pages, and a checkpoint fsyncs twice: with the default (1,000 pages, about 80
# POST /customers) one request in 80 waited for two fsyncs, several milliseconds each on a
# busy disk. 10,000 pages (about 40 MB of WAL between checkpoints) makes that ten times
# rarer; a page changed again before the checkpoint is copied once. In-process, 5,000 POST
# /customers: 3.5-5.2 ms -> 2.9-3.9 ms wall per request on a loaded machine, same CPU.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000
READ_ONLY = "callcenter_read_only"  # execution option: this transaction will not write


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        busy_timeout_ms = config.sqlite_busy_timeout_ms(DEFAULT_SQLITE_BUSY_TIMEOUT_MS)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
        _make_sqlite_transactional(engine, busy_timeout_ms)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args = {}
    if behind_transaction_pooler() and parsed.get_driver_name() == "psycopg":
        # PgBouncer in transaction mode gives each transaction any server connection: a statement
        # psycopg prepared on one (after 5 runs) is missing on the next ("prepared statement
        # _pg3_0 does not exist" / "already exists"). Never prepare.
        connect_args["prepare_threshold"] = None
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args)


def behind_transaction_pooler() -> bool:
    """``DATABASE_POOL_MODE=transaction``: PostgreSQL is reached through a transaction-mode pooler."""
    return config.database_pool_mode() == "transaction"


def _make_sqlite_transactional(engine: Engine, busy_timeout_ms: int) -> None:
    # The recipe from SQLAlchemy's SQLite dialect docs: take transaction control away
    # from the sqlite3 module and issue BEGIN ourselves.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit returns once the WAL is on disk, so an acknowledged write survives a
        # power cut (NORMAL would sync only at checkpoints, and a cut could roll the newest
        # commits back). It costs one fsync per write transaction, ~0.16 ms here.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        if connection.get_execution_options().get(READ_ONLY, False):
            connection.exec_driver_sql("BEGIN")
        else:
            _begin_immediate(connection.connection.driver_connection, busy_timeout_ms)


def _begin_immediate(raw, busy_timeout_ms: int) -> None:
    """Take SQLite's write lock, waiting in short jittered steps for up to the busy timeout.

    SQLite's own busy handler sleeps in growing steps of up to 100 ms, so a waiter keeps
    missing the short gaps between another process's transactions and can wait for
    hundreds of milliseconds behind a steady writer. Retrying every millisecond or two
    takes the first gap.
    """
    raw.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + busy_timeout_ms / 1000
        pause = 0.0002
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if ("locked" not in str(error) and "busy" not in str(error)) or time.monotonic() > deadline:
                    # As SQLAlchemy would have raised it, so callers see one kind of error.
                    raise exc.OperationalError("BEGIN IMMEDIATE", None, error) from error
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, 0.002)
    finally:
        raw.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def upsert(session: Session, table: Table, values: dict, key: tuple[str, ...]) -> None:
    """Insert a row, or update the one with the same key, in one statement."""
    statement = _upsert_statement(session.bind.dialect.name, table, tuple(values), key)
    session.execute(statement, values)


@functools.cache
def _upsert_statement(dialect: str, table: Table, columns: tuple[str, ...], key: tuple[str, ...]):
    # Built once per table and column set: constructing it costs more than running it.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    changes = {column: statement.excluded[column] for column in columns if column not in key}
    return statement.on_conflict_do_update(index_elements=list(key), set_=changes)


class Database:
    """An engine and the session factory bound to it."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.reader = self.engine.execution_options(**{READ_ONLY: True})
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(self.reader, expire_on_commit=False)

    def ping(self) -> None:
        with self.reader.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


ALEMBIC_SCRIPTS = Path(__file__).parent / "alembic"


@dataclass(frozen=True)
class Migrations:
    """A service's schema history: its revision files and the tables they build."""

    versions: Path
    metadata: tuple[MetaData, ...]

    def config(self, url: str) -> Config:
        config = Config()
        config.set_main_option("script_location", str(ALEMBIC_SCRIPTS))
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", str(self.versions))
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        config.attributes["target_metadata"] = list(self.metadata)
        return config


@contextlib.contextmanager
def _migration_lock(engine: Engine, url: str):
    """Let every process of a service call migrate() at start: one migrates, the rest wait."""
    if is_postgresql(engine):
        key = int.from_bytes(hashlib.sha256(b"alembic:" + url.encode()).digest()[:8], "big", signed=True)
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
        return
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def migrate_on_start() -> bool:
    """``MIGRATE_ON_START`` (default on): whether a web or worker process migrates as it starts.

    Off in production (the image's compose file and Kubernetes manifests): there the one-shot
    ``python -m services migrate`` job migrates before a rollout, and the replicas only start.
    """
    return config.migrate_on_start()


def migrate(database: Database, migrations: Migrations, *, force: bool = False) -> None:
    """Bring the schema to the newest revision; a no-op when it is already there.

    Unless ``force`` (the migrate command), this does nothing when ``MIGRATE_ON_START`` is off
    but log a schema it does not know as head: during a rolling upgrade an old replica meets the
    newer (expanded) schema, and a new one started before the job is a deployment mistake.
    """
    config = migrations.config(database.url)
    head = ScriptDirectory.from_config(config).get_current_head()
    if not force and not migrate_on_start():
        with database.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current != head:
            log.warning(
                "schema is not at this code's head; run the migrate job", extra={"current": current, "head": head}
            )
        return
    with _migration_lock(database.engine, database.url):
        with database.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
        log.info("migrating database", extra={"from_revision": current, "to_revision": head})
        command.upgrade(config, "head")


def get_or_not_found(session: Session, model: type[T], key, what: str) -> T:
    """``session.get(model, key)``, or :class:`shared.errors.NotFound` ("No agent a-7.")."""
    found = session.get(model, key)
    if found is None:
        raise NotFound(f"No {what} {key}.")
    return found


def add_new(session: Session, obj, *children) -> None:
    """Write a new ORM object (and its new ``children``, e.g. a customer's numbers) with one Core
    INSERT each, then attach them to the session as already persistent.

    The unit of work's flush costs ~0.4 ms for a customer and its number, most of a write
    request's own time; this costs ~0.1 ms. Afterwards the objects behave as if loaded: a later
    change in the transaction is flushed as an UPDATE, and nothing is inserted twice. The parent
    comes first (foreign keys); every primary key must be set, Python-side defaults are applied
    here, and a column left unset with only a server default is read back when first touched.
    """
    for new in (obj, *children):
        insert, columns = _insert_plan(type(new))
        state = new.__dict__
        values = {}
        for key, column, default in columns:
            value = state.get(key, _UNSET)
            if value is _UNSET:
                if default is _UNSET:
                    continue  # the server's default: left expired, loaded when first read
                value = default(None) if callable(default) else default
                setattr(new, key, value)
            values[column] = value
        session.execute(insert, values)
    for new in (*children, obj):
        make_transient_to_detached(new)
    session.add(obj)  # persistent, with its children by cascade: nothing left to flush


_UNSET = object()


@functools.cache
def _insert_plan(model: type) -> tuple[object, tuple[tuple[str, str, object], ...]]:
    # (attribute, column, Python default or _UNSET for "the database's") per mapped column,
    # worked out once per model: inspecting the mapper costs more than the insert.
    mapper = inspect(model)
    columns = []
    for attribute in mapper.column_attrs:
        column = attribute.columns[0]
        default = column.default
        if default is not None and (default.is_scalar or default.is_callable):
            python_default = default.arg
        elif default is None and column.server_default is None:
            python_default = None
        else:
            python_default = _UNSET
        columns.append((attribute.key, column.key, python_default))
    return mapper.local_table.insert(), tuple(columns)
