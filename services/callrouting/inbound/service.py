"""Use cases of inbound calls: routing a ringing call, applying the phone system's callbacks,
agent states, wrap-up, the live view and the daily report. Each runs in the caller's unit of
work and commits once.

Concurrency. Two calls ringing at once must never reserve the same agent: an agent is
reserved with a conditional ``UPDATE agents SET state='reserved' WHERE state='available'``,
and only the transaction whose update matched a row has the agent. On PostgreSQL each
candidate's row is first locked ``FOR UPDATE SKIP LOCKED``, so a second routing transaction
passes over an agent the first one is reserving instead of queueing behind it; on SQLite every
writing transaction holds the database's write lock (``BEGIN IMMEDIATE``), so they run one
after the other anyway.

Timers (the offer timeout, wrap-up time) have no thread of their own: ``expire_timers`` runs
as the worker's periodic job (every 5 s) and at the start of the live view, agent state changes,
wrap-ups and queue polls, so an agent does not stay reserved or in wrap-up longer than
configured (a new call's routing skips it: that path is kept short).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from shared.db import is_postgresql
from shared.errors import Conflict, Invalid, NotFound
from shared.models import utcnow
from shared.phones import to_e164_or_none
from shared.unit_of_work import UnitOfWork

from ..models import (
    Agent,
    AgentRouting,
    AgentStateChange,
    Call,
    CallCallback,
    CustomerReplica,
    CustomerReplicaPhone,
    InboundQueue,
)
from . import call_report, domain

DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class InboundConfig:
    """Settings of inbound routing (from the environment, see ``from_settings``)."""

    missed_offers_limit: int = 3  # offers missed in a row before an agent is put on break
    offer_timeout_seconds: float = 30.0  # an offer nobody reports on counts as missed after this

    @classmethod
    def from_settings(cls, settings) -> InboundConfig:
        return cls(
            missed_offers_limit=int(settings.option("INBOUND_MISSED_OFFERS_LIMIT", "3")),
            offer_timeout_seconds=float(settings.option("INBOUND_OFFER_TIMEOUT_SECONDS", "30")),
        )


@dataclass(frozen=True)
class Offer:
    agent_id: str
    endpoint_kind: str
    endpoint: str


@dataclass(frozen=True)
class Decision:
    """Where a ringing call goes: to these agents (round ``offer_round``), or to wait in a queue."""

    call: Call
    offers: tuple[Offer, ...] = ()
    position: int | None = None  # in the queue, 1 = next

    @property
    def queued(self) -> bool:
        return not self.offers

    def as_dict(self) -> dict:
        return {
            "call_id": self.call.call_id,
            "action": "queue" if self.queued else "dial",
            "queue": self.call.queue,
            "position": self.position,
            "customer_id": self.call.customer_id,
            "offers": [offer.__dict__ for offer in self.offers],
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _seconds(later: datetime, earlier: datetime) -> float:
    return max(0.0, (later - earlier).total_seconds())


# --- queues -------------------------------------------------------------------------------


def queue_rules(session: Session, name: str) -> InboundQueue:
    """The queue's settings; a queue nobody configured yet is created with the defaults."""
    queue = session.get(InboundQueue, name)
    if queue is None:
        _insert_ignoring_duplicates(session, InboundQueue, {"name": name, **_QUEUE_DEFAULTS, "created_at": utcnow()})
        queue = session.get(InboundQueue, name)
    return queue


_QUEUE_DEFAULTS = {
    "strategy": domain.DEFAULT_STRATEGY,
    "required_skills": [],
    "service_level_seconds": call_report.SERVICE_LEVEL_SECONDS,
    "short_abandon_seconds": call_report.SHORT_ABANDON_SECONDS,
    "wrap_up_seconds": 30,
    "max_wait_seconds": 600,
}


def put_queue(uow: UnitOfWork, name: str, settings: dict) -> InboundQueue:
    queue = queue_rules(uow.session, name)
    for key, value in settings.items():
        setattr(queue, key, sorted(set(value)) if key == "required_skills" else value)
    uow.session.flush()
    uow.commit()
    return queue


def _insert_ignoring_duplicates(session: Session, model, values: dict, key: tuple[str, ...] | None = None) -> bool:
    """Insert a row unless one with the same key exists; whether it was inserted."""
    table = model.__table__
    dialect_insert = postgresql.insert if is_postgresql(session.get_bind()) else sqlite.insert
    statement = dialect_insert(table).values(**values).on_conflict_do_nothing(index_elements=key)
    # RETURNING, because the driver's rowcount is not reliable for ON CONFLICT DO NOTHING.
    return session.execute(statement.returning(*table.primary_key.columns)).first() is not None


