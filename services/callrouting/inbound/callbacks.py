"""Use cases of an inbound call after it rang: the phone system's callbacks (answered, ended,
abandoned; deduplicated, folded in any order by ``domain.fold``), the wrap-up, and the timers
(offers nobody answered, wrap-ups past their time; ``expire_timers``, also the worker's job).
Routing a ringing call, queues and agent states are ``service.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from shared.db import get_or_not_found
from shared.errors import Conflict, Invalid
from shared.models import utcnow
from shared.unit_of_work import UnitOfWork

from ..models import Agent, AgentRouting, Call, CallCallback
from . import domain, service

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


def apply_callback(
    uow: UnitOfWork, callback: CallbackIn, config: service.InboundConfig, now: datetime | None = None
) -> str:
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
        if not service._insert_ignoring_duplicates(session, CallCallback, row, ("call_id", "sequence")):
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
        service._offer_missed(uow, call, callback.agent_id, config, now)
    elif callback.kind == domain.OFFER_CANCELED and callback.agent_id and current_round:
        service._offer_canceled(uow, call, callback.agent_id, now)
    if callback.explicit_abandon:
        for agent_id in list(call.offered_to or []):
            service._offer_canceled(uow, call, agent_id, now)
    _bring_up_to_date(uow, call, config, now)
    uow.commit()
    return "applied"


def _bring_up_to_date(uow: UnitOfWork, call: Call, config: service.InboundConfig, now: datetime) -> None:
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
            service._offer_canceled(uow, call, other, now)
    call.offered_to = []
    service._move_agent(
        uow, facts.agent_id, ("reserved", "available"), "on_call", now, reason="answered", call_id=call.call_id
    )
    row = service.agent_routing(uow.session, facts.agent_id)
    row.current_call_id, row.missed_offers = call.call_id, 0
    uow.publish(
        "call.answered",
        {
            "call_id": call.call_id,
            "customer_id": call.customer_id,
            "queue": call.queue,
            "agent_id": call.agent_id,
            "enqueued_at": service._iso(call.enqueued_at),
            "answered_at": service._iso(call.answered_at),
        },
    )


def _talk_ended(uow: UnitOfWork, call: Call, ended_at: datetime, config: service.InboundConfig, now: datetime) -> None:
    rules = service.queue_rules(uow.session, call.queue)
    call.ended_at = max(ended_at, call.answered_at)
    call.result = domain.ANSWERED
    call.wait_seconds = service._seconds(call.answered_at, call.enqueued_at)
    call.talk_seconds = service._seconds(call.ended_at, call.answered_at)
    call.state, call.wrap_up_started_at = "wrap_up", now
    row = service.agent_routing(uow.session, call.agent_id)
    today = now.astimezone(UTC).date().isoformat()
    if row.stats_day != today:
        row.stats_day, row.calls_today, row.talk_seconds_today = today, 0, 0.0
    row.calls_today += 1
    row.talk_seconds_today += call.talk_seconds
    if service._move_agent(uow, call.agent_id, ("on_call",), "wrap_up", now, reason="call_ended", call_id=call.call_id):
        row.current_call_id = call.call_id
        row.wrap_up_until = now + timedelta(seconds=rules.wrap_up_seconds)
    if rules.wrap_up_seconds <= 0:
        _complete(uow, call, now, reason=None, notes=None, ticket_id=None, agent_reason="wrap_up_elapsed")


def _abandoned(uow: UnitOfWork, call: Call, facts: domain.CallFacts, now: datetime) -> None:
    rules = service.queue_rules(uow.session, call.queue)
    call.ended_at = max(facts.caller_left_at, call.enqueued_at)
    call.wait_seconds = service._seconds(call.ended_at, call.enqueued_at)
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
            "enqueued_at": service._iso(call.enqueued_at),
            "abandoned_at": service._iso(call.ended_at),
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
    config: service.InboundConfig,
    now: datetime | None = None,
    only_agent: str | None = None,
) -> Call:
    """The agent ends the wrap-up with a reason: the agent is available again, ``call.completed`` goes out.

    ``only_agent``: the call must be this agent's (``PermissionError`` otherwise).
    """
    now = now or utcnow()
    expire_timers(uow, config, now)
    call = get_or_not_found(uow.session, Call, call_id, "call")
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
    call.wrap_up_seconds = service._seconds(at, call.wrap_up_started_at or at)
    call.state = "completed"
    service._move_agent(uow, call.agent_id, ("wrap_up",), "available", at, reason=agent_reason, call_id=call.call_id)
    uow.publish(
        "call.completed",
        {
            "call_id": call.call_id,
            "customer_id": call.customer_id,
            "queue": call.queue,
            "agent_id": call.agent_id,
            "reason": reason,
            "ticket_id": ticket_id,
            "enqueued_at": service._iso(call.enqueued_at),
            "answered_at": service._iso(call.answered_at),
            "ended_at": service._iso(call.ended_at),
            "talk_seconds": call.talk_seconds or 0.0,
            "wrap_up_seconds": call.wrap_up_seconds,
        },
    )


def expire_timers(uow: UnitOfWork, config: service.InboundConfig, now: datetime | None = None) -> int:
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
            service._move_agent(uow, agent_id, ("reserved",), "available", now, reason="offer_expired")
        else:
            service._offer_missed(uow, call, agent_id, config, now)
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
        if expire_timers(uow, service.InboundConfig.from_settings(settings)):
            uow.commit()
