"""The surveys service's tables."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, func
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


class SurveyTemplate(Base):
    """One version of a template; every version stays answerable."""

    __tablename__ = "survey_templates"

    template_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # [{"key", "kind": "rating"|"recommend", "required", "texts": {language: text}}], in asking order
    questions: Mapped[list] = mapped_column(JSON)
    comment_enabled: Mapped[bool] = mapped_column(Boolean, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), server_default=func.now())


class SurveyResponse(Base):
    """One customer's answers, with where they came from (the provenance)."""

    __tablename__ = "survey_responses"

    response_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(36))
    template_version: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(8))
    # in_progress (a keypad call under way), partial (hung up midway), complete
    status: Mapped[str] = mapped_column(String(12))
    agent_id: Mapped[str | None] = mapped_column(String(64))
    # One response per call and per call-list entry: a second submission is refused.
    call_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    entry_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    campaign_id: Mapped[str | None] = mapped_column(String(36))
    purchase_id: Mapped[str | None] = mapped_column(String(36), index=True)
    product: Mapped[str | None] = mapped_column(String(200))
    answers: Mapped[dict] = mapped_column(JSON)
    comment: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    day: Mapped[str | None] = mapped_column(String(10))  # the rollup day it counted in (UTC)


class SurveyAnswerRollup(Base):
    """Running sums of the answers per day and group: what every metric is computed from.

    Keyed by the template and by the question's kind in the version answered (``domain.RollupKey``):
    versions whose question is the same pool in one row, a question whose kind changed starts rows
    of its own, and templates sharing a key never share a row (docs/surveys.md, "Figures per
    template")."""

    __tablename__ = "survey_answer_rollups"

    # Each answer counts in its day's row and in its week's row: a week's row equals the sum of its
    # days, and a query reads week rows for the whole weeks of its range and day rows for the rest.
    span: Mapped[str] = mapped_column(String(4), primary_key=True)  # day or week
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)  # all, product, agent, campaign, channel
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # the day, or the Monday of the week
    value: Mapped[str] = mapped_column(String(200), primary_key=True)  # "" for all and for unknown
    template_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    question: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # rating or recommend, as answered
    n: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    squares: Mapped[int] = mapped_column(Integer)
    c1: Mapped[int] = mapped_column(Integer)
    c2: Mapped[int] = mapped_column(Integer)
    c3: Mapped[int] = mapped_column(Integer)
    c4: Mapped[int] = mapped_column(Integer)
    c5: Mapped[int] = mapped_column(Integer)
    c6: Mapped[int] = mapped_column(Integer)
    c7: Mapped[int] = mapped_column(Integer)
    c8: Mapped[int] = mapped_column(Integer)
    c9: Mapped[int] = mapped_column(Integer)
    c10: Mapped[int] = mapped_column(Integer)


class SurveyRollup(Base):
    """The rollups before surveys_0006, keyed by question key only (no kind). Read by nothing since
    that release, which still wrote them for the replicas of the one before it; no longer written
    (a replica of that release, writing them while this one rolls out, needs the table), and
    dropped by the next release's contract migration (docs/surveys.md, "Figures per template")."""

    __tablename__ = "survey_rollups"

    span: Mapped[str] = mapped_column(String(4), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    question: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    squares: Mapped[int] = mapped_column(Integer)
    c1: Mapped[int] = mapped_column(Integer)
    c2: Mapped[int] = mapped_column(Integer)
    c3: Mapped[int] = mapped_column(Integer)
    c4: Mapped[int] = mapped_column(Integer)
    c5: Mapped[int] = mapped_column(Integer)
    c6: Mapped[int] = mapped_column(Integer)
    c7: Mapped[int] = mapped_column(Integer)
    c8: Mapped[int] = mapped_column(Integer)
    c9: Mapped[int] = mapped_column(Integer)
    c10: Mapped[int] = mapped_column(Integer)


class SurveyCount(Base):
    """Running counts per day and group: completed and partial responses (per template), and
    follow-up contacts by outcome (template ""), for the response rate."""

    __tablename__ = "survey_counts"

    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    measure: Mapped[str] = mapped_column(String(24), primary_key=True)
    week: Mapped[str] = mapped_column(String(10))
    count: Mapped[int] = mapped_column(Integer)


class SurveyContact(Base):
    """A follow-up call attempt's outcome (callentry.completed): the response rate's denominator
    and the provenance of a survey given on that entry."""

    __tablename__ = "survey_contacts"

    entry_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    campaign_id: Mapped[str] = mapped_column(String(36))
    agent_id: Mapped[str] = mapped_column(String(64))
    purchase_id: Mapped[str | None] = mapped_column(String(36))
    outcome: Mapped[str] = mapped_column(String(24))
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SurveyPurchase(Base):
    """Purchases (purchase.recorded), so a score can name its product."""

    __tablename__ = "survey_purchases"

    purchase_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    sku: Mapped[str] = mapped_column(String(64))
    product: Mapped[str] = mapped_column(String(200))
    purchased_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SurveyLink(Base):
    """An issued web-link survey; a link is spent when its response is stored."""

    __tablename__ = "survey_links"

    link_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(36))
    template_id: Mapped[str] = mapped_column(String(36))
    template_version: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[str | None] = mapped_column(String(64))
    call_id: Mapped[str | None] = mapped_column(String(64))
    entry_id: Mapped[str | None] = mapped_column(String(36))
    campaign_id: Mapped[str | None] = mapped_column(String(36))
    purchase_id: Mapped[str | None] = mapped_column(String(36))
    language: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    response_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), server_default=func.now())


class SurveyResurvey(Base):
    """The re-survey requested for a response after its service-recovery ticket was resolved (once)."""

    __tablename__ = "survey_resurveys"

    response_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    ticket_id: Mapped[str] = mapped_column(String(36))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), server_default=func.now())


class PrivacyErasure(ErasureColumns, Base):
    """The erasure requests applied to this service's database."""


Index("ix_survey_responses_customer_started", SurveyResponse.customer_id, SurveyResponse.started_at)


class SurveyMail(Base):
    """Survey invitations by mail: the queue shared.mail_outbox sends (see services/surveys/mail.py).

    With ``survey_mail_opt_outs`` the only mail data about a customer here: erasing it is
    ``mail.erase_customer_mail`` (one place)."""

    __tablename__ = "survey_mails"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # "invitation"
    status: Mapped[str] = mapped_column(String(16))  # queued -> sent | failed
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str] = mapped_column(String(36), index=True)
    link_id: Mapped[str | None] = mapped_column(String(36))
    entry_id: Mapped[str | None] = mapped_column(String(36), unique=True)  # one invitation per follow-up entry
    language: Mapped[str] = mapped_column(String(16))
    from_address: Mapped[str] = mapped_column(String(320))
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    extra_headers: Mapped[dict] = mapped_column(JSON, default=dict)  # List-Unsubscribe, Auto-Submitted
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_survey_mails_status_next_attempt_at", "status", "next_attempt_at"),)

    in_reply_to = None  # an invitation starts no thread (shared.mail_outbox reads these)
    references = None


class SurveyMailOptOut(Base):
    """Customers who unsubscribed from survey mail (List-Unsubscribe or the link in the mail)."""

    __tablename__ = "survey_mail_opt_outs"

    customer_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(UtcDateTime())


MIGRATIONS = Migrations(versions=Path(__file__).parent / "migrations", metadata=(Base.metadata, backbone.metadata))
