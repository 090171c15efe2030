"""The gateway service's tables."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared import backbone
from shared.db import Migrations
from shared.privacy import ErasureColumns
from shared.replicas import CustomerReplicaColumns, CustomerReplicaPhoneColumns
from shared.sqltypes import UtcDateTime


class Base(DeclarativeBase):
    pass


class CustomerReplica(CustomerReplicaColumns, Base):
    """The customers this service has heard of, from the directory's events."""


class CustomerReplicaPhone(CustomerReplicaPhoneColumns, Base):
    """Every number of those customers."""


class UserAccount(Base):
    """Someone who signs in. ``id`` is also their agent id in call routing ("agent-7")."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # agent | supervisor | admin
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Sign-in throttling: failures in a row, when the next attempt may come, locked until when.
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The console's language (a catalog of services/gateway/console/i18n.py) and time zone; None: the
    # browser's Accept-Language and the center's zone.
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The country a phone number typed without a country code is read in; None: the center's.
    phone_region: Mapped[str | None] = mapped_column(String(2), nullable=True)


class CenterSetting(Base):
    """One setting of the center, chosen by an admin in the console (its time zone, the wall's thresholds)."""

    __tablename__ = "center_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class SignInThrottle(Base):
    """Failed sign-ins counted by something other than an account: ``address:<ip>`` (a spray of
    one guess per account from one place) and ``user:<id>`` for ids that are no account (so an
    unknown id is slowed like a known one, and throttling tells nobody which ids exist)."""

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AuthToken(Base):
    """A session (console cookie) or an API token; only its SHA-256 is stored."""

    __tablename__ = "auth_tokens"
    __table_args__ = (Index("ix_auth_tokens_user", "user_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # session | api
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AuditEntry(Base):
    """Who exported, erased or looked at a customer's data, and when. Rows are only ever added:
    no route changes or deletes them, and an erasure keeps them (they hold ids, not personal data)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_customer_at", "customer_id", "at"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))  # customer.viewed, customer.exported, customer.erased
    customer_id: Mapped[str | None] = mapped_column(String(36))
    request_id: Mapped[str | None] = mapped_column(String(64))  # the HTTP request's correlation id
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class PrivacyErasure(ErasureColumns, Base):
    """The erasure requests applied to this service's database."""


MIGRATIONS = Migrations(versions=Path(__file__).parent / "migrations", metadata=(Base.metadata, backbone.metadata))
