"""Use cases of the outbound call lists; each runs in the caller's unit of work and commits once."""

from __future__ import annotations

import bisect
import csv
import functools
import io
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, and_, bindparam, delete, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound

from shared.db import is_postgresql
from shared.errors import Conflict, Invalid
from shared.events import isoformat_utc
from shared.phones import time_zone_of
from shared.replicas import resolve_customer_id
from shared.unit_of_work import UnitOfWork

from ..models import (
    Agent,
    Call,
    CallAttempt,
    CallEntry,
    CallTimeZone,
    Campaign,
    CustomerContact,
    CustomerReplica,
    CustomerReplicaPhone,
    DoNotCall,
    new_id,
    utcnow,
)
from . import domain

DEFAULT_TIME_ZONE = "Europe/Berlin"
DEFAULT_LEASE_SECONDS = 900
_RNG = random.SystemRandom()  # the hand-out's randomness: os.urandom, never a fixed seed, fork-safe


def default_time_zone() -> str:
    """``CALLROUTING_DEFAULT_TZ``: the zone of a customer whose zone is unknown (not yet replicated...)."""
    return os.environ.get("CALLROUTING_DEFAULT_TZ", DEFAULT_TIME_ZONE)


def _dialect_insert(session: Session):
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


# --- agents ------------------------------------------------------------------------------------


def register_agent(uow: UnitOfWork, agent_id: str, name: str, skills: list[str]) -> Agent:
    """Create an agent, or update the name and skills of an existing one (its state is kept)."""
    agent = uow.session.get(Agent, agent_id)
    if agent is None:
        agent = Agent(agent_id=agent_id, name=name, skills=list(dict.fromkeys(skills)), state="offline")
        uow.session.add(agent)
    else:
        agent.name, agent.skills = name, list(dict.fromkeys(skills))
    uow.commit()
    _forget_recent()
    return agent


def get_agent(uow: UnitOfWork, agent_id: str) -> Agent:
    agent = uow.session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"No agent {agent_id}.")
    return agent


def list_agents(uow: UnitOfWork) -> list[Agent]:
    return list(uow.session.scalars(select(Agent).order_by(Agent.agent_id)))


# --- campaigns ---------------------------------------------------------------------------------


def create_campaign(uow: UnitOfWork, **values) -> Campaign:
    campaign = Campaign(
        campaign_id=new_id(),
        name=values["name"],
        purpose=values.get("purpose") or "post_purchase",
        delay_days=values.get("delay_days", domain.DEFAULT_DELAY_DAYS),
        script=values.get("script") or "",
        talking_point=values.get("talking_point") or "",
        retry_policy=domain.complete_retry_policy(values.get("retry_policy")),
        calling_window=values.get("calling_window") or dict(domain.DEFAULT_CALLING_WINDOW),
        contact_frequency_days=values.get("contact_frequency_days", domain.DEFAULT_CONTACT_FREQUENCY_DAYS),
        required_skill=values.get("required_skill"),
        active=values.get("active", True),
    )
    uow.session.add(campaign)
    uow.commit()
    _forget_recent()
    return campaign


def get_campaign(uow: UnitOfWork, campaign_id: str) -> Campaign:
    campaign = uow.session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"No campaign {campaign_id}.")
    return campaign


def list_campaigns(uow: UnitOfWork, purpose: str | None = None, active: bool | None = None) -> list[Campaign]:
    query = select(Campaign).order_by(Campaign.created_at, Campaign.campaign_id)
    if purpose:
        query = query.where(Campaign.purpose == purpose)
    if active is not None:
        query = query.where(Campaign.active == active)
    return list(uow.session.scalars(query))


def update_campaign(uow: UnitOfWork, campaign_id: str, changes: dict) -> Campaign:
    """Change a campaign's settings; ``active`` pauses (false) or resumes (true) its hand-outs."""
    campaign = get_campaign(uow, campaign_id)
    for name, value in changes.items():
        if name == "retry_policy":
            value = domain.complete_retry_policy({**campaign.retry_policy, **value})
        setattr(campaign, name, value)
    campaign.updated_at = utcnow()
    uow.commit()
    _forget_recent()
    return campaign


def _active_campaign_of(session: Session, purpose: str) -> Campaign | None:
    return session.scalars(
        select(Campaign)
        .where(Campaign.purpose == purpose, Campaign.active.is_(True))
        .order_by(Campaign.created_at, Campaign.campaign_id)
        .limit(1)
    ).first()


# --- the do-not-call list and contacts ----------------------------------------------------------


def customer_numbers(session: Session, customer_id: str) -> list[str]:
    return list(
        session.scalars(select(CustomerReplicaPhone.phone).where(CustomerReplicaPhone.customer_id == customer_id))
    )


def is_do_not_call(session: Session, customer_id: str) -> bool:
    """On the list by consent (the replica), by customer id, or by any of the customer's numbers."""
    numbers = select(CustomerReplicaPhone.phone).where(CustomerReplicaPhone.customer_id == customer_id)
    by_consent = select(CustomerReplica.customer_id).where(
        CustomerReplica.customer_id == customer_id, CustomerReplica.do_not_call.is_(True)
    )
    listed = select(DoNotCall.dnc_id).where(or_(DoNotCall.customer_id == customer_id, DoNotCall.phone.in_(numbers)))
    return bool(session.scalar(select(or_(exists(by_consent), exists(listed)))))


def _put_on_do_not_call(session: Session, customer_id: str, source: str) -> None:
    held = {
        tuple(row)
        for row in session.execute(
            select(DoNotCall.customer_id, DoNotCall.phone).where(
                DoNotCall.customer_id == customer_id, DoNotCall.source == source
            )
        )
    }
    state = session.execute(_REPLICA_STATE, {"customer_id": customer_id}).first()
    numbers = set(customer_numbers(session, customer_id)) | ({state.phone} if state and state.phone else set())
    wanted = {(customer_id, None)} | {(customer_id, number) for number in numbers}
    for customer, phone in sorted(wanted - held, key=str):
        session.add(DoNotCall(customer_id=customer, phone=phone, source=source))