# --- agents -------------------------------------------------------------------------------


def agent_routing(session: Session, agent_id: str) -> AgentRouting:
    """The agent's routing row, created with defaults (a Twilio client named after the agent) if missing."""
    row = session.get(AgentRouting, agent_id)
    if row is None:
        _insert_ignoring_duplicates(session, AgentRouting, _routing_defaults(agent_id))
        row = session.get(AgentRouting, agent_id)
    return row


def _routing_defaults(agent_id: str) -> dict:
    return {
        "agent_id": agent_id,
        "endpoint_kind": "client",
        "endpoint": agent_id,
        "queues": [],
        "missed_offers": 0,
        "calls_today": 0,
        "talk_seconds_today": 0.0,
    }


def _agent(session: Session, agent_id: str) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"No agent {agent_id}.")
    return agent


def put_agent_routing(uow: UnitOfWork, agent_id: str, settings: dict) -> AgentRouting:
    _agent(uow.session, agent_id)
    row = agent_routing(uow.session, agent_id)
    for key, value in settings.items():
        setattr(row, key, sorted(set(value)) if key == "queues" else value)
    uow.session.flush()
    uow.commit()
    return row


def get_agent_routing(uow: UnitOfWork, agent_id: str) -> tuple[Agent, AgentRouting | None]:
    agent = _agent(uow.session, agent_id)
    return agent, uow.session.get(AgentRouting, agent_id)


def set_agent_state(
    uow: UnitOfWork, agent_id: str, new_state: str, config: InboundConfig, now: datetime | None = None
) -> Agent:
    """An agent changes their own state (available, on_break, offline); 409 if the engine holds it."""
    now = now or utcnow()
    expire_timers(uow, config, now)
    agent = _agent(uow.session, agent_id)
    uow.session.refresh(agent)
    try:
        domain.check_agent_change(agent.state, new_state)
    except domain.IllegalTransition as error:
        raise Conflict(str(error)) from None
    if agent.state != new_state:
        _move_agent(uow, agent_id, (agent.state,), new_state, now, reason="agent")
        if new_state == "available":
            row = agent_routing(uow.session, agent_id)
            row.missed_offers = 0
    uow.session.flush()
    uow.commit()
    uow.session.refresh(agent)
    return agent


_RECORD_STATE_CHANGE = insert(AgentStateChange.__table__)


