"""Customer data protection: what every service shares to export and erase a customer.

Each service has a ``privacy.py`` with two functions that name everything it holds about a
customer, table by table: ``export_customer(session, customer_id) -> dict`` and
``erase_customer(session, data)`` (``data`` is a ``customer.erased`` event's). A later change
that adds a kind of record extends those two functions and nothing else. This module gives
them the common parts:

- ``number_hash``: the keyed, non-reversible hash of a phone number that the do-not-call list
  keeps after an erasure (HMAC-SHA256 keyed by ``PRIVACY_HASH_SECRET``: a bare SHA-256 of a
  phone number is reversed by trying every number; the key makes that impossible without it);
- ``ErasureColumns``: the ``privacy_erasures`` table, one row per erasure request a service has
  applied (what ``GET /privacy/erasures`` answers, for the request's progress);
- ``erasure_handler``: the consumer's handler, applying a request once (the consumer dedupes by
  event id as well; this also makes a replayed or re-published request a no-op);
- ``scrub_customer_replicas``: the replica every consuming service keeps, made anonymous;
- ``privacy_blueprint``: ``GET /privacy/customers/<id>/export``, ``GET /privacy/erasures``.

Rows that reports count (calls, tickets, responses, purchases) are kept with their counted
columns untouched; only who and what was said goes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import String, delete, inspect, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared import config
from shared.auth import rule
from shared.config import Settings
from shared.consumer import Handler
from shared.events import Envelope
from shared.schemas import Timestamp
from shared.sqltypes import UtcDateTime
from shared.unit_of_work import UnitOfWork

ERASED_NAME = "Erased customer"
ERASED_TEXT = "[erased]"

# Every service's routes: exports and erasures for the privacy role (and admins); a request's
# progress also for supervisors (the dashboard shows overdue erasures).
ACCESS = [
    rule("/privacy/customers/*", "privacy"),
    rule("/privacy/erasures*", "supervisor", also=("privacy",)),
    rule("/privacy/requests*", "supervisor", also=("privacy",)),
]


def hash_secret(settings: Settings | None = None) -> bytes:
    """The key of ``number_hash``: ``PRIVACY_HASH_SECRET`` (the same in every service, never
    rotated: the list's hashes were made with it), else ``INTERNAL_AUTH_SECRET``; from
    ``settings`` when given, else as ``shared.config`` reads it."""
    if settings is not None:
        secret = settings.option("PRIVACY_HASH_SECRET") or settings.internal_auth_secret
    else:
        secret = config.privacy_hash_secret()
    if not secret:
        raise RuntimeError("PRIVACY_HASH_SECRET (or INTERNAL_AUTH_SECRET) must be set to hash numbers")
    return secret.encode()


def number_hash(e164: str, secret: bytes) -> str:
    return hmac.new(secret, e164.encode(), hashlib.sha256).hexdigest()


class ErasureColumns:
    """Mix into a service's model: ``class PrivacyErasure(ErasureColumns, Base)``."""

    __tablename__ = "privacy_erasures"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime)  # aware UTC on SQLite too (same column)