def add_to_do_not_call(uow: UnitOfWork, customer_id: str | None, phone: str | None) -> list[DoNotCall]:
    """A manual entry on the list (a customer, a number, or both): their open entries are cancelled.

    A number given alone also stops every known customer who has it."""
    now = utcnow()
    session = uow.session
    added = [DoNotCall(customer_id=customer_id, phone=phone, source="manual")]
    session.add(added[0])
    customers = {customer_id} if customer_id else set()
    if phone:
        customers |= set(
            session.scalars(select(CustomerReplicaPhone.customer_id).where(CustomerReplicaPhone.phone == phone))
        )
    session.flush()
    for customer in customers:
        _cancel_pending_entries_of(session, customer, now)
    uow.commit()
    return added


def list_do_not_call(uow: UnitOfWork, customer_id: str | None, phone: str | None, limit: int, offset: int):
    conditions = []
    if customer_id:
        conditions.append(DoNotCall.customer_id == customer_id)
    if phone:
        conditions.append(DoNotCall.phone == phone)
    total = uow.session.scalar(select(func.count()).select_from(DoNotCall).where(*conditions))
    rows = uow.session.scalars(
        select(DoNotCall).where(*conditions).order_by(DoNotCall.dnc_id.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def _cancel_pending_entries_of(session: Session, customer_id: str, now: datetime) -> int:
    result = session.execute(
        update(CallEntry)
        .where(CallEntry.customer_id == customer_id, CallEntry.state == "pending")
        .values(state="cancelled", closed_at=now, updated_at=now)
    )
    return result.rowcount


def last_contact_at(session: Session, customer_id: str) -> datetime | None:
    return session.scalar(
        select(func.max(CustomerContact.contacted_at)).where(CustomerContact.customer_id == customer_id)
    )


def _record_contact(session: Session, contact_id: str, customer_id: str, kind: str, at: datetime) -> None:
    statement = _dialect_insert(session)(CustomerContact.__table__).values(
        contact_id=contact_id, customer_id=customer_id, kind=kind, contacted_at=at
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["contact_id"]))


# --- scheduling entries ---------------------------------------------------------------------------


# A replica's state read with Core, not session.get: a consumer applies a batch of events in one
# session, and an object the identity map still holds would not show a later upsert's values.
_REPLICA_STATE = select(
    CustomerReplica.as_of, CustomerReplica.do_not_call, CustomerReplica.time_zone, CustomerReplica.phone
).where(CustomerReplica.customer_id == bindparam("customer_id"))


def customer_time_zone(session: Session, customer_id: str) -> str:
    """The customer's zone: the directory's, else the primary number's, else CALLROUTING_DEFAULT_TZ."""
    state = session.execute(_REPLICA_STATE, {"customer_id": customer_id}).first()
    return _zone_of(state)


def _zone_of(state) -> str:
    if state is not None:
        if state.time_zone and domain.is_time_zone(state.time_zone):
            return state.time_zone
        if state.phone:
            from_number = time_zone_of(state.phone)
            if from_number and domain.is_time_zone(from_number):
                return from_number
    return default_time_zone()


def _remember_time_zone(session: Session, name: str) -> None:
    """Note a zone in use, in the entry's own transaction (a process-wide "already noted" would
    outlive a rolled-back insert and hide the zone's entries from every hand-out)."""
    session.execute(_note_time_zone_statement(session.bind.dialect.name), {"time_zone": name})


@functools.cache
def _note_time_zone_statement(dialect: str):
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert_for(CallTimeZone.__table__).on_conflict_do_nothing(index_elements=["time_zone"])


@dataclass
class NewEntry:
    campaign: Campaign
    customer_id: str
    due_at: datetime
    origin: str
    purchase_id: str | None = None
    followup_request_id: str | None = None


def _insert_entry(session: Session, new: NewEntry, now: datetime) -> str | None:
    """Insert an entry unless the campaign already has one for this purchase (or request): its id or None."""
    time_zone = customer_time_zone(session, new.customer_id)
    _remember_time_zone(session, time_zone)
    entry_id = new_id()
    row = {
        "entry_id": entry_id,
        "campaign_id": new.campaign.campaign_id,
        "customer_id": new.customer_id,
        "purchase_id": new.purchase_id,
        "followup_request_id": new.followup_request_id,
        "schedule_key": (
            f"followup:{new.followup_request_id}"
            if new.followup_request_id
            else f"purchase:{new.purchase_id}"
            if new.purchase_id
            else f"entry:{entry_id}"
        ),
        "origin": new.origin,
        "state": "pending",
        "due_at": new.due_at,
        "time_zone": time_zone,
        "shuffle_key": _RNG.random(),
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }
    statement = (
        _dialect_insert(session)(CallEntry.__table__)
        .values(**row)
        .on_conflict_do_nothing()
        .returning(CallEntry.__table__.c.entry_id)
    )
    return session.execute(statement).scalar_one_or_none()


def schedule_purchase_followups(uow: UnitOfWork, purchase: dict, now: datetime | None = None) -> list[str]:
    """``purchase.recorded``: one entry per active post-purchase campaign, due purchased_at + its delay.

    Skipped when the customer is on the do-not-call list or was spoken to within the campaign's
    contact-frequency days; never twice for one purchase (unique campaign + purchase). A customer
    the replica does not know yet is scheduled all the same, in CALLROUTING_DEFAULT_TZ until its
    customer.created arrives and corrects the zone; the do-not-call list is checked again when
    the entry is handed out.
    """
    now = now or utcnow()
    session = uow.session
    customer_id = resolve_customer_id(session, CustomerReplica, str(purchase["customer_id"]))
    purchased_at = _aware(purchase["purchased_at"])
    if is_do_not_call(session, customer_id):
        return []
    contacted = last_contact_at(session, customer_id)
    created = []
    campaigns = session.scalars(
        select(Campaign).where(Campaign.purpose == "post_purchase", Campaign.active.is_(True))
    ).all()
    for campaign in campaigns:
        if not domain.contact_allowed(contacted, now, campaign.contact_frequency_days):
            continue
        entry_id = _insert_entry(
            session,
            NewEntry(
                campaign,
                customer_id,
                purchased_at + timedelta(days=campaign.delay_days),
                "purchase",
                purchase_id=str(purchase["purchase_id"]),
            ),
            now,
        )
        if entry_id:
            created.append(entry_id)
    return created


def schedule_followup(uow: UnitOfWork, request: dict, now: datetime | None = None) -> str | None:
    """``followup.requested``: an entry on the active campaign of that purpose, once per request.

    The customer expects this call, so the contact-frequency rule does not apply; the
    do-not-call list does. With no active campaign of that purpose a default one is created.
    """
    now = now or utcnow()
    session = uow.session
    customer_id = resolve_customer_id(session, CustomerReplica, str(request["customer_id"]))
    if is_do_not_call(session, customer_id):
        return None
    purpose = request["purpose"]
    campaign = _active_campaign_of(session, purpose)
    if campaign is None:
        campaign = Campaign(
            campaign_id=new_id(),
            name="Re-survey after service recovery" if purpose == "resurvey" else "Callbacks",
            purpose=purpose,
            delay_days=0,
            script="",
            talking_point="",
            retry_policy=domain.complete_retry_policy(None),
            calling_window=dict(domain.DEFAULT_CALLING_WINDOW),
            contact_frequency_days=0,
            active=True,
        )
        session.add(campaign)
        session.flush()
    purchase_id = request.get("purchase_id")
    return _insert_entry(
        session,
        NewEntry(
            campaign,
            customer_id,
            _aware(request["due_at"]),
            "followup",
            purchase_id=str(purchase_id) if purchase_id else None,
            followup_request_id=str(request["request_id"]),
        ),
        now,
    )


def _aware(value) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _addable_customer(session: Session, campaign: Campaign, customer_id: str, now: datetime) -> tuple[str, str | None]:
    """The customer id to schedule (after merges) and why it cannot be, if it cannot."""
    replica = session.get(CustomerReplica, customer_id)
    if replica is None:
        return customer_id, "No such customer is known to call routing."
    customer_id = resolve_customer_id(session, CustomerReplica, customer_id)
    if is_do_not_call(session, customer_id):
        return customer_id, "The customer is on the do-not-call list."
    if campaign.purpose == "post_purchase" and not domain.contact_allowed(
        last_contact_at(session, customer_id), now, campaign.contact_frequency_days
    ):
        return customer_id, f"The customer was spoken to within the last {campaign.contact_frequency_days} days."
    return customer_id, None


def add_entry(
    uow: UnitOfWork,
    campaign_id: str,
    customer_id: str,
    purchase_id: str | None = None,
    due_at: datetime | None = None,
    now: datetime | None = None,
) -> CallEntry:
    now = now or utcnow()
    campaign = get_campaign(uow, campaign_id)
    customer_id, problem = _addable_customer(uow.session, campaign, customer_id, now)
    if problem:
        raise Invalid({"customer_id": problem})
    entry_id = _insert_entry(uow.session, NewEntry(campaign, customer_id, due_at or now, "api", purchase_id), now)
    if entry_id is None:
        raise Conflict(f"Campaign {campaign_id} already has an entry for purchase {purchase_id}.")
    uow.commit()
    return uow.session.get(CallEntry, entry_id)


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)


