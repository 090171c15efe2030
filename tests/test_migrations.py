"""Each service's Alembic history builds exactly the tables its models describe."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from shared.config import SERVICES
from shared.db import Database, migrate
from tests.support.services import migrations_of


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_match_the_models(service, database_factory):
    database = database_factory.migrated(service)
    metadata = migrations_of(service).metadata
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [diff for meta in metadata for diff in compare_metadata(context, meta) if _concerns(diff, meta)]
    assert differences == []


def _concerns(diff, metadata) -> bool:
    """compare_metadata reports the other metadata's tables as 'remove_table'; ignore those."""
    if isinstance(diff, tuple) and diff[0] == "remove_table":
        return False
    if isinstance(diff, tuple) and diff[0] in ("remove_index", "remove_column", "remove_constraint"):
        table = getattr(diff[1], "table", None)
        name = getattr(table, "name", None) if table is not None else diff[1]
        return name in metadata.tables
    return True


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_go_down_to_nothing_and_up_again(service, database_factory):
    database = database_factory.migrated(service)
    config = migrations_of(service).config(database.url)
    command.downgrade(config, "base")
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    migrate(database, migrations_of(service))
    assert {"outbox", "processed_events"} <= set(inspect(database.engine).get_table_names())


def test_migrating_an_up_to_date_database_is_a_no_op(database_factory):
    database = database_factory.migrated("tickets")
    with database.engine.connect() as connection:
        head = MigrationContext.configure(connection).get_current_revision()
    again = Database(database.url)
    migrate(again, migrations_of("tickets"))
    with again.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head
    again.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_every_revision_id_fits_alembics_version_column(service):
    """alembic_version.version_num is VARCHAR(32): a longer id passes on SQLite and fails on PostgreSQL."""
    scripts = ScriptDirectory.from_config(migrations_of(service).config("sqlite://"))
    too_long = [script.revision for script in scripts.walk_revisions() if len(script.revision) > 32]
    assert too_long == []
