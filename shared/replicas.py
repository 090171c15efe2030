"""Local replicas of another service's records, kept current from its events.

A service that needs to know customers (to route a caller, to attribute a survey) keeps
its own copy of the few fields it uses instead of reading the directory's database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields
from sqlalchemy import DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from shared.consumer import Handler
from shared.db import upsert
from shared.events import Envelope
from shared.unit_of_work import UnitOfWork


class CustomerReplicaColumns:
    """Mix into a service's declarative model: ``class CustomerReplica(CustomerReplicaColumns, Base)``."""

    __tablename__ = "customer_replicas"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(16), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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


def on_customer_created(model) -> Handler:
    """A handler that records (or refreshes) the customer in ``model``'s table."""

    def handle(uow: UnitOfWork, envelope: Envelope) -> None:
        data = envelope.data
        row = {
            "customer_id": data["customer_id"],
            "name": data["name"],
            "phone": data.get("phone"),
            "email": data.get("email"),
            "updated_at": datetime.now(UTC),
        }
        upsert(uow.session, model.__table__, row, key=("customer_id",))

    return handle


class CustomerReplicaOut(Schema):
    customer_id = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    updated_at = fields.DateTime()


def customer_replica_blueprint(model, unit_of_work) -> Blueprint:
    """``GET /customers/<id>``: what this service knows of a customer."""
    blueprint = Blueprint(
        "customer_replicas", __name__, url_prefix="/customers", description="Customers known to this service"
    )

    @blueprint.route("/<customer_id>")
    class CustomerReplicaById(MethodView):
        @blueprint.response(200, CustomerReplicaOut)
        def get(self, customer_id):
            """The local copy of a customer, kept from ``customer.created`` events."""
            with unit_of_work(read_only=True) as uow:
                replica = uow.session.get(model, customer_id)
                if replica is None:
                    abort(404, message=f"No customer {customer_id} known here.")
                return replica

    return blueprint
