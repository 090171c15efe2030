"""The tables every service database holds for the event backbone.

``outbox``: events written in the same transaction as the change they announce, waiting
for the relay. ``processed_events``: the ids of events a consumer has applied, written in
the same transaction as their effect, which is what makes handling idempotent.

Times the relay computes with are epoch seconds (float) so that SQLite and PostgreSQL
compare them the same way. Migrations create these tables through ``create_tables_v1``,
a frozen copy: if they change, add ``create_tables_v2`` rather than editing this one.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()
_id_type = BigInteger().with_variant(Integer, "sqlite")  # SQLite only autoincrements INTEGER

outbox = Table(
    "outbox",
    metadata,
    Column("id", _id_type, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("event_type", String(100), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("published_ts", Float),
    Column("claimed_by", String(64)),
    Column("claimed_until_ts", Float),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_ts", Float, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Index(
        "ix_outbox_pending",
        "id",
        sqlite_where=text("published_ts IS NULL"),
        postgresql_where=text("published_ts IS NULL"),
    ),
    Index("ix_outbox_published_ts", "published_ts"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("event_type", String(100), nullable=False),
    Column("occurred_at", String(40), nullable=False),
    Column("processed_ts", Float, nullable=False),
)


idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(300), primary_key=True),  # "POST /customers"
    Column("key", String(200), primary_key=True),  # the client's Idempotency-Key
    Column("fingerprint", String(64), nullable=False),  # sha256 of the request body
    Column("status_code", Integer),  # null until the response is stored
    Column("response", Text),  # JSON: body, content type, Location
    Column("created_ts", Float, nullable=False),
    Index("ix_idempotency_keys_created_ts", "created_ts"),
)


def create_tables_v1(op) -> None:
    """Create the backbone tables from a service's first Alembic migration."""
    import sqlalchemy as sa

    op.create_table(
        "outbox",
        sa.Column("id", _id_type, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("published_ts", sa.Float),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until_ts", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_ts", sa.Float, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["id"],
        sqlite_where=sa.text("published_ts IS NULL"),
        postgresql_where=sa.text("published_ts IS NULL"),
    )
    op.create_index("ix_outbox_published_ts", "outbox", ["published_ts"])
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("occurred_at", sa.String(40), nullable=False),
        sa.Column("processed_ts", sa.Float, nullable=False),
    )


def create_tables_v2(op) -> None:
    """Add the ``idempotency_keys`` table (``shared.idempotency``); frozen like v1."""
    import sqlalchemy as sa

    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(300), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("response", sa.Text),
        sa.Column("created_ts", sa.Float, nullable=False),
    )
    op.create_index("ix_idempotency_keys_created_ts", "idempotency_keys", ["created_ts"])


def drop_tables_v2(op) -> None:
    op.drop_index("ix_idempotency_keys_created_ts", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")


def drop_tables_v1(op) -> None:
    op.drop_table("processed_events")
    op.drop_index("ix_outbox_published_ts", table_name="outbox")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