def import_entries_csv(uow: UnitOfWork, campaign_id: str, text: str, now: datetime | None = None) -> ImportResult:
    """A CSV of ``customer_id[,purchase_id][,due_at]`` (a header row first): good rows kept, bad rows listed.

    Line numbers are the file's, the header being line 1. All good rows commit together.
    """
    now = now or utcnow()
    campaign = get_campaign(uow, campaign_id)
    session = uow.session
    result = ImportResult()
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))  # a spreadsheet's byte-order mark
    header = [name.strip() for name in (reader.fieldnames or [])]
    if "customer_id" not in header or set(header) - set(domain.CSV_COLUMNS):
        raise Invalid(
            {
                "file": "The first line must name the columns: customer_id, and optionally purchase_id, due_at; "
                f"got {header}."
            }
        )
    reader.fieldnames = header
    for row in reader:
        line = reader.line_num
        if None in row:
            result.errors.append({"line": line, "reason": "More values than columns."})
            continue
        values = {key: (value or "").strip() for key, value in row.items()}
        reason = _csv_row_problem(values)
        if reason is None:
            try:
                due_at = domain.parse_due_at(values.get("due_at", ""), now)
            except ValueError as error:
                reason = f"due_at: {error}"
        if reason is None:
            customer_id, reason = _addable_customer(session, campaign, values["customer_id"], now)
        if reason is None:
            purchase_id = values.get("purchase_id") or None
            entry_id = _insert_entry(session, NewEntry(campaign, customer_id, due_at, "csv", purchase_id), now)
            if entry_id is None:
                reason = f"The campaign already has an entry for purchase {purchase_id}."
            else:
                result.created.append(entry_id)
        if reason is not None:
            result.errors.append({"line": line, "reason": reason})
    uow.commit()
    return result


def _csv_row_problem(values: dict) -> str | None:
    if not values.get("customer_id"):
        return "customer_id is empty."
    for name in ("customer_id", "purchase_id"):
        if values.get(name):
            try:
                uuid.UUID(values[name])
            except ValueError:
                return f"{name} is not a UUID."
    return None


