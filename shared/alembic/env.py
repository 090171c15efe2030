"""Alembic's entry point, shared by every service; see ``shared.db.Migrations``."""

from alembic import context

from shared.db import make_engine

engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
try:
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=context.config.attributes["target_metadata"],
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying
        )
        with context.begin_transaction():
            context.run_migrations()
finally:
    engine.dispose()
