"""Local replicas of another service's records, kept current from its events.

A service that needs to know customers (to route a caller, to attribute a survey, to apply
the do-not-call list) keeps its own copy of the few fields it uses instead of reading the
directory's database. A service declares the two tables with the mixins below and binds
``customer_replica_handlers(...)`` in its ``events.py``.

Events can arrive late or twice: ``customer.created``/``updated`` carry the whole record
and are applied only when they are newer than what the replica holds (``occurred_at``), so
an old state never overwrites a newer one. A merged customer keeps its row, marked with
the survivor's id, so that lookups can follow the redirect.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields
from sqlalchemy import Boolean, String, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.consumer import Handler
from shared.events import Envelope
from shared.schemas import Timestamp
from shared.sqltypes import UtcDateTime
from shared.unit_of_work import UnitOfWork


class CustomerReplicaColumns:
    """Mix into a service's declarative model: ``class CustomerReplica(CustomerReplicaColumns, Base)``."""

    __tablename__ = "customer_replicas"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(16), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    do_not_call: Mapped[bool] = mapped_column(Boolean, server_default="0")
    marketing_consent: Mapped[bool] = mapped_column(Boolean, server_default="0")
    segment: Mapped[str | None] = mapped_column(String(1))
    merged_into_id: Mapped[str | None] = mapped_column(String(36))
    language: Mapped[str | None] = mapped_column(String(16))  # BCP 47 ("zh-Hant"): surveys and scripts in it
    # occurred_at of the event this row was last written from (ISO 8601 UTC, sorts as text)
    as_of: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), server_default=func.now())


class CustomerReplicaPhoneColumns:
    """Every number of every replicated customer, to find a caller by any of them."""

    __tablename__ = "customer_replica_phones"

    phone: Mapped[str] = mapped_column(String(16), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)


def create_customer_replicas_v1(op) -> None:
    import sqlalchemy as sa

    op.create_table(
        "customer_replicas",
        sa.Column("customer_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(16)),
        sa.Column("email", sa.String(254)),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_customer_replicas_phone", "customer_replicas", ["phone"])


def upgrade_customer_replicas_v2(op) -> None:
    """Consent, time zone, segment, merge redirect and every phone number (frozen: add a v3 to change)."""
    import sqlalchemy as sa

    with op.batch_alter_table("customer_replicas") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(64)))
        batch.add_column(sa.Column("do_not_call", sa.Boolean, server_default="0", nullable=False))
        batch.add_column(sa.Column("marketing_consent", sa.Boolean, server_default="0", nullable=False))
        batch.add_column(sa.Column("segment", sa.String(1)))
        batch.add_column(sa.Column("merged_into_id", sa.String(36)))
        batch.add_column(sa.Column("as_of", sa.String(40)))
    op.create_table(
        "customer_replica_phones",
        sa.Column("phone", sa.String(16), primary_key=True),
        sa.Column("customer_id", sa.String(36), primary_key=True),
    )
    op.create_index("ix_customer_replica_phones_customer_id", "customer_replica_phones", ["customer_id"])


def downgrade_customer_replicas_v2(op) -> None:
    op.drop_index("ix_customer_replica_phones_customer_id", table_name="customer_replica_phones")
    op.drop_table("customer_replica_phones")
    with op.batch_alter_table("customer_replicas") as batch:
        for column in ("as_of", "merged_into_id", "segment", "marketing_consent", "do_not_call", "time_zone"):
            batch.drop_column(column)


def upgrade_customer_replicas_v3(op) -> None:
    """The customer's language (frozen: add a v4 to change)."""
    import sqlalchemy as sa

    with op.batch_alter_table("customer_replicas") as batch:
        batch.add_column(sa.Column("language", sa.String(16)))


def downgrade_customer_replicas_v3(op) -> None:
    with op.batch_alter_table("customer_replicas") as batch:
        batch.drop_column("language")


