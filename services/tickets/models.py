"""The tickets service's tables."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared import backbone, webhooks
from shared.db import Migrations
from shared.models import new_id, utcnow
from shared.privacy import ErasureColumns
from shared.sqltypes import UtcDateTime


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(16), index=True)  # the primary number, E.164
    email: Mapped[str | None] = mapped_column(String(254), index=True)  # stored lower-case
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), server_default=func.now(), default=utcnow)
    time_zone: Mapped[str | None] = mapped_column(String(64))
    do_not_call: Mapped[bool] = mapped_column(Boolean, server_default="0", default=False)
    marketing_consent: Mapped[bool] = mapped_column(Boolean, server_default="0", default=False)
    segment: Mapped[str | None] = mapped_column(String(1))
    merged_into_id: Mapped[str | None] = mapped_column(String(36))  # the survivor, once merged
    language: Mapped[str | None] = mapped_column(String(16))  # BCP 47; defaults from the primary number's country
    # The name folded for search (lower case, accents off: "Inès" -> "ines"), kept with every name change.
    search_name: Mapped[str | None] = mapped_column(String(200), index=True)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # personal data erased (privacy.py)
    numbers: Mapped[list[CustomerPhone]] = relationship(
        order_by="CustomerPhone.position", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def phones(self) -> list[str]:
        """Every number, primary first."""
        return [number.phone for number in self.numbers]

    @property
    def merged_into(self) -> str | None:
        return self.merged_into_id


class CustomerPhone(Base):
    """Every number of a customer (the primary one too), to find a customer by any of them."""

    __tablename__ = "customer_phones"

    customer_id: Mapped[str] = mapped_column(String(36), ForeignKey("customers.id"), primary_key=True)
    phone: Mapped[str] = mapped_column(String(16), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)  # 0 is the primary number

    __table_args__ = (Index("ix_customer_phones_phone", "phone"),)


class Purchase(Base):
    __tablename__ = "purchases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(String(36), ForeignKey("customers.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    product: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    purchased_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)  # segments age by it
    source: Mapped[str] = mapped_column(String(64))
    order_ref: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("source", "order_ref", name="uq_purchases_source_order_ref"),)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("customers.id"))
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    assignee_id: Mapped[str | None] = mapped_column(String(64))
    group: Mapped[str | None] = mapped_column("group_name", String(64))
    tags: Mapped[list] = mapped_column(JSON, default=list)
    call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # One service-recovery ticket per survey response, however often the low score arrives.
    survey_response_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    first_responded_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # SLA: due times as computed when opened (moved on by pauses), and breach flags.
    first_response_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolution_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    pending_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    paused_seconds: Mapped[float] = mapped_column(Float, default=0.0)  # SLA-clock time spent pending
    first_response_breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolution_breached_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    breached: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # When the breach worker must next look at this ticket (the earliest unmet due time); null
    # once nothing can breach any more, so the worker's index stays small.
    sla_check_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)

    __table_args__ = (
        # Lists filter on the leading columns and page by (created_at, id): the id makes each
        # index cover the page query (see ticket_cases.list_tickets), so only a page's rows are read.
        Index("ix_tickets_created_at", "created_at", "id"),
        Index("ix_tickets_status_created_at", "status", "created_at", "id"),
        Index("ix_tickets_assignee_status_created_at", "assignee_id", "status", "created_at", "id"),
        Index("ix_tickets_customer_created_at", "customer_id", "created_at", "id"),
        Index("ix_tickets_category_created_at", "category", "created_at", "id"),
        Index("ix_tickets_priority_status_created_at", "priority", "status", "created_at", "id"),
        Index("ix_tickets_resolved_at", "resolved_at"),
    )


class TicketComment(Base):
    __tablename__ = "ticket_comments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    ticket_id: Mapped[str] = mapped_column(String(36), ForeignKey("tickets.id"), index=True)
    author_id: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean)  # a reply the customer sees, or an internal note
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TicketChange(Base):
    """The history of a ticket: one row per changed field (creation is one row too)."""

    __tablename__ = "ticket_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(String(36), ForeignKey("tickets.id"), index=True)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)  # JSON
    new_value: Mapped[str | None] = mapped_column(Text)  # JSON


class Counter(Base):
    """Sequences that work the same on SQLite and PostgreSQL (ticket numbers), and ``sla_config``:
    a random token replaced whenever an SLA policy or the calendar changes, so that every process
    knows when its cached copy is out of date (see sla.current_sla_config)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class SlaPolicyRow(Base):
    __tablename__ = "sla_policies"

    priority: Mapped[str] = mapped_column(String(16), primary_key=True)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    business_hours: Mapped[bool] = mapped_column(Boolean)


class BusinessCalendarRow(Base):
    """The service desk's business hours (one row, id 1, when set)."""

    __tablename__ = "business_calendars"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    hours: Mapped[dict] = mapped_column(JSON)  # {"mon": [["09:00", "17:00"]], ...}
    holidays: Mapped[list] = mapped_column(JSON)  # ["2026-12-25", ...]


class PrivacyRequest(Base):
    """A customer's request to be erased (the directory owns them); every service applies it."""

    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_requested_at", "requested_at"),)

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # erasure
    requested_by: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())  # every service should have applied it by then


class PrivacyErasure(ErasureColumns, Base):
    """The erasure requests applied to this service's database."""


class Mail(Base):
    """Every mail in and out of the service desk, one row each.

    Outbound rows are the mail queue: written in the transaction of the reply that causes them
    (like the event outbox), then claimed and sent by the worker (``mail_send``); ``message_id``
    is fixed when queued and the row is marked ``sent`` once, so a retry never makes a second mail.
    Inbound rows are the dedupe (unique ``message_id``) and the trace of what became of each mail.

    This table and ``mail_attachments`` hold all of mail's personal data (addresses, text, files):
    erasing a customer's mail is ``mail.erase_customer_mail`` (one place).
    """

    __tablename__ = "mails"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    kind: Mapped[str] = mapped_column(String(32))  # "reply", "inbound"
    # out: queued -> sent | failed; in: threaded | opened | ignored | parked
    status: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    ticket_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("tickets.id"), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(36))
    comment_id: Mapped[str | None] = mapped_column(String(36))
    from_address: Mapped[str | None] = mapped_column(String(320))
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(300))
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    references: Mapped[list] = mapped_column("references_ids", JSON, default=list)
    extra_headers = None  # replies need none beyond the thread's (shared.mail_outbox reads it)
    reason: Mapped[str | None] = mapped_column(Text)  # why ignored, parked or not (yet) sent
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)  # a parked mail as it came, to look at
    created_customer: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_mails_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_mails_customer_created_at", "customer_id", "created_at"),
    )


class MailAttachment(Base):
    __tablename__ = "mail_attachments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    mail_id: Mapped[str] = mapped_column(String(36), ForeignKey("mails.id"), index=True)
    ticket_id: Mapped[str | None] = mapped_column(String(36), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


# webhooks.metadata: the signed inbound-mail webhook's replay claims (shared.webhooks).
MIGRATIONS = Migrations(
    versions=Path(__file__).parent / "migrations", metadata=(Base.metadata, backbone.metadata, webhooks.metadata)
)