def _move_agent(
    uow: UnitOfWork,
    agent_id: str,
    from_states: tuple[str, ...],
    to_state: str,
    now: datetime,
    *,
    reason: str | None = None,
    call_id: str | None = None,
) -> str | None:
    """Move an agent if (and only if) they are in one of ``from_states``; the state they left, or None.

    The condition is in the UPDATE itself, so of two transactions racing for an agent only one
    matches a row; the loser sees None and must look elsewhere.
    """
    session = uow.session
    old = session.execute(select(Agent.state).where(Agent.agent_id == agent_id)).scalar_one_or_none()
    if old not in from_states:
        return None
    moved = session.execute(
        update(Agent)
        .where(Agent.agent_id == agent_id, Agent.state == old)
        .values(state=to_state, state_changed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        return None
    agent = session.identity_map.get(identity_key(Agent, agent_id))
    if agent is not None:  # loaded earlier in this transaction: read the new state next time
        session.expire(agent)
    if to_state == "available":
        row = agent_routing(session, agent_id)
        row.idle_since, row.current_call_id, row.wrap_up_until = now, None, None
    # the state history (staffing.py reads it), in the same transaction as the change
    session.execute(
        _RECORD_STATE_CHANGE,
        {"agent_id": agent_id, "old_state": old, "new_state": to_state, "at": now, "reason": reason},
    )
    uow.publish(
        "agent.state_changed",
        {
            "agent_id": agent_id,
            "old_state": old,
            "new_state": to_state,
            "reason": reason,
            "call_id": call_id,
            "changed_at": _iso(now),
        },
    )
    return old


def _snapshot(agent: Agent, row: AgentRouting | None, today: str) -> domain.AgentSnapshot:
    current = row is not None and row.stats_day == today
    return domain.AgentSnapshot(
        agent_id=agent.agent_id,
        state=agent.state,
        skills=frozenset(agent.skills or ()),
        queues=frozenset(row.queues or ()) if row else frozenset(),
        idle_since=(row.idle_since if row else None) or agent.state_changed_at,
        calls_today=row.calls_today if current else 0,
        talk_seconds_today=row.talk_seconds_today if current else 0.0,
    )


def _offer_missed(uow: UnitOfWork, call: Call, agent_id: str, config: InboundConfig, now: datetime) -> None:
    """The agent did not take the call offered to them: back to available, or a break after N in a row."""
    if agent_id not in (call.offered_to or []):
        return
    call.offered_to = [other for other in call.offered_to if other != agent_id]
    row = agent_routing(uow.session, agent_id)
    missed = row.missed_offers + 1
    target = domain.after_missed_offer(missed, config.missed_offers_limit)
    reason = "missed_offers" if target == "on_break" else "offer_missed"
    if _move_agent(uow, agent_id, ("reserved",), target, now, reason=reason, call_id=call.call_id):
        row.missed_offers = missed
        row.current_call_id = None


def _offer_canceled(uow: UnitOfWork, call: Call, agent_id: str, now: datetime) -> None:
    """The offer ended through no fault of the agent (the caller hung up, another agent answered)."""
    if agent_id not in (call.offered_to or []):
        return
    call.offered_to = [other for other in call.offered_to if other != agent_id]
    _move_agent(uow, agent_id, ("reserved",), "available", now, reason="offer_canceled", call_id=call.call_id)


# --- routing a call -------------------------------------------------------------------------


def identify_caller(session: Session | Connection, raw_from: str | None) -> tuple[str | None, str | None]:
    """The caller's number in E.164 (when it parses) and the customer who has it (when one does)."""
    e164 = to_e164_or_none(raw_from)
    if e164 is None:
        return None, None
    # Core rows, not replica objects: this runs for every ringing call. The order is
    # shared.replicas.find_customers_by_phone's: primary holders of the number first, then by name.
    holders = session.execute(_HOLDERS_OF_NUMBER, {"phone": e164}).all()
    holders.sort(key=lambda holder: (holder.phone != e164, holder.name))
    return e164, holders[0].customer_id if holders else None


_REPLICAS = CustomerReplica.__table__
_REPLICA_PHONES = CustomerReplicaPhone.__table__
_CALLS = Call.__table__
# The hot path's fixed statements, built once (building a statement costs more than running it).
_HOLDERS_OF_NUMBER = (
    select(_REPLICAS.c.customer_id, _REPLICAS.c.phone, _REPLICAS.c.name)
    .join(_REPLICA_PHONES, _REPLICA_PHONES.c.customer_id == _REPLICAS.c.customer_id)
    .where(_REPLICA_PHONES.c.phone == bindparam("phone"), _REPLICAS.c.merged_into_id.is_(None))
)
_CALL_AND_QUEUE_KNOWN = select(
    exists().where(_CALLS.c.call_id == bindparam("call_id")),
    exists().where(InboundQueue.__table__.c.name == bindparam("queue")),
)
_WAITING = (
    select(func.count()).select_from(_CALLS).where(_CALLS.c.state == "queued", _CALLS.c.queue == bindparam("queue"))
)
_ANYONE_WAITING = select(exists().where(_CALLS.c.state == "queued", _CALLS.c.queue == bindparam("queue")))


@functools.cache
def _insert_call_if_new(dialect: str):
    """INSERT … ON CONFLICT (call_id) DO NOTHING RETURNING call_id, per dialect."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return dialect_insert(_CALLS).on_conflict_do_nothing(index_elements=["call_id"]).returning(_CALLS.c.call_id)


def start_call(
    uow: UnitOfWork,
    *,
    call_id: str,
    source: str,
    from_raw: str | None,
    to_raw: str | None,
    queue: str | None,
    at: datetime | None,
    config: InboundConfig,
    now: datetime | None = None,
    rng: random.Random | None = None,
    with_position: bool = True,
) -> Decision:
    """A call is ringing: record it, identify the caller, and offer it to an agent or queue it.

    ``with_position=False`` when the answer does not tell the caller's place in the line (Twilio's
    ``<Enqueue>``: the wait URL does): then the line is not counted, only whether anybody waits,
    because counting a long line (~0.75 ms at 20,000 waiting on SQLite) would hold the write lock.

    The phone system may send the same ringing call twice (a retried webhook): the second
    time the first decision is answered again, nothing is routed twice.

    This runs for every incoming call, and on SQLite a writing transaction holds the database's
    write lock (BEGIN IMMEDIATE) for every worker. So what only reads (is the call known, who is
    calling, does the queue exist) is read first from a snapshot, and the write transaction is
    kept to counting the line, inserting the call (Core, ``ON CONFLICT DO NOTHING``: a retried
    webhook racing this one finds its call there and is answered its decision), reserving an
    agent when nobody waits, and the outbox row.
    """
    now = now or utcnow()
    session = uow.session
    queue_name = queue or DEFAULT_QUEUE
    with uow.database.reader.connect() as reader:  # Core only: no Session bookkeeping on this path
        known, queue_exists = reader.execute(_CALL_AND_QUEUE_KNOWN, {"call_id": call_id, "queue": queue_name}).one()
        if not known:
            from_number, customer_id = identify_caller(reader, from_raw)
    if known:
        return _current_decision(uow, session.get(Call, call_id), config, now, rng)
    # No expire_timers() here: this is the hot path, and the worker applies timers every 5 s.
    started = at or now
    if not queue_exists:
        queue_rules(session, queue_name)  # a queue nobody configured yet: created with the defaults
    values = {
        "call_id": call_id,
        "source": source,
        "from_number": from_number or (from_raw or None),
        "to_number": to_raw or None,  # our own number, as the phone system sent it
        "customer_id": customer_id,
        "queue": queue_name,
        "state": "queued",
        "offered_to": [],
        "offer_round": 0,
        "enqueued_at": started,
        "received_at": now,
        "day": started.astimezone(UTC).date().isoformat(),
        "hour": started.astimezone(UTC).hour,
    }
    # The write transaction's own Core statements go straight to its connection (same transaction,
    # without the Session's per-statement work). The line is counted before this call joins it.
    connection = session.connection()
    if with_position:
        waiting = connection.execute(_WAITING, {"queue": queue_name}).scalar_one()
    else:
        waiting = 1 if connection.execute(_ANYONE_WAITING, {"queue": queue_name}).scalar() else 0
    position = waiting + 1 if with_position else None
    if connection.execute(_insert_call_if_new(connection.dialect.name), values).first() is None:
        return _current_decision(uow, session.get(Call, call_id), config, now, rng)  # a retry got here first
    if waiting:
        # Queued behind the others: the answer needs the call's fields only, not a loaded record.
        decision = Decision(Call(**values), position=position)
    else:
        call = session.get(Call, call_id)
        decision = _offer(uow, call, queue_rules(session, queue_name), now, rng)
        if decision.queued:
            decision = Decision(call, position=position)
    call = decision.call
    uow.publish(
        "call.started",
        {
            "call_id": call.call_id,
            "from_number": call.from_number,
            "to_number": call.to_number,
            "customer_id": call.customer_id,
            "queue": call.queue,
            "agent_id": decision.offers[0].agent_id if decision.offers else None,
            "started_at": _iso(call.enqueued_at),
        },
    )
    uow.commit()
    return decision


def retry_queued_call(
    uow: UnitOfWork, call_id: str, config: InboundConfig, now: datetime | None = None, rng=None
) -> Decision:
    """A waiting caller asks again (Twilio's wait URL, a repeated ``call.ringing``): an agent, or the position."""
    now = now or utcnow()
    call = uow.session.get(Call, call_id)
    if call is None:
        raise NotFound(f"No call {call_id}.")
    decision = _current_decision(uow, call, config, now, rng)
    uow.commit()
    return decision


@dataclass(frozen=True)
class QueueWait:
    """A waiting caller's poll: ``leave`` the hold music (an agent is reserved, the wait is over,
    or the call is no longer queued), else hear ``decision.position``."""

    decision: Decision
    leave: bool


def wait_in_queue(
    uow: UnitOfWork, call_id: str, queue_time: int | None, config: InboundConfig, now: datetime | None = None
) -> QueueWait:
    """Twilio's wait URL: an agent for the caller, or their position; past the queue's maximum
    wait (``QueueTime``, seconds in the queue) the caller leaves the queue."""
    decision = retry_queued_call(uow, call_id, config, now)
    rules = queue_rules(uow.session, decision.call.queue)
    timed_out = queue_time is not None and domain.waited_too_long(queue_time, rules.max_wait_seconds)
    return QueueWait(decision, leave=bool(decision.offers) or timed_out or decision.position is None)


@dataclass(frozen=True)
class QueueExit:
    """What follows a caller's leaving the queue: dial ``decision.offers``; back in line
    (``decision`` without offers); the call is over (``ended``, ``timed_out``: nobody came in
    time); or nothing (``None`` from :func:`leave_queue`: the call went on elsewhere)."""

    decision: Decision | None = None
    ended: bool = False
    timed_out: bool = False


def left_queue_at(call: Call, queue_time: int | None) -> datetime | None:
    # QueueTime is on the phone system's clock, as enqueued_at is: no skew between the two.
    if queue_time is None:
        return None
    return call.enqueued_at + timedelta(seconds=queue_time)


def leave_queue(
    uow: UnitOfWork,
    call_id: str,
    result: str | None,
    queue_time: int | None,
    payload: dict,
    config: InboundConfig,
) -> QueueExit | None:
    """``<Enqueue>``'s action (Twilio's ``QueueResult``): ``leave`` (the wait URL let the caller
    go) dials a reserved agent, puts the caller back in line, or, past the queue's maximum wait,
    ends the call as timed out; ``hangup`` is the caller's abandon; ``queue-full`` and errors end
    it as timed out; anything else (bridged, redirected) went on elsewhere."""
    call = uow.session.get(Call, call_id)
    if call is None:
        raise NotFound(f"No call {call_id}.")
    left_at = left_queue_at(call, queue_time)
    if result == "leave":
        decision = retry_queued_call(uow, call_id, config)
        if decision.offers:
            return QueueExit(decision)
        rules = queue_rules(uow.session, call.queue)
        if not domain.waited_too_long(queue_time or 0, rules.max_wait_seconds):
            return QueueExit(decision)  # back in line
        timed_out = True
    elif result in ("hangup", "queue-full", "error", "system-error"):
        timed_out = result != "hangup"
    else:
        return None
    apply_callback(
        uow,
        CallbackIn(
            call_id=call_id,
            record_call_id=call_id,
            source="twilio",
            kind=domain.CALLER_LEFT,
            at=left_at,
            timeout=timed_out,
            payload=payload,
        ),
        config,
    )
    return QueueExit(ended=True, timed_out=timed_out)


def _current_decision(uow: UnitOfWork, call: Call, config: InboundConfig, now: datetime, rng) -> Decision:
    session = uow.session
    expire_timers(uow, config, now)
    session.refresh(call)
    if call.offered_to:
        return Decision(call, offers=_offers(session, call.offered_to))
    if call.state != "queued":
        return Decision(call)
    position = queue_position(session, call)
    rules = queue_rules(session, call.queue)
    free = len(domain.eligible(_available_agents(session, now), _rules(rules)))
    if position <= free:  # an agent is free for everyone up to this caller: take one
        decision = _offer(uow, call, rules, now, rng)
        if not decision.queued:
            return decision
    return Decision(call, position=position)


def _rules(queue: InboundQueue) -> domain.QueueRules:
    return domain.QueueRules(queue.name, queue.strategy, frozenset(queue.required_skills or ()))


def _available_agents(session: Session, now: datetime) -> list[domain.AgentSnapshot]:
    statement = (
        select(Agent, AgentRouting)
        .outerjoin(AgentRouting, AgentRouting.agent_id == Agent.agent_id)
        .where(Agent.state == "available")
    )
    today = now.astimezone(UTC).date().isoformat()
    return [_snapshot(agent, row, today) for agent, row in session.execute(statement)]


def _last_agent_of(session: Session, customer_id: str | None) -> str | None:
    if customer_id is None:
        return None
    return session.execute(
        select(Call.agent_id)
        .where(Call.customer_id == customer_id, Call.answered_at.is_not(None))
        .order_by(Call.answered_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def _offer(uow: UnitOfWork, call: Call, rules: InboundQueue, now: datetime, rng) -> Decision:
    """Reserve an agent (every candidate for ring_all) for the call, or leave it queued."""
    session = uow.session
    agents = _available_agents(session, now)
    if not domain.eligible(agents, _rules(rules)):  # everybody busy: no need to look for a sticky agent
        call.state = "queued"
        return Decision(call)
    plan = domain.agent_for_ringing_call(
        agents,
        _rules(rules),
        sticky_agent_id=_last_agent_of(session, call.customer_id),
        last_agent_id=rules.last_agent_id,
        rng=rng,
    )
    reserved: list[str] = []
    for candidate in plan.candidates:
        if not _lock_if_free(session, candidate.agent_id):
            continue
        if _move_agent(
            uow, candidate.agent_id, ("available",), "reserved", now, reason="offered", call_id=call.call_id
        ):
            agent_routing(session, candidate.agent_id).current_call_id = call.call_id
            reserved.append(candidate.agent_id)
            if not plan.ring_all:
                break
    if not reserved:
        call.state = "queued"
        return Decision(call)
    call.offered_to = reserved
    call.state = "ringing"
    call.offer_round = (call.offer_round or 0) + 1
    rules.last_agent_id = reserved[0]
    session.flush()
    return Decision(call, offers=_offers(session, reserved))


def _lock_if_free(session: Session, agent_id: str) -> bool:
    """On PostgreSQL, lock the agent's row unless another routing transaction holds it (then skip
    to the next candidate rather than wait); on SQLite the write lock is already ours."""
    if not is_postgresql(session.get_bind()):
        return True
    return (
        session.execute(
            select(Agent.agent_id)
            .where(Agent.agent_id == agent_id, Agent.state == "available")
            .with_for_update(skip_locked=True)
        ).first()
        is not None
    )


def _offers(session: Session, agent_ids: list[str]) -> tuple[Offer, ...]:
    offers = []
    for agent_id in agent_ids:
        row = agent_routing(session, agent_id)
        offers.append(Offer(agent_id, row.endpoint_kind, row.endpoint))
    return tuple(offers)


def _waiting(session: Session, queue: str) -> int:
    return session.execute(
        select(func.count()).select_from(Call).where(Call.state == "queued", Call.queue == queue)
    ).scalar_one()


def queue_position(session: Session, call: Call) -> int:
    """1 + the callers in the same queue who have waited longer (on our clock)."""
    ahead = session.execute(
        select(func.count())
        .select_from(Call)
        .where(
            Call.queue == call.queue,
            Call.state == "queued",
            or_(
                Call.received_at < call.received_at,
                and_(Call.received_at == call.received_at, Call.call_id < call.call_id),
            ),
        )
    ).scalar_one()
    return ahead + 1


def reroute_after_failed_offer(
    uow: UnitOfWork, call_id: str, offer_round: int, status: str, config: InboundConfig, now=None, rng=None
) -> Decision:
    """Twilio's ``<Dial>`` ended without an answer (no-answer, busy, failed): count the miss, try again.

    Keyed on the offer round, so a retried dial action neither counts a miss twice nor
    charges it to agents offered the call in a later round.
    """
    now = now or utcnow()
    session = uow.session
    call = session.get(Call, call_id)
    if call is None:
        raise NotFound(f"No call {call_id}.")
    if offer_round == call.offer_round and call.answered_at is None and call.result is None:
        for agent_id in list(call.offered_to or []):
            _offer_missed(uow, call, agent_id, config, now)
        call.state = "queued"
        session.flush()
        decision = _current_decision(uow, call, config, now, rng)
    else:
        decision = Decision(call, offers=_offers(session, call.offered_to) if call.offered_to else ())
    uow.commit()
    return decision


# --- callbacks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackIn:
    """One status report, normalised from either webhook."""

    call_id: str  # the id the report carries (Twilio: the leg's CallSid for an agent's leg)
    record_call_id: str  # the call record it is about
    source: str
    kind: str  # domain.CALLBACK_KINDS
    at: datetime | None
    sequence: int | None = None
    agent_id: str | None = None
    talk_seconds: float | None = None
    timeout: bool = False
    explicit_abandon: bool = False  # the phone system says the caller abandoned (JSON call.abandoned)
    offer_round: int | None = None
    payload: dict | None = None


def apply_callback(uow: UnitOfWork, callback: CallbackIn, config: InboundConfig, now: datetime | None = None) -> str:
    """Store a status callback once and bring the call record up to date; ``applied``, ``duplicate`` or ``orphan``.

    Every callback is kept; the call's answer and end are recomputed from all of them
    (``domain.fold``), so a repeated one changes nothing and one that arrives late or out of
    order lands where its sequence puts it. An offer's miss or cancellation only counts for
    the offer round it names.
    """
    now = now or utcnow()
    session = uow.session
    if callback.agent_id is not None and session.get(Agent, callback.agent_id) is None:
        # Refused before anything is stored: the phone system names an agent we do not know.
        raise Invalid({"agent_id": f"No agent {callback.agent_id}."})
    call = session.get(Call, callback.record_call_id)
    row = {
        "call_id": callback.call_id,
        "sequence": callback.sequence,
        "record_call_id": call.call_id if call else None,
        "source": callback.source,
        "kind": callback.kind,
        "at": callback.at or now,
        "agent_id": callback.agent_id,
        "talk_seconds": callback.talk_seconds,
        "timeout": callback.timeout,
        "payload": callback.payload or {},
        "received_at": now,
    }
    if callback.sequence is not None:
        if not _insert_ignoring_duplicates(session, CallCallback, row, ("call_id", "sequence")):
            return "duplicate"
    else:
        session.execute(insert(CallCallback).values(**row))
    if call is None:
        uow.commit()
        return "orphan"
    if callback.sequence is not None:
        call.last_sequence = max(call.last_sequence or -1, callback.sequence)
    current_round = callback.offer_round is None or callback.offer_round == call.offer_round
    if callback.kind == domain.OFFER_MISSED and callback.agent_id and current_round:
        _offer_missed(uow, call, callback.agent_id, config, now)
    elif callback.kind == domain.OFFER_CANCELED and callback.agent_id and current_round:
        _offer_canceled(uow, call, callback.agent_id, now)
    if callback.explicit_abandon:
        for agent_id in list(call.offered_to or []):
            _offer_canceled(uow, call, agent_id, now)
    _bring_up_to_date(uow, call, config, now)
    uow.commit()
    return "applied"


def _bring_up_to_date(uow: UnitOfWork, call: Call, config: InboundConfig, now: datetime) -> None:
    session = uow.session
    session.flush()
    stored = session.execute(
        select(CallCallback).where(
            CallCallback.record_call_id == call.call_id,
            CallCallback.kind.in_((domain.CONNECTED, domain.TALK_ENDED, domain.CALLER_LEFT)),
        )
    ).scalars()
    facts = domain.fold(
        domain.Callback(c.kind, c.at, c.sequence, c.agent_id, c.talk_seconds, c.timeout) for c in stored
    )
    if facts.answered and call.answered_at is None:
        _answered(uow, call, facts, now)
    elif facts.answered and call.result is None and facts.answered_at < call.answered_at:
        call.answered_at = facts.answered_at  # a late report of an earlier answer
    if call.answered_at is not None and facts.talk_ended_at is not None and call.result is None:
        _talk_ended(uow, call, facts.talk_ended_at, config, now)
    elif not facts.answered and facts.caller_left_at is not None and call.result is None and not call.offered_to:
        # Abandoned; while an offer is still out, its leg's final report decides (it may yet say answered).
        _abandoned(uow, call, facts, now)


def _answered(uow: UnitOfWork, call: Call, facts: domain.CallFacts, now: datetime) -> None:
    call.answered_at, call.agent_id, call.state = facts.answered_at, facts.agent_id, "connected"
    for other in list(call.offered_to or []):
        if other != facts.agent_id:
            _offer_canceled(uow, call, other, now)
    call.offered_to = []
    _move_agent(uow, facts.agent_id, ("reserved", "available"), "on_call", now, reason="answered", call_id=call.call_id)
    row = agent_routing(uow.session, facts.agent_id)
    row.current_call_id, row.missed_offers = call.call_id, 0
    uow.publish(
        "call.answered",
        {
            "call_id": call.call_id,
            "customer_id": call.customer_id,
            "queue": call.queue,
            "agent_id": call.agent_id,
            "enqueued_at": _iso(call.enqueued_at),
            "answered_at": _iso(call.answered_at),
        },
    )


def _talk_ended(uow: UnitOfWork, call: Call, ended_at: datetime, config: InboundConfig, now: datetime) -> None:
    rules = queue_rules(uow.session, call.queue)
    call.ended_at = max(ended_at, call.answered_at)
    call.result = domain.ANSWERED
    call.wait_seconds = _seconds(call.answered_at, call.enqueued_at)
    call.talk_seconds = _seconds(call.ended_at, call.answered_at)
    call.state, call.wrap_up_started_at = "wrap_up", now
    row = agent_routing(uow.session, call.agent_id)
    today = now.astimezone(UTC).date().isoformat()
    if row.stats_day != today:
        row.stats_day, row.calls_today, row.talk_seconds_today = today, 0, 0.0
    row.calls_today += 1
    row.talk_seconds_today += call.talk_seconds
    if _move_agent(uow, call.agent_id, ("on_call",), "wrap_up", now, reason="call_ended", call_id=call.call_id):
        row.current_call_id = call.call_id
        row.wrap_up_until = now + timedelta(seconds=rules.wrap_up_seconds)
    if rules.wrap_up_seconds <= 0:
        _complete(uow, call, now, reason=None, notes=None, ticket_id=None, agent_reason="wrap_up_elapsed")


def _abandoned(uow: UnitOfWork, call: Call, facts: domain.CallFacts, now: datetime) -> None:
    rules = queue_rules(uow.session, call.queue)
    call.ended_at = max(facts.caller_left_at, call.enqueued_at)
    call.wait_seconds = _seconds(call.ended_at, call.enqueued_at)
    call.result = domain.unanswered_result(
        call.wait_seconds, timed_out=facts.timed_out, short_abandon_seconds=rules.short_abandon_seconds
    )
    call.state = "abandoned"
    uow.publish(
        "call.abandoned",
        {
            "call_id": call.call_id,
            "customer_id": call.customer_id,
            "queue": call.queue,
            "enqueued_at": _iso(call.enqueued_at),
            "abandoned_at": _iso(call.ended_at),
            "wait_seconds": call.wait_seconds,
            "short_abandon": call.result == domain.SHORT_ABANDON,
        },
    )


# --- wrap-up ----------------------------------------------------------------------------------


def wrap_up(
    uow: UnitOfWork,
    call_id: str,
    *,
    reason: str,
    notes: str | None,
    ticket_id: str | None,
    config: InboundConfig,
    now: datetime | None = None,
    only_agent: str | None = None,
) -> Call:
    """The agent ends the wrap-up with a reason: the agent is available again, ``call.completed`` goes out.

    ``only_agent``: the call must be this agent's (``PermissionError`` otherwise).
    """
    now = now or utcnow()
    expire_timers(uow, config, now)
    call = uow.session.get(Call, call_id)
    if call is None:
        raise NotFound(f"No call {call_id}.")
    uow.session.refresh(call)
    if only_agent is not None and call.agent_id != only_agent:
        raise PermissionError(call_id)
    if call.state != "wrap_up":
        raise Conflict(f"Call {call_id} is {call.state}; only a call in wrap-up can be wrapped up.")
    _complete(uow, call, now, reason=reason, notes=notes, ticket_id=ticket_id, agent_reason="wrap_up_done")
    uow.commit()
    return call


def _complete(uow, call: Call, at: datetime, *, reason, notes, ticket_id, agent_reason: str) -> None:
    call.reason, call.notes, call.ticket_id = reason, notes, ticket_id
    call.wrapped_up_at = at
    call.wrap_up_seconds = _seconds(at, call.wrap_up_started_at or at)
    call.state = "completed"
    _move_agent(uow, call.agent_id, ("wrap_up",), "available", at, reason=agent_reason, call_id=call.call_id)
    uow.publish(
        "call.completed",
        {
            "call_id": call.call_id,
            "customer_id": call.customer_id,
            "queue": call.queue,
            "agent_id": call.agent_id,
            "reason": reason,
            "ticket_id": ticket_id,
            "enqueued_at": _iso(call.enqueued_at),
            "answered_at": _iso(call.answered_at),
            "ended_at": _iso(call.ended_at),
            "talk_seconds": call.talk_seconds or 0.0,
            "wrap_up_seconds": call.wrap_up_seconds,
        },
    )


def expire_timers(uow: UnitOfWork, config: InboundConfig, now: datetime | None = None) -> int:
    """Offers nobody answered within the timeout count as missed; wrap-ups past their time end.

    Runs inside the caller's transaction (routing, the live view, agent changes) and as the
    worker's periodic job, so a timer is honoured even when nothing else happens.
    """
    now = now or utcnow()
    session = uow.session
    changed = 0
    offer_deadline = now - timedelta(seconds=config.offer_timeout_seconds)
    stale_offers = session.execute(
        select(Agent.agent_id, AgentRouting.current_call_id)
        .join(AgentRouting, AgentRouting.agent_id == Agent.agent_id)
        .where(Agent.state == "reserved", Agent.state_changed_at < offer_deadline)
    ).all()
    for agent_id, call_id in stale_offers:
        call = session.get(Call, call_id) if call_id else None
        if call is None:
            _move_agent(uow, agent_id, ("reserved",), "available", now, reason="offer_expired")
        else:
            _offer_missed(uow, call, agent_id, config, now)
            if not call.offered_to and call.answered_at is None and call.result is None:
                call.state = "queued"
                _bring_up_to_date(uow, call, config, now)
        changed += 1
    overdue = session.execute(
        select(AgentRouting.current_call_id, AgentRouting.wrap_up_until)
        .join(Agent, Agent.agent_id == AgentRouting.agent_id)
        .where(Agent.state == "wrap_up", AgentRouting.wrap_up_until < now)
    ).all()
    for call_id, until in overdue:
        call = session.get(Call, call_id) if call_id else None
        if call is not None and call.state == "wrap_up":
            _complete(uow, call, until, reason=None, notes=None, ticket_id=None, agent_reason="wrap_up_elapsed")
            changed += 1
    session.flush()
    return changed


def expire_timers_job(database, settings) -> None:
    """The worker's periodic job (``PeriodicJob(5, expire_timers_job)``)."""
    with UnitOfWork(database, source=settings.service) as uow:
        if expire_timers(uow, InboundConfig.from_settings(settings)):
            uow.commit()