def list_entries(
    uow: UnitOfWork,
    campaign_id: str,
    *,
    state: str | None = None,
    customer_id: str | None = None,
    due_before: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[CallEntry], int]:
    get_campaign(uow, campaign_id)
    conditions = [CallEntry.campaign_id == campaign_id]
    if state:
        conditions.append(CallEntry.state == state)
    if customer_id:
        conditions.append(CallEntry.customer_id == customer_id)
    if due_before:
        conditions.append(CallEntry.due_at < due_before)
    total = uow.session.scalar(select(func.count()).select_from(CallEntry).where(*conditions))
    entries = uow.session.scalars(
        select(CallEntry).where(*conditions).order_by(CallEntry.due_at, CallEntry.entry_id).limit(limit).offset(offset)
    ).all()
    return list(entries), total


def get_entry(uow: UnitOfWork, entry_id: str) -> tuple[CallEntry, list[CallAttempt]]:
    entry = uow.session.get(CallEntry, entry_id)
    if entry is None:
        raise NotFound(f"No call-list entry {entry_id}.")
    history = uow.session.scalars(
        select(CallAttempt).where(CallAttempt.entry_id == entry_id).order_by(CallAttempt.attempt)
    ).all()
    return entry, list(history)


# --- the hand-out --------------------------------------------------------------------------------


@dataclass
class HandOut:
    """Rows of the entry, its campaign and its customer (read-only, as handed out)."""

    entry: Any
    campaign: Any
    customer: Any
    attempt: int
    renewed: bool  # the agent already held this lease


class _ShortCache:
    """Values this process may reuse for a second: the pool's size (it only sets the slice width,
    see domain.pick_uniformly), the active campaigns and zones. A campaign
    paused in another process therefore stops handing out within a second."""

    def __init__(self, seconds: float = 1.0):
        self.seconds = seconds
        self.values: dict[tuple, tuple[float, Any]] = {}

    def get(self, key: tuple) -> Any:
        held = self.values.get(key)
        return held[1] if held and held[0] > time.monotonic() else None

    def put(self, key: tuple, value: Any) -> None:
        if len(self.values) > 10_000:
            self.values.clear()
        self.values[key] = (time.monotonic() + self.seconds, value)

    def clear(self) -> None:
        self.values.clear()


_POOL_SIZES = _ShortCache()
_RECENT = _ShortCache()  # campaigns and zones


def _forget_recent() -> None:
    """This process changed campaigns or agents: read them afresh."""
    _RECENT.clear()


# The hand-out runs for every agent all day long, so it speaks SQLAlchemy Core to the tables
# (the ORM's per-statement bookkeeping costs more than these small indexed statements).
_ENTRIES = CallEntry.__table__
_AGENTS = Agent.__table__
_CAMPAIGNS = Campaign.__table__
_REPLICAS = CustomerReplica.__table__
_REPLICA_PHONES = CustomerReplicaPhone.__table__
_DO_NOT_CALL = DoNotCall.__table__


def _callable_campaigns(reader: Connection, url: str, skills: tuple[str, ...], now: datetime) -> dict[str, tuple]:
    """{campaign id: (its row, zones callable now)} for every active campaign these skills may work."""
    key = ("campaigns", url)
    known = _RECENT.get(key)
    if known is None:
        zones = reader.execute(select(CallTimeZone.__table__.c.time_zone)).scalars().all()
        active = reader.execute(select(_CAMPAIGNS).where(_CAMPAIGNS.c.active.is_(True))).all()
        known = (zones, active)
        _RECENT.put(key, known)
    zones, active = known
    found = {}
    for campaign in active:
        if campaign.required_skill and campaign.required_skill not in skills:
            continue
        callable_now = domain.callable_time_zones(campaign.calling_window, zones, now)
        if callable_now:
            found[campaign.campaign_id] = (campaign, tuple(callable_now))
    return found


def sweep_lapsed_leases_job(database, _settings) -> None:
    """The worker's periodic job: lapsed leases back to the pool even when nobody asks for a call,
    so that lists and reports do not show them as leased. (The hand-out sweeps them too.)"""
    with UnitOfWork(database, source="callrouting") as uow:
        while _sweep_expired_leases(uow.session, utcnow()):
            pass
        uow.commit()


