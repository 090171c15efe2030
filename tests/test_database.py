"""Database behaviour the services rely on, on SQLite and PostgreSQL alike."""

import threading
import time

import pytest
from sqlalchemy import Column, MetaData, String, Table, insert, select

from shared.config import database_url_for
from shared.db import upsert
from shared.unit_of_work import UnitOfWork

metadata = MetaData()
things = Table("things", metadata, Column("key", String(10), primary_key=True), Column("value", String(10)))


def test_a_reader_neither_waits_for_nor_blocks_a_writer(database_factory):
    database = database_factory.migrated("gateway")
    metadata.create_all(database.engine)
    writer_holds_lock = threading.Event()
    release_writer = threading.Event()

    def long_write():
        with database.engine.begin() as connection:
            connection.execute(insert(things).values(key="a", value="1"))
            writer_holds_lock.set()
            release_writer.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    try:
        assert writer_holds_lock.wait(5)
        started = time.monotonic()
        with UnitOfWork(database, source="gateway", read_only=True) as uow:
            rows = uow.session.execute(select(things)).all()
        assert time.monotonic() - started < 1.0, "the read did not wait for the writer"
        assert rows == [], "and it does not see the uncommitted row"
    finally:
        release_writer.set()
        writer.join()


def test_a_read_only_unit_of_work_cannot_publish(database_factory):
    database = database_factory.migrated("tickets")
    with UnitOfWork(database, source="tickets", read_only=True) as uow, pytest.raises(RuntimeError):
        uow.publish("customer.created", {"customer_id": "8a0c6f2e-3f0b-4a64-9d7e-1b1f0b1d6b10", "name": "X"})


def test_upsert_inserts_then_updates_in_place(database_factory):
    database = database_factory.migrated("gateway")
    metadata.create_all(database.engine)
    for value in ("1", "2"):
        with UnitOfWork(database, source="gateway") as uow:
            upsert(uow.session, things, {"key": "a", "value": value}, key=("key",))
            uow.commit()
    with database.engine.connect() as connection:
        assert connection.execute(select(things.c.key, things.c.value)).all() == [("a", "2")]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"TICKETS_DATABASE_URL": "postgresql://h/t", "DATABASE_URL": "postgresql://h/x"}, "postgresql://h/t"),
        ({"DATABASE_URL": "postgresql+psycopg://u:p@h/cc_{service}"}, "postgresql+psycopg://u:p@h/cc_tickets"),
        (
            {"DATABASE_URL": "postgresql+psycopg://u:p@h:5433/callcenter"},
            "postgresql+psycopg://u:p@h:5433/callcenter_tickets",
        ),
    ],
)
def test_each_service_gets_a_database_of_its_own(environ, expected):
    assert database_url_for("tickets", environ) == expected


def test_without_configuration_each_service_has_a_sqlite_file_under_var(monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    assert database_url_for("surveys", {}) == f"sqlite:///{tmp_path / 'surveys.db'}"
    assert database_url_for("tickets", {}) != database_url_for("surveys", {})


def test_an_acknowledged_commit_is_on_disk(database_factory):
    """SQLite: synchronous=FULL in WAL mode: COMMIT returns after the WAL is synced, so a power cut cannot
    roll back a write the caller was told succeeded (NORMAL would sync only at checkpoints)."""
    database = database_factory.migrated("gateway")
    with database.engine.connect() as connection:
        if database.engine.dialect.name == "postgresql":  # the server's own guarantee, not turned off
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            return
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_add_new_inserts_once_and_leaves_a_persistent_object(database_factory):
    from sqlalchemy import event

    from services.tickets.models import Customer, CustomerPhone
    from shared.db import add_new
    from shared.models import new_id, utcnow

    database = database_factory.migrated("tickets")
    statements: list[str] = []

    def record(_connection, _cursor, statement, *_):
        verb, *words = statement.split()
        statements.append(f"{verb} {words[0] if verb == 'UPDATE' else words[1]}")

    event.listen(database.engine, "before_cursor_execute", record)
    with UnitOfWork(database, source="tickets") as uow:
        customer = Customer(id=new_id(), name="Inès", created_at=utcnow(), phone="+4915112345678")
        number = CustomerPhone(customer_id=customer.id, phone="+4915112345678", position=0)
        customer.numbers = [number]
        add_new(uow.session, customer, number)
        assert statements == ["INSERT customers", "INSERT customer_phones"]
        assert customer.segment is None and customer.do_not_call is False  # the Python-side default
        assert customer in uow.session and not uow.session.new and not uow.session.dirty
        uow.session.flush()
        assert len(statements) == 2, "nothing is inserted twice"
        customer.name = "Ines"
        uow.session.flush()
        assert statements[-1] == "UPDATE customers"
        uow.commit()
    event.remove(database.engine, "before_cursor_execute", record)
    with UnitOfWork(database, source="tickets", read_only=True) as uow:
        stored = uow.session.get(Customer, customer.id)
        assert (stored.name, stored.phones, stored.do_not_call) == ("Ines", ["+4915112345678"], False)