def create_privacy_erasures(op) -> None:
    import sqlalchemy as sa

    op.create_table(
        "privacy_erasures",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_privacy_erasures_customer_id", "privacy_erasures", ["customer_id"])


def drop_privacy_erasures(op) -> None:
    op.drop_index("ix_privacy_erasures_customer_id", table_name="privacy_erasures")
    op.drop_table("privacy_erasures")


def apply_erasure(session: Session, erasure_model, data: dict, erase: Callable[[Session, dict], None]) -> bool:
    """Apply ``erase`` for this request unless it was applied already; True when applied now."""
    request_id = str(data["request_id"])
    if session.get(erasure_model, request_id) is not None:
        return False
    erase(session, data)
    session.add(erasure_model(request_id=request_id, customer_id=str(data["customer_id"]), applied_at=utcnow()))
    session.flush()
    return True


def erasure_handler(erasure_model, erase: Callable[[Session, dict], None]) -> Handler:
    """The ``customer.erased`` handler of a consuming service."""

    def handle(uow: UnitOfWork, envelope: Envelope) -> None:
        apply_erasure(uow.session, erasure_model, envelope.data, erase)

    return handle


def erased_customer_ids(data: dict) -> list[str]:
    return sorted({str(each) for each in data.get("customer_ids") or ()} | {str(data["customer_id"])})


def scrub_customer_replicas(session: Session, replica_model, phone_model, customer_ids: list[str]) -> None:
    """The replica keeps the id (reports and redirects use it) and loses everything personal.

    ``as_of`` moves to the far future, so a ``customer.updated`` published before the erasure
    and delivered after it cannot bring the details back (newer wins, shared.replicas)."""
    session.execute(
        update(replica_model)
        .where(replica_model.customer_id.in_(customer_ids))
        .values(
            name=ERASED_NAME,
            phone=None,
            email=None,
            time_zone=None,
            marketing_consent=False,
            do_not_call=True,
            as_of="9999-12-31T23:59:59+00:00",
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(phone_model).where(phone_model.customer_id.in_(customer_ids)))


# --- retention -----------------------------------------------------------------------------------

# What each kind of personal data is kept for before the periodic job anonymises it (unset or 0: kept).
RETENTION_SETTINGS = {
    "call_notes": ("RETENTION_CALL_NOTES_DAYS", "days", "callrouting"),
    "ticket_comments": ("RETENTION_TICKET_COMMENTS_DAYS", "days", "tickets"),
    "survey_comments": ("RETENTION_SURVEY_COMMENTS_DAYS", "days", "surveys"),
    "inactive_customers": ("RETENTION_INACTIVE_CUSTOMERS_MONTHS", "months", "tickets"),
}
RETENTION_JOB_SECONDS = 3600.0


def retention(settings, kind: str) -> int | None:
    """How many days (or months, for inactive customers) ``kind`` is kept; None: for ever."""
    name = RETENTION_SETTINGS[kind][0]
    value = int(settings.option(name, "0") or 0)
    return value if value > 0 else None


def retention_settings(settings) -> dict:
    """Every kind with its setting and value: the hygiene report shows them (docs/privacy.md)."""
    return {
        kind: {"setting": name, "unit": unit, "value": retention(settings, kind), "service": service}
        for kind, (name, unit, service) in RETENTION_SETTINGS.items()
    }


def utcnow() -> datetime:
    return datetime.now(UTC)


def records(session: Session, statement) -> list[dict]:
    """Every row ``statement`` selects, as :func:`as_record`: one list of an export."""
    return [as_record(row) for row in session.scalars(statement)]


def as_record(row, exclude: tuple[str, ...] = ()) -> dict:
    """A model row as JSON-ready values, every column (an export hides nothing it holds)."""
    record = {}
    for attribute in inspect(row).mapper.column_attrs:
        if attribute.key in exclude:
            continue
        value = getattr(row, attribute.key)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        record[attribute.key] = value
    return record


# --- routes ---------------------------------------------------------------------------------


class ExportOut(Schema):
    service = fields.String(metadata={"description": "which service holds these records"})
    customer_id = fields.String()
    exported_at = Timestamp()
    records = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.Dict()),
        metadata={"description": "kind of record -> every such record held about the customer, all columns"},
    )


class ErasureArgs(Schema):
    ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=36)),
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "request ids (repeat the parameter)"},
    )


class ErasureState(Schema):
    request_id = fields.String()
    customer_id = fields.String(allow_none=True)
    state = fields.String(validate=validate.OneOf(("done", "pending")))
    applied_at = Timestamp(allow_none=True)


class ErasuresOut(Schema):
    service = fields.String()
    erasures = fields.List(fields.Nested(ErasureState))


def privacy_blueprint(service: str, erasure_model, export: Callable[[Session, str], dict], unit_of_work) -> Blueprint:
    """The routes every service has: its export of a customer, and which erasures it applied."""
    blueprint = Blueprint(
        f"{service}_privacy", __name__, url_prefix="/privacy", description="Customer data: export, erasure progress"
    )

    @blueprint.route("/customers/<customer_id>/export")
    class Export(MethodView):
        @blueprint.response(200, ExportOut)
        def get(self, customer_id):
            """Everything this service holds about a customer (privacy role or admin)."""
            with unit_of_work(read_only=True) as uow:
                records = export(uow.session, customer_id)
            return {"service": service, "customer_id": customer_id, "exported_at": utcnow(), "records": records}

    @blueprint.route("/erasures")
    class Erasures(MethodView):
        @blueprint.arguments(ErasureArgs, location="query")
        @blueprint.response(200, ErasuresOut)
        def get(self, args):
            """Which of these erasure requests this service has applied (``done``) or not yet (``pending``)."""
            with unit_of_work(read_only=True) as uow:
                applied = {
                    row.request_id: row
                    for row in uow.session.scalars(
                        select(erasure_model).where(erasure_model.request_id.in_(args["ids"]))
                    )
                }
            return {
                "service": service,
                "erasures": [
                    {
                        "request_id": request_id,
                        "customer_id": applied[request_id].customer_id if request_id in applied else None,
                        "state": "done" if request_id in applied else "pending",
                        "applied_at": applied[request_id].applied_at if request_id in applied else None,
                    }
                    for request_id in dict.fromkeys(args["ids"])
                ],
            }

    return blueprint
