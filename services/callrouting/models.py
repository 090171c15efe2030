"""The callrouting service's tables.

Outbound follow-up call lists: campaigns, their entries and every attempt, the do-not-call
list, the contacts the contact-frequency rule looks at, and the agents registry (shared with
the inbound half, which adds its own tables at the end of this file).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared import backbone
from shared.db import Migrations
from shared.replicas import CustomerReplicaColumns, CustomerReplicaPhoneColumns
from shared.sqltypes import UtcDateTime


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class CustomerReplica(CustomerReplicaColumns, Base):
    """The customers this service has heard of, from the directory's events."""


class CustomerReplicaPhone(CustomerReplicaPhoneColumns, Base):
    """Every number of those customers."""


class Agent(Base):
    """The agents registry: the id is the one the gateway's users have."""

    __tablename__ = "agents"

    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default="offline")  # one of event_catalog.AGENT_STATES
    state_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


# --- outbound call lists ---------------------------------------------------------------------


class Campaign(Base):
    """A call list: who to call after what, what to say, when and how often to retry."""

    __tablename__ = "campaigns"

    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(32), index=True)  # post_purchase, resurvey, callback
    delay_days: Mapped[int] = mapped_column(Integer)
    script: Mapped[str] = mapped_column(Text, default="")
    talking_point: Mapped[str] = mapped_column(Text, default="")
    retry_policy: Mapped[dict] = mapped_column(JSON)  # outcome -> {"delay_minutes", "max_attempts"}
    calling_window: Mapped[dict] = mapped_column(JSON)  # "mon".."sun" -> ["HH:MM", "HH:MM"], local time
    contact_frequency_days: Mapped[int] = mapped_column(Integer)
    required_skill: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


def shuffle_key() -> float:
    return random.random()


class CallEntry(Base):
    """One customer to call on one campaign: pending -> leased -> completed / exhausted / cancelled."""

    __tablename__ = "call_entries"
    __table_args__ = (
        # one entry per purchase and campaign, however often purchase.recorded is delivered
        UniqueConstraint("campaign_id", "purchase_id", name="uq_call_entries_campaign_purchase"),
        # the hand-out's random pick scans a slice of the pending entries by shuffle key
        Index("ix_call_entries_state_shuffle", "state", "shuffle_key"),
        Index("ix_call_entries_state_lease", "state", "lease_expires_at"),
        Index("ix_call_entries_campaign_state_due", "campaign_id", "state", "due_at"),
    )

    entry_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.campaign_id"))
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    purchase_id: Mapped[str | None] = mapped_column(String(36))
    followup_request_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    origin: Mapped[str] = mapped_column(String(16))  # purchase, api, csv, followup
    state: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The customer's IANA zone when the entry was scheduled (or the default when unknown),
    # kept current from customer.updated; the calling window is read in it.
    time_zone: Mapped[str] = mapped_column(String(64))
    # A uniform random number drawn once; see domain.pick_uniformly for why it gives a fair pick.
    shuffle_key: Mapped[float] = mapped_column(Float, default=shuffle_key)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    leased_by: Mapped[str | None] = mapped_column(String(64), index=True)
    leased_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    offer_accepted: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CallAttempt(Base):
    """Every call an agent made on an entry, with its outcome."""

    __tablename__ = "call_attempts"
    __table_args__ = (Index("ix_call_attempts_campaign_ended", "campaign_id", "ended_at"),)

    attempt_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    entry_id: Mapped[str] = mapped_column(ForeignKey("call_entries.entry_id"), index=True)
    campaign_id: Mapped[str] = mapped_column(String(36))
    customer_id: Mapped[str] = mapped_column(String(36))
    agent_id: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(32))
    offer_accepted: Mapped[bool | None] = mapped_column(Boolean)
    notes: Mapped[str | None] = mapped_column(Text)
    callback_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DoNotCall(Base):
    """The one do-not-call list every campaign obeys, by customer and/or number."""

    __tablename__ = "do_not_call"

    dnc_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str | None] = mapped_column(String(36), index=True)
    phone: Mapped[str | None] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(16))  # consent, outcome, manual
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CustomerContact(Base):
    """A conversation with a customer (a reached call, a completed survey), for contact frequency."""

    __tablename__ = "customer_contacts"
    __table_args__ = (Index("ix_customer_contacts_customer_at", "customer_id", "contacted_at"),)

    contact_id: Mapped[str] = mapped_column(String(80), primary_key=True)  # "<kind>:<id of what it was>"
    customer_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))  # call, survey
    contacted_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CallTimeZone(Base):
    """Every time zone an entry was ever scheduled in: the few the calling window is checked for."""

    __tablename__ = "call_time_zones"

    time_zone: Mapped[str] = mapped_column(String(64), primary_key=True)


MIGRATIONS = Migrations(versions=Path(__file__).parent / "migrations", metadata=(Base.metadata, backbone.metadata))


# --- inbound calls ---------------------------------------------------------------------------
