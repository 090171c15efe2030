"""Use cases of the outbound call lists; each runs in the caller's unit of work and commits once.

Sections: agents (the registry both halves use), campaigns, the do-not-call list and contacts,
scheduling entries (events, the API, CSV), outcomes, what other services tell us. The hand-out
is ``handout.py`` (its rule: ``domain.next_entry_for``), the reads are ``views.py``. Errors
are ``shared.errors`` only."""

from __future__ import annotations

import csv
import functools
import io
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.config import Settings, process_settings
from shared.db import get_or_not_found, is_postgresql
from shared.errors import Conflict, Invalid, NotFound
from shared.events import isoformat_utc
from shared.models import new_id, utcnow
from shared.phones import time_zone_of
from shared.replicas import resolve_customer_id
from shared.unit_of_work import UnitOfWork

from ..models import (
    Agent,
    CallAttempt,
    CallEntry,
    CallTimeZone,
    Campaign,
    CustomerContact,
    CustomerReplica,
    CustomerReplicaPhone,
    DoNotCall,
)
from . import domain
from .handout import forget_recent

DEFAULT_TIME_ZONE = "Europe/Berlin"
_RNG = random.SystemRandom()  # the hand-out's randomness: os.urandom, never a fixed seed, fork-safe


def default_time_zone(settings: Settings | None = None) -> str:
    """``CALLROUTING_DEFAULT_TZ``: the zone of a customer whose zone is unknown (not yet replicated...).

    Read through the service's :class:`Settings` (an event handler has none at hand: then the
    process's own, read once: every purchase of a customer not yet replicated comes this way)."""
    return (settings or process_settings("callrouting")).option("CALLROUTING_DEFAULT_TZ", DEFAULT_TIME_ZONE)


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
    forget_recent()
    return agent


def get_agent(uow: UnitOfWork, agent_id: str) -> Agent:
    agent = get_or_not_found(uow.session, Agent, agent_id, "agent")
    return agent


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
        survey_delivery=values.get("survey_delivery") or domain.DEFAULT_SURVEY_DELIVERY,
        active=values.get("active", True),
    )
    uow.session.add(campaign)
    uow.commit()
    forget_recent()
    return campaign


def get_campaign(uow: UnitOfWork, campaign_id: str) -> Campaign:
    campaign = get_or_not_found(uow.session, Campaign, campaign_id, "campaign")
    return campaign


def update_campaign(uow: UnitOfWork, campaign_id: str, changes: dict) -> Campaign:
    """Change a campaign's settings; ``active`` pauses (false) or resumes (true) its hand-outs."""
    campaign = get_campaign(uow, campaign_id)
    for name, value in changes.items():
        if name == "retry_policy":
            value = domain.complete_retry_policy({**campaign.retry_policy, **value})
        setattr(campaign, name, value)
    campaign.updated_at = utcnow()
    uow.commit()
    forget_recent()
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
            "survey_delivery": campaign.survey_delivery,
        },
    )
    uow.commit()
    return entry, attempt


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