def customer_replica_handlers(replica_model, phone_model) -> dict[str, Handler]:
    """Handlers for ``customer.created``, ``customer.updated`` and ``customer.merged``."""
    replicas = replica_model.__table__
    phones = phone_model.__table__

    # Statements built once: a consumer applies thousands of these per second.
    forget_numbers = delete(phones).where(phones.c.customer_id == bindparam("customer_id"))
    add_numbers = insert(phones)

    def record(uow: UnitOfWork, envelope: Envelope) -> None:
        data = envelope.data
        row = {
            "customer_id": data["customer_id"],
            "name": data["name"],
            "phone": data.get("phone"),
            "email": data.get("email"),
            "time_zone": data.get("time_zone"),
            "do_not_call": bool(data.get("do_not_call", False)),
            "marketing_consent": bool(data.get("marketing_consent", False)),
            "segment": data.get("segment"),
            "language": data.get("language"),
            "as_of": envelope.occurred_at,
            "updated_at": datetime.now(UTC),
        }
        uow.session.flush()  # anything a handler left pending in this batch lands first
        session = uow.session.connection()  # Core on the session's transaction: no ORM work per statement
        applied = session.execute(_newer_wins_upsert(session.dialect.name, replicas), row).first()
        if applied is None:
            return  # a newer state is already here; this one arrived late
        numbers = dict.fromkeys([*(data.get("phones") or []), *([data["phone"]] if data.get("phone") else [])])
        session.execute(forget_numbers, {"customer_id": data["customer_id"]})
        if numbers:
            session.execute(add_numbers, [{"phone": n, "customer_id": data["customer_id"]} for n in numbers])

    def merged(uow: UnitOfWork, envelope: Envelope) -> None:
        uow.session.execute(
            update(replicas)
            .where(replicas.c.customer_id == envelope.data["merged_customer_id"])
            .values(merged_into_id=envelope.data["into_customer_id"], updated_at=datetime.now(UTC))
        )
        # The duplicate's numbers now reach the survivor only (its updated record follows).
        uow.session.execute(delete(phones).where(phones.c.customer_id == envelope.data["merged_customer_id"]))

    return {"customer.created": record, "customer.updated": record, "customer.merged": merged}


@functools.cache
def _newer_wins_upsert(dialect: str, replicas):
    """Insert the record, or overwrite the held one unless it is newer (one statement; it
    returns no row when the held state won; RETURNING, as rowcount is not reliable here)."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(replicas)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["customer_id"],
        set_={
            column.name: excluded[column.name]
            for column in replicas.columns
            if column.name != "customer_id" and column.name != "merged_into_id"
        },
        where=or_(replicas.c.as_of.is_(None), replicas.c.as_of <= excluded.as_of),
    ).returning(replicas.c.customer_id)


def resolve_customer_id(session: Session, replica_model, customer_id: str) -> str:
    """Follow merge redirects: the id of the customer that now stands for ``customer_id``."""
    seen = set()
    while customer_id not in seen:
        seen.add(customer_id)
        target = session.execute(
            select(replica_model.merged_into_id).where(replica_model.customer_id == customer_id)
        ).scalar_one_or_none()
        if target is None:
            return customer_id
        customer_id = target
    return customer_id


def merged_customer_ids(session: Session, replica_model, customer_id: str) -> list[str]:
    """The customer and every duplicate merged into them, however deep (the replicas keep the
    redirects): whose records an export or an erasure must cover."""
    ids, frontier = [customer_id], [customer_id]
    while frontier:
        frontier = list(
            session.scalars(select(replica_model.customer_id).where(replica_model.merged_into_id.in_(frontier)))
        )
        ids += [each for each in frontier if each not in ids]
    return ids


def find_customers_by_phone(session: Session, replica_model, phone_model, e164: str) -> list:
    """Replicated customers (not merged away) with this number, primary holders first."""
    rows = session.execute(
        select(replica_model)
        .join(phone_model, phone_model.customer_id == replica_model.customer_id)
        .where(phone_model.phone == e164, replica_model.merged_into_id.is_(None))
    ).scalars()
    return sorted(rows, key=lambda replica: (replica.phone != e164, replica.name))


class CustomerReplicaOut(Schema):
    customer_id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    time_zone = fields.String(allow_none=True)
    do_not_call = fields.Boolean()
    marketing_consent = fields.Boolean()
    segment = fields.String(allow_none=True)
    merged_into_id = fields.String(allow_none=True)
    updated_at = Timestamp()


def customer_replica_blueprint(model, unit_of_work) -> Blueprint:
    """``GET /customers/<id>``: what this service knows of a customer."""
    blueprint = Blueprint(
        "customer_replicas", __name__, url_prefix="/customers", description="Customers known to this service"
    )

    @blueprint.route("/<customer_id>")
    class CustomerReplicaById(MethodView):
        @blueprint.response(200, CustomerReplicaOut)
        def get(self, customer_id):
            """The local copy of a customer, kept from the directory's ``customer.*`` events."""
            with unit_of_work(read_only=True) as uow:
                replica = uow.session.get(model, customer_id)
                if replica is None:
                    abort(404, message=f"No customer {customer_id} known here.")
                return replica

    return blueprint
