"""The callrouting service's tables.

Outbound follow-up call lists: campaigns, their entries and every attempt, the do-not-call
list, the contacts the contact-frequency rule looks at, and the agents registry (shared with
the inbound half, which adds its own tables at the end of this file).
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared import backbone, webhooks
from shared.db import Migrations
from shared.models import new_id, utcnow
from shared.privacy import ErasureColumns
from shared.replicas import CustomerReplicaColumns, CustomerReplicaPhoneColumns
from shared.sqltypes import UtcDateTime


class Base(DeclarativeBase):
    pass


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
    # on_call (the agent asks the survey) or link_by_email (its link is mailed once the entry ends)
    survey_delivery: Mapped[str] = mapped_column(String(16), default="on_call", server_default="on_call")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


def shuffle_key() -> float:
    return random.random()


class CallEntry(Base):
    """One customer to call on one campaign: pending -> leased -> completed / exhausted / cancelled."""

    __tablename__ = "call_entries"
    __table_args__ = (
        # one entry per purchase and campaign however often purchase.recorded is delivered (and
        # one per follow-up request): schedule_key says what scheduled the entry
        UniqueConstraint("campaign_id", "schedule_key", name="uq_call_entries_campaign_schedule_key"),
        # The hand-out's random pick reads a slice of the pending entries by shuffle key, and
        # counts the pool now and then: both from the index alone (it covers the filters).
        Index("ix_call_entries_pick", "state", "shuffle_key", "due_at", "campaign_id", "time_zone", "entry_id"),
        Index("ix_call_entries_campaign_state_due", "campaign_id", "state", "due_at", "time_zone"),
        Index("ix_call_entries_state_lease", "state", "lease_expires_at"),
        # who holds what: only leased entries have a holder, so the index holds only those (and
        # its statistics stay useful when nearly every row has none)
        Index(
            "ix_call_entries_leased_by",
            "leased_by",
            sqlite_where=text("leased_by IS NOT NULL"),
            postgresql_where=text("leased_by IS NOT NULL"),
        ),
    )

    entry_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.campaign_id"))
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    purchase_id: Mapped[str | None] = mapped_column(String(36))
    followup_request_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    # "purchase:<purchase_id>", "followup:<request_id>", or "entry:<entry_id>" for one added by hand
    schedule_key: Mapped[str] = mapped_column(String(80))
    origin: Mapped[str] = mapped_column(String(16))  # purchase, api, csv, followup
    state: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The customer's IANA zone when the entry was scheduled (or the default when unknown),
    # kept current from customer.updated; the calling window is read in it.
    time_zone: Mapped[str] = mapped_column(String(64))
    # A uniform random number drawn once; see outbound.domain.pick_uniformly for why it gives a fair pick.
    shuffle_key: Mapped[float] = mapped_column(Float, default=shuffle_key)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    leased_by: Mapped[str | None] = mapped_column(String(64))
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
    __table_args__ = (
        Index("ix_call_attempts_campaign_ended", "campaign_id", "ended_at"),
        Index("ix_call_attempts_customer_ended", "customer_id", "ended_at"),  # the customer view
    )

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
    # An erased customer's numbers, kept only as keyed hashes (shared.privacy.number_hash)
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(16))  # consent, outcome, manual, erasure
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


class AgentStateChange(Base):
    """The agents' state history: one row per change, written with it (``inbound.service._move_agent``).
    Staffed time per interval and each agent's activity timeline are read from it (staffing.py)."""

    __tablename__ = "agent_state_history"
    __table_args__ = (
        Index("ix_agent_state_history_at", "at"),
        Index("ix_agent_state_history_agent_at", "agent_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    old_state: Mapped[str] = mapped_column(String(16))
    new_state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(String(32))


class PrivacyErasure(ErasureColumns, Base):
    """The erasure requests applied to this service's database."""


# webhooks.metadata: the signed JSON webhook's replay claims (shared.webhooks).
MIGRATIONS = Migrations(
    versions=Path(__file__).parent / "migrations", metadata=(Base.metadata, backbone.metadata, webhooks.metadata)
)


# --- inbound calls ---------------------------------------------------------------------------
# Inbound routing (issue 5): queues, the agents' routing data, call records and every
# status callback the phone system sent. Times of calls come from the phone system's clock;
# ``received_at`` and the agents' timers from ours.


class InboundQueue(Base):
    """A queue callers wait in, and how its calls are routed."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(16), default="longest_idle")  # inbound.domain.STRATEGIES
    required_skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    service_level_seconds: Mapped[int] = mapped_column(Integer, default=20)  # T
    short_abandon_seconds: Mapped[int] = mapped_column(Integer, default=5)  # t_s
    wrap_up_seconds: Mapped[int] = mapped_column(Integer, default=30)
    max_wait_seconds: Mapped[int] = mapped_column(Integer, default=600)  # then the caller leaves: timeout
    last_agent_id: Mapped[str | None] = mapped_column(String(64))  # round robin's position
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class AgentRouting(Base):
    """What inbound routing keeps per agent, beside the registry's ``agents`` row."""

    __tablename__ = "agent_routing"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.agent_id"), primary_key=True)
    endpoint_kind: Mapped[str] = mapped_column(String(8), default="client")  # client, sip, number
    endpoint: Mapped[str] = mapped_column(String(200))  # Twilio client name, SIP URI or E.164 number
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: every queue
    missed_offers: Mapped[int] = mapped_column(Integer, default=0)  # in a row
    idle_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    current_call_id: Mapped[str | None] = mapped_column(String(64))
    wrap_up_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    stats_day: Mapped[str | None] = mapped_column(String(10))  # the day the two counters below are for
    calls_today: Mapped[int] = mapped_column(Integer, default=0)
    talk_seconds_today: Mapped[float] = mapped_column(Float, default=0.0)


class Call(Base):
    """One inbound call: ringing/queued -> connected -> wrap_up -> completed, or abandoned."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_day_queue", "day", "queue"),  # the daily report
        Index("ix_calls_state_queue_received", "state", "queue", "received_at"),  # the line, the live view
        Index("ix_calls_customer_answered", "customer_id", "answered_at"),  # sticky routing
        Index("ix_calls_customer_received", "customer_id", "received_at"),  # the customer view
    )

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(8))  # twilio, json
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    customer_id: Mapped[str | None] = mapped_column(String(36))
    queue: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    offered_to: Mapped[list[str]] = mapped_column(JSON, default=list)  # agents reserved for it now
    agent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    enqueued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    wrap_up_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    wrapped_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    result: Mapped[str | None] = mapped_column(String(16))  # answered, abandoned, short_abandon, timeout
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    wrap_up_seconds: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    ticket_id: Mapped[str | None] = mapped_column(String(36))
    last_sequence: Mapped[int | None] = mapped_column(Integer)
    offer_round: Mapped[int] = mapped_column(Integer, default=0)  # how many times it was offered to agents
    day: Mapped[str] = mapped_column(String(10))  # UTC day and hour the call entered, for the report
    hour: Mapped[int] = mapped_column(Integer)


class CallCallback(Base):
    """Every status callback, deduplicated on (the call id it carried, its sequence number).

    ``call_id`` is the id the callback names (Twilio's leg ``CallSid`` for an agent's leg);
    ``record_call_id`` the call record it belongs to, or null for an orphan (an unknown call).
    """

    __tablename__ = "call_callbacks"
    __table_args__ = (UniqueConstraint("call_id", "sequence", name="uq_call_callbacks_call_sequence"),)

    callback_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int | None] = mapped_column(Integer)
    record_call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))  # inbound.domain.CALLBACK_KINDS, or the raw status of an orphan
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    agent_id: Mapped[str | None] = mapped_column(String(64))
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    timeout: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
