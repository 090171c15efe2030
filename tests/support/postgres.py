"""Throwaway databases on a PostgreSQL server, for the tests, the scale harness and the bench."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def create_database(server: str, name: str, template: str | None = None) -> str:
    """Create ``name`` on ``server`` (a copy of ``template`` if given) and return its URL."""
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_databases(server: str, names: list[str]) -> None:
    """Drop ``names`` from ``server``, connections to them included."""
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
