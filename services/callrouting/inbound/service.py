"""Use cases of inbound calls: queues, agent states, routing a ringing call (who gets it:
``domain.agent_for_ringing_call``), the Twilio queue's wait and leave. The callbacks, the
wrap-up and the timers are ``callbacks.py``; the reads ``views.py``. Each runs in the caller's
unit of work and commits once; errors are ``shared.errors`` only.

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

from shared.db import get_or_not_found, is_postgresql
from shared.errors import Conflict
from shared.models import utcnow
from shared.phones import to_e164_or_none
from shared.unit_of_work import UnitOfWork

from ..models import (
    Agent,
    AgentRouting,
    AgentStateChange,
    Call,
    CustomerReplica,
    CustomerReplicaPhone,
    InboundQueue,
)
from . import call_report, callbacks, domain

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
    agent = get_or_not_found(session, Agent, agent_id, "agent")
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
    callbacks.expire_timers(uow, config, now)
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
    # No callbacks.expire_timers() here: this is the hot path, and the worker applies timers every 5 s.
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
    call = get_or_not_found(uow.session, Call, call_id, "call")
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
    call = get_or_not_found(uow.session, Call, call_id, "call")
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
    callbacks.apply_callback(
        uow,
        callbacks.CallbackIn(
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
    callbacks.expire_timers(uow, config, now)
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
    call = get_or_not_found(session, Call, call_id, "call")
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