def _sweep_expired_leases(session: Session, now: datetime) -> int:
    """Entries whose agent let the lease lapse go back to the pool (no attempt is counted)."""
    expired = (
        select(_ENTRIES.c.entry_id)
        .where(_ENTRIES.c.state == "leased", _ENTRIES.c.lease_expires_at <= now)
        .limit(100)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return session.execute(
        update(_ENTRIES)
        .where(_ENTRIES.c.entry_id.in_(expired))
        .values(state="pending", leased_by=None, leased_at=None, lease_expires_at=None, updated_at=now)
    ).rowcount


def next_call(
    uow: UnitOfWork, agent_id: str, now: datetime | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> HandOut | None:
    """Lease one due, callable entry to the agent, chosen uniformly at random; None when none is.

    An agent who already holds an unexpired lease gets that entry again (asking twice, say after
    a reload, must not take a second customer out of the pool). Lapsed leases go back to the
    pool first.

    The pick reads a snapshot (a deferred read transaction: on SQLite it neither takes nor waits
    for the write lock), and the lease is one conditional UPDATE in the unit of work's short write
    transaction: ``WHERE entry_id = (the pick, if still pending)``, whose sub-select on PostgreSQL
    is ``FOR UPDATE SKIP LOCKED``. If another agent took that entry meanwhile, nothing is updated
    and the draw is repeated on a fresh snapshot, so no entry ever goes to two agents and each
    hand-out is uniform over the entries still free. (On SQLite the write transaction is BEGIN
    IMMEDIATE: one writer at a time, holding the lock for two short statements.) A customer found
    on the do-not-call list at this point has the entry cancelled, and the draw is repeated.
    """
    now = now or utcnow()
    session = uow.session
    picked = None
    for _ in range(50):
        # A bare Core connection, not a Session: the snapshot's few statements need no ORM, and
        # the Session's per-statement bookkeeping costs more than running them.
        with uow.database.reader.connect() as reader:
            if picked is None:  # the first snapshot: what the agent holds, lapsed leases
                agent = reader.execute(_AGENT_HELD_AND_LAPSED, {"agent": agent_id, "now": now}).first()
                if agent is None:
                    raise NotFound(f"No agent {agent_id}.")
                skills, held_id, lapsed = tuple(agent.skills or ()), agent.held_id, agent.lapsed
                campaigns = _callable_campaigns(reader, uow.database.url, skills, now)
                if held_id is not None:
                    held = reader.execute(select(_ENTRIES).where(_ENTRIES.c.entry_id == held_id)).one()
                    # On PostgreSQL each statement reads a fresh snapshot: the lease may have been
                    # released (None) since the query above. Then it is not held; draw as usual.
                    if held.lease_expires_at is not None and held.lease_expires_at > now:
                        customer = reader.execute(
                            select(_REPLICAS).where(_REPLICAS.c.customer_id == held.customer_id)
                        ).first()
                        return _hand_out(reader, held, customer, campaigns, renewed=True)
                if lapsed:
                    with UnitOfWork(uow.database, uow.source) as sweep:
                        _sweep_expired_leases(sweep.session, now)
                        sweep.commit()
                    continue  # a fresh snapshot that sees them back in the pool
                if not campaigns:
                    return None
                parts = tuple((campaign_id, zones) for campaign_id, (_, zones) in sorted(campaigns.items()))
                statements = _pick_statements(parts)
                cache_key = (uow.database.url, parts)
            picked = _pick(reader, statements, cache_key, now)
        if picked is None:
            return None
        lease = {"picked": picked, "agent": agent_id, "now": now, "until": now + timedelta(seconds=lease_seconds)}
        # The lease and the re-check are Core statements on the write transaction's connection
        # (the same transaction as the Session's, without its per-statement work).
        entry = session.connection().execute(_LEASE, lease).first()
        if entry is None:
            continue  # another agent took it since the snapshot: draw again
        customer, do_not_call = _customer_and_consent(session.connection(), entry.customer_id)
        if do_not_call:
            session.execute(
                update(_ENTRIES)
                .where(_ENTRIES.c.entry_id == entry.entry_id)
                .values(state="cancelled", leased_by=None, leased_at=None, lease_expires_at=None, closed_at=now)
            )
            uow.commit()
            continue
        uow.commit()
        return _hand_out(session, entry, customer, campaigns, renewed=False)
    return None


def _customer_and_consent(session: Session | Connection, customer_id: str):
    """The replicated customer (or None) and whether they are on the do-not-call list, in one read."""
    row = session.execute(_CUSTOMER_AND_CONSENT, {"customer": customer_id}).first()
    if row is None:  # not replicated (yet): only the list can say
        return None, bool(session.execute(_CONSENT_ONLY, {"customer": customer_id}).scalar())
    return row, bool(row.do_not_call or row.listed)


# The hand-out's fixed statements, built once (building a statement costs more than running it).
# The first snapshot's reads in one statement (each statement costs ~100 µs of Python): the
# agent's skills (no row: an unknown agent), the entry they hold, whether any lease lapsed.
# Only a leased entry has a holder (every way out of "leased" clears it): the partial index.
_AGENT_HELD_AND_LAPSED = select(
    _AGENTS.c.skills,
    select(_ENTRIES.c.entry_id)
    .where(_ENTRIES.c.leased_by == bindparam("agent"))
    .limit(1)
    .scalar_subquery()
    .label("held_id"),
    exists().where(_ENTRIES.c.state == "leased", _ENTRIES.c.lease_expires_at <= bindparam("now")).label("lapsed"),
).where(_AGENTS.c.agent_id == bindparam("agent"))
_LEASE = (
    update(_ENTRIES)
    .where(
        _ENTRIES.c.entry_id
        == select(_ENTRIES.c.entry_id)
        .where(_ENTRIES.c.entry_id == bindparam("picked"), _ENTRIES.c.state == "pending")
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    .values(
        state="leased",
        leased_by=bindparam("agent"),
        leased_at=bindparam("now"),
        lease_expires_at=bindparam("until"),
        updated_at=bindparam("now"),
    )
    .returning(*_ENTRIES.c)
)
_LISTED = exists().where(
    or_(
        _DO_NOT_CALL.c.customer_id == bindparam("customer"),
        _DO_NOT_CALL.c.phone.in_(
            select(_REPLICA_PHONES.c.phone).where(_REPLICA_PHONES.c.customer_id == bindparam("customer"))
        ),
    )
)
_CUSTOMER_AND_CONSENT = select(*_REPLICAS.c, _LISTED.label("listed")).where(
    _REPLICAS.c.customer_id == bindparam("customer")
)
_CONSENT_ONLY = select(_LISTED)


@dataclass(frozen=True)
class _PickStatements:
    """The pick's queries for one set of (campaign, callable zones), built once per process."""

    count: Any
    slice: Any
    slices: Any
    nth: Any


_SLICE_PARTS = 2 * domain.SLICES_PER_READ  # each slice may wrap past 1 into two ranges


@functools.lru_cache(maxsize=256)
def _pick_statements(parts: tuple[tuple[str, tuple[str, ...]], ...]) -> _PickStatements:
    eligible = and_(
        _ENTRIES.c.state == "pending",
        _ENTRIES.c.due_at <= bindparam("now"),
        or_(
            *(
                # One bound value per zone: a plain in_(zones) is an "expanding" parameter, whose
                # SQL SQLAlchemy renders again at every execution (~50 µs a pick); the SQL is the same.
                and_(_ENTRIES.c.campaign_id == campaign_id, _ENTRIES.c.time_zone.in_([literal(z) for z in zones]))
                for campaign_id, zones in parts
            )
        ),
    )
    key = _ENTRIES.c.shuffle_key
    return _PickStatements(
        count=select(func.count()).select_from(_ENTRIES).where(eligible),
        slice=select(_ENTRIES.c.entry_id)
        .where(eligible, key >= bindparam("low"), key < bindparam("high"))
        .limit(bindparam("limit", type_=Integer)),
        slices=select(_ENTRIES.c.entry_id, key)
        .where(
            eligible,
            or_(*(and_(key >= bindparam(f"low{n}"), key < bindparam(f"high{n}")) for n in range(_SLICE_PARTS))),
        )
        .limit(bindparam("limit", type_=Integer)),
        nth=select(_ENTRIES.c.entry_id)
        .where(eligible)
        .order_by(key)
        .offset(bindparam("offset", type_=Integer))
        .limit(1),
    )


def _pick(reader: Connection, statements: _PickStatements, cache_key: tuple, now: datetime) -> str | None:
    """A uniformly random eligible entry id (domain.pick_uniformly), read from one snapshot."""

    def count() -> int:
        size = reader.execute(statements.count, {"now": now}).scalar()
        _POOL_SIZES.put(cache_key, size)
        return size

    def one_slice(low: float, high: float, limit: int) -> list[str]:
        ids: list[str] = []
        for start, end in domain.key_ranges(low, high):
            parameters = {"now": now, "low": start, "high": end, "limit": limit - len(ids)}
            ids += reader.execute(statements.slice, parameters).scalars().all()
            if len(ids) >= limit:
                break
        return ids

    def fetch_slices(slices: list[tuple[float, float]], limit: int) -> list[list[str]]:
        if len(slices) == 1:
            return [one_slice(*slices[0], limit)]
        ranges = [part for low, high in slices for part in domain.key_ranges(low, high)]
        parameters = {"now": now, "limit": limit * len(slices)}
        for n in range(_SLICE_PARTS):
            low, high = ranges[n] if n < len(ranges) else (0.0, 0.0)  # an empty range
            parameters[f"low{n}"], parameters[f"high{n}"] = low, high
        rows = reader.execute(statements.slices, parameters).all()
        if len(rows) >= limit * len(slices):  # maybe cut short: read them one by one
            return [one_slice(low, high, limit) for low, high in slices]
        rows.sort(key=lambda row: row[1])
        keys = [row[1] for row in rows]
        found = []
        for low, high in slices:
            ids = []
            for start, end in domain.key_ranges(low, high):
                ids += [row[0] for row in rows[bisect.bisect_left(keys, start) : bisect.bisect_left(keys, end)]]
            found.append(ids[:limit])
        return found

    def draw_exactly(rng) -> str | None:
        size = count()
        if not size:
            return None
        return reader.execute(statements.nth, {"now": now, "offset": rng.randrange(size)}).scalar()

    estimate = _POOL_SIZES.get(cache_key)
    if estimate is None:
        estimate = count()
    if estimate == 0:
        return None
    return domain.pick_uniformly(estimate, fetch_slices, draw_exactly, _RNG)


def _hand_out(session: Session | Connection, entry, customer, campaigns: dict, *, renewed: bool) -> HandOut:
    if entry.campaign_id in campaigns:
        campaign = campaigns[entry.campaign_id][0]
    else:  # a lease held on a campaign paused since, or outside its window now
        campaign = session.execute(select(_CAMPAIGNS).where(_CAMPAIGNS.c.campaign_id == entry.campaign_id)).first()
    return HandOut(entry=entry, campaign=campaign, customer=customer, attempt=entry.attempts + 1, renewed=renewed)


# --- outcomes --------------------------------------------------------------------------------------


def record_outcome(
    uow: UnitOfWork,
    entry_id: str,
    *,
    agent_id: str,
    outcome: str,
    offer_accepted: bool | None = None,
    notes: str | None = None,
    callback_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[CallEntry, CallAttempt]:
    """The agent's outcome of the call; the campaign's retry policy decides what comes next.

    The agent must hold the entry's lease. A lease past its expiry still counts while nobody
    else has taken the entry: the call was made, and its outcome is worth keeping.
    """
    now = now or utcnow()
    session = uow.session
    if outcome == "callback_requested":
        if callback_at is None:
            raise Invalid({"callback_at": "A callback needs the time the customer asked for."})
        if callback_at <= now:
            raise Invalid({"callback_at": "The callback time is in the past."})
    query = select(CallEntry).where(CallEntry.entry_id == entry_id)
    if is_postgresql(session.bind):
        query = query.with_for_update()
    entry = session.scalars(query).first()
    if entry is None:
        raise NotFound(f"No call-list entry {entry_id}.")
    if entry.state in domain.FINAL_STATES:
        raise Conflict(f"The entry is already {entry.state}.")
    if entry.state != "leased" or entry.leased_by != agent_id:
        raise Conflict(f"Agent {agent_id} does not hold this entry; ask for the next call first.")
    campaign = session.get(Campaign, entry.campaign_id)
    same_before = session.scalar(
        select(func.count())
        .select_from(CallAttempt)
        .where(CallAttempt.entry_id == entry_id, CallAttempt.outcome == outcome)
    )
    step = domain.after_outcome(campaign.retry_policy, outcome, same_before + 1, now, callback_at)
    attempt = CallAttempt(
        attempt_id=new_id(),
        entry_id=entry.entry_id,
        campaign_id=entry.campaign_id,
        customer_id=entry.customer_id,
        agent_id=agent_id,
        attempt=entry.attempts + 1,
        outcome=outcome,
        offer_accepted=offer_accepted,
        notes=notes,
        callback_at=callback_at,
        started_at=entry.leased_at,
        ended_at=now,
    )
    session.add(attempt)
    entry.attempts += 1
    entry.last_outcome = outcome
    if offer_accepted is not None:
        entry.offer_accepted = offer_accepted
    entry.state = step.state
    entry.leased_by = entry.leased_at = entry.lease_expires_at = None
    entry.updated_at = now
    if step.state == "pending":
        entry.due_at = step.due_at
    else:
        entry.closed_at = now
    if outcome in domain.CONVERSATION_OUTCOMES:
        _record_contact(session, f"call:{attempt.attempt_id}", entry.customer_id, "call", now)
    if step.do_not_call:
        _put_on_do_not_call(session, entry.customer_id, "outcome")
        session.flush()
        _cancel_pending_entries_of(session, entry.customer_id, now)
    uow.publish(
        "callentry.completed",
        {
            "entry_id": entry.entry_id,
            "campaign_id": entry.campaign_id,
            "campaign_purpose": campaign.purpose,
            "customer_id": entry.customer_id,
            "purchase_id": entry.purchase_id,
            "agent_id": agent_id,
            "attempt": attempt.attempt,
            "outcome": outcome,
            "offer_accepted": offer_accepted,
            "entry_state": entry.state,
            "started_at": isoformat_utc(attempt.started_at) if attempt.started_at else None,
            "ended_at": isoformat_utc(now),
        },
    )
    uow.commit()
    return entry, attempt


# --- the campaign report ----------------------------------------------------------------------------


def campaign_report(uow: UnitOfWork, campaign_id: str, first: date, last: date) -> dict:
    """Per UTC day from ``first`` to ``last`` (inclusive) and in total.

    due: entries due that day; attempted: entries with at least one attempt that day; reached:
    entries reached that day; reached_rate = reached / attempted; attempts_per_reach = attempts
    / reached; offers_accepted: attempts where the offer was accepted; do_not_call: attempts
    with that outcome.
    """
    campaign = get_campaign(uow, campaign_id)
    session = uow.session
    start = datetime.combine(first, datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    days: dict[date, dict] = {first + timedelta(days=n): _empty_day() for n in range((last - first).days + 1)}
    for (due_at,) in session.execute(
        select(CallEntry.due_at).where(
            CallEntry.campaign_id == campaign_id, CallEntry.due_at >= start, CallEntry.due_at < end
        )
    ):
        days[due_at.date()]["due"] += 1
    attempted: dict[date, set] = defaultdict(set)
    reached: dict[date, set] = defaultdict(set)
    for entry_id, ended_at, outcome, offer in session.execute(
        select(CallAttempt.entry_id, CallAttempt.ended_at, CallAttempt.outcome, CallAttempt.offer_accepted).where(
            CallAttempt.campaign_id == campaign_id, CallAttempt.ended_at >= start, CallAttempt.ended_at < end
        )
    ):
        day = ended_at.date()
        figures = days[day]
        figures["attempts"] += 1
        attempted[day].add(entry_id)
        if outcome == "reached":
            reached[day].add(entry_id)
        if offer:
            figures["offers_accepted"] += 1
        if outcome == "do_not_call":
            figures["do_not_call"] += 1
    totals = _empty_day()
    all_attempted, all_reached = set(), set()
    for day, figures in days.items():
        figures["attempted"], figures["reached"] = len(attempted[day]), len(reached[day])
        all_attempted |= attempted[day]
        all_reached |= reached[day]
        for name in ("due", "attempts", "offers_accepted", "do_not_call"):
            totals[name] += figures[name]
        _add_rates(figures)
    totals["attempted"], totals["reached"] = len(all_attempted), len(all_reached)
    _add_rates(totals)
    return {
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "totals": totals,
        "days": [{"date": day.isoformat(), **figures} for day, figures in days.items()],
    }


def _empty_day() -> dict:
    return Counter(due=0, attempted=0, attempts=0, reached=0, offers_accepted=0, do_not_call=0)


def _add_rates(figures: dict) -> None:
    figures["reached_rate"] = round(figures["reached"] / figures["attempted"], 4) if figures["attempted"] else None
    figures["attempts_per_reach"] = round(figures["attempts"] / figures["reached"], 4) if figures["reached"] else None


# --- what other services tell us ---------------------------------------------------------------------


def record_survey_contact(uow: UnitOfWork, survey: dict) -> None:
    """``survey.completed``: the customer was surveyed, which counts for the contact-frequency rule."""
    customer_id = resolve_customer_id(uow.session, CustomerReplica, str(survey["customer_id"]))
    _record_contact(
        uow.session, f"survey:{survey['response_id']}", customer_id, "survey", _aware(survey["completed_at"])
    )


def sync_customer(uow: UnitOfWork, customer_id: str, as_of: str) -> None:
    """After the replica took a customer.created/updated: its consent onto the do-not-call list,
    and its time zone onto the entries still to call (an entry scheduled before the customer
    was known was put in the default zone)."""
    session = uow.session
    session.flush()  # what earlier events of the batch left pending lands before the Core statements below
    connection = session.connection()  # Core statements on the session's own transaction: cheaper per call
    state = connection.execute(_REPLICA_STATE, {"customer_id": customer_id}).first()
    if state is None or state.as_of != as_of:
        return  # the replica kept a newer state; that event did (or will do) this
    if state.do_not_call:
        _put_on_do_not_call(session, customer_id, "consent")
    else:
        connection.execute(_FORGET_CONSENT, {"customer_id": customer_id})
    time_zone = _zone_of(state)
    _remember_time_zone(session, time_zone)
    connection.execute(_RETIME_OPEN_ENTRIES, {"the_customer": customer_id, "the_zone": time_zone})


# Built once: sync_customer runs for every customer.created/updated the consumer applies.
# (synchronize_session=False: nothing these touch is held in the session; the ORM's
# evaluation of the WHERE clause against loaded objects cost more than the statement.)
_FORGET_CONSENT = (
    delete(DoNotCall)
    .where(DoNotCall.customer_id == bindparam("customer_id"), DoNotCall.source == "consent")
    .execution_options(synchronize_session=False)
)
_RETIME_OPEN_ENTRIES = (
    update(CallEntry)
    .where(
        CallEntry.customer_id == bindparam("the_customer"),
        CallEntry.state.in_(("pending", "leased")),
        CallEntry.time_zone != bindparam("the_zone"),
    )
    .values(time_zone=bindparam("the_zone"))
    .execution_options(synchronize_session=False)
)


def move_merged_customer(uow: UnitOfWork, merged_id: str, into_id: str) -> None:
    """``customer.merged``: the duplicate's open entries, contacts and own do-not-call marks move
    to the survivor (whose consent arrives with its customer.updated)."""
    session = uow.session
    session.execute(
        update(CallEntry)
        .where(CallEntry.customer_id == merged_id, CallEntry.state.in_(("pending", "leased")))
        .values(customer_id=into_id)
    )
    session.execute(update(CustomerContact).where(CustomerContact.customer_id == merged_id).values(customer_id=into_id))
    session.execute(
        update(DoNotCall)
        .where(DoNotCall.customer_id == merged_id, DoNotCall.source.in_(("outcome", "manual")))
        .values(customer_id=into_id)
    )
    session.execute(delete(DoNotCall).where(DoNotCall.customer_id == merged_id, DoNotCall.source == "consent"))


# --- a customer's contacts (the gateway's customer view) -------------------------------------

CONTACTS_LIMIT = 20  # items per list; the totals count them all
OPEN_ENTRY_STATES = ("pending", "leased")

_calls, _attempts, _entries, _campaigns = (
    Call.__table__.c,
    CallAttempt.__table__.c,
    CallEntry.__table__.c,
    Campaign.__table__.c,
)
# Each reads the customer's entries of an index (ix_calls_customer_received,
# ix_call_attempts_customer_ended, call_entries.customer_id), newest first.
_INBOUND = (
    select(
        _calls.call_id,
        _calls.from_number,
        _calls.queue,
        _calls.state,
        _calls.result,
        _calls.agent_id,
        _calls.reason,
        _calls.notes,
        _calls.ticket_id,
        _calls.received_at,
        _calls.answered_at,
        _calls.ended_at,
        _calls.wait_seconds,
        _calls.talk_seconds,
    )
    .where(_calls.customer_id == bindparam("customer_id"))
    .order_by(_calls.received_at.desc(), _calls.call_id.desc())
    .limit(bindparam("limit"))
)
_INBOUND_TOTAL = select(func.count()).where(_calls.customer_id == bindparam("customer_id"))
_OUTBOUND = (
    select(
        _attempts.attempt_id,
        _attempts.entry_id,
        _attempts.campaign_id,
        _campaigns.name.label("campaign"),
        _campaigns.purpose,
        _attempts.agent_id,
        _attempts.attempt,
        _attempts.outcome,
        _attempts.offer_accepted,
        _attempts.notes,
        _attempts.callback_at,
        _attempts.started_at,
        _attempts.ended_at,
    )
    .join_from(CallAttempt, Campaign, _campaigns.campaign_id == _attempts.campaign_id, isouter=True)
    .where(_attempts.customer_id == bindparam("customer_id"))
    .order_by(_attempts.ended_at.desc(), _attempts.attempt_id.desc())
    .limit(bindparam("limit"))
)
_OUTBOUND_TOTAL = select(func.count()).where(_attempts.customer_id == bindparam("customer_id"))
_PENDING = (
    select(
        _entries.entry_id,
        _entries.campaign_id,
        _campaigns.name.label("campaign"),
        _campaigns.purpose,
        _campaigns.talking_point,
        _entries.state,
        _entries.due_at,
        _entries.attempts,
        _entries.last_outcome,
        _entries.leased_by,
        _entries.purchase_id,
        _entries.origin,
    )
    .join_from(CallEntry, Campaign, _campaigns.campaign_id == _entries.campaign_id)
    .where(_entries.customer_id == bindparam("customer_id"), _entries.state.in_(OPEN_ENTRY_STATES))
    .order_by(_entries.due_at, _entries.entry_id)
    .limit(bindparam("limit"))
)
_PENDING_TOTAL = select(func.count()).where(
    _entries.customer_id == bindparam("customer_id"), _entries.state.in_(OPEN_ENTRY_STATES)
)


def _json_row(row) -> dict:
    return {
        name: isoformat_utc(value) if isinstance(value, datetime) else value for name, value in row._mapping.items()
    }


def _listed(connection: Connection, query, total_query, params: dict) -> dict:
    """At most ``limit`` rows and the total, counted only when the page does not already tell."""
    items = [_json_row(row) for row in connection.execute(query, params)]
    total = len(items) if len(items) < params["limit"] else connection.execute(total_query, params).scalar_one()
    return {"items": items, "total": total}


def customer_contacts(uow: UnitOfWork, customer_id: str, limit: int = CONTACTS_LIMIT) -> dict:
    """A customer's recent inbound calls (with reasons and agents), outbound follow-up attempts
    (with outcomes and agents) and pending call-list entries, each newest first (pending: the
    next due first), at most ``limit`` of each, with totals.

    A merged-away id is followed to the survivor (this service's customer replica). An id
    nobody called is not an error: its lists are empty (calls come from numbers, and the
    customer may not have reached this service's replica yet).
    """
    survivor = resolve_customer_id(uow.session, CustomerReplica, customer_id)
    connection = uow.session.connection()
    params = {"customer_id": survivor, "limit": limit}
    return {
        "customer_id": survivor,
        "inbound": _listed(connection, _INBOUND, _INBOUND_TOTAL, params),
        "outbound": _listed(connection, _OUTBOUND, _OUTBOUND_TOTAL, params),
        "pending": _listed(connection, _PENDING, _PENDING_TOTAL, params),
    }
