"""Read models of inbound calls: the call records and orphan callbacks the API lists, the
queues, the live view and the daily report (whose figures, the abandon rate among them, are
``call_report.figures``). Reads only."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from shared.db import get_or_not_found
from shared.event_catalog import CALL_REASONS
from shared.models import utcnow
from shared.schemas import page_of
from shared.unit_of_work import UnitOfWork

from ..models import Agent, AgentRouting, Call, CallCallback, InboundQueue
from . import call_report, domain
from .service import _seconds


def list_queues(uow: UnitOfWork, limit: int = 50, offset: int = 0) -> tuple[list[InboundQueue], int]:
    """The queues by name (a page and the total)."""
    return page_of(uow.session, select(InboundQueue).order_by(InboundQueue.name), limit, offset, scalars=True)


def find_call(uow: UnitOfWork, call_id: str) -> Call | None:
    return uow.session.get(Call, call_id)


def get_call(uow: UnitOfWork, call_id: str) -> Call:
    call = get_or_not_found(uow.session, Call, call_id, "call")
    return call


def list_calls(uow: UnitOfWork, filters: dict, limit: int, offset: int) -> tuple[list[Call], int]:
    conditions = [getattr(Call, name) == value for name, value in filters.items() if value is not None]
    query = select(Call).where(*conditions).order_by(Call.received_at.desc(), Call.call_id)
    return page_of(uow.session, query, limit, offset, scalars=True)


def list_orphans(uow: UnitOfWork, limit: int, offset: int) -> tuple[list[CallCallback], int]:
    """Callbacks about calls this service never heard of, newest first (a page and the total)."""
    query = (
        select(CallCallback)
        .where(CallCallback.record_call_id.is_(None))
        .order_by(CallCallback.received_at.desc(), CallCallback.callback_id.desc())
    )
    return page_of(uow.session, query, limit, offset, scalars=True)


def live_view(uow: UnitOfWork, now: datetime | None = None) -> dict:
    now = now or utcnow()
    session = uow.session
    waiting = session.execute(
        select(Call.queue, func.count(), func.min(Call.received_at)).where(Call.state == "queued").group_by(Call.queue)
    ).all()
    queues = [
        {"queue": name, "waiting": count, "longest_wait_seconds": _seconds(now, oldest)}
        for name, count, oldest in sorted(waiting)
    ]
    states = dict(session.execute(select(Agent.state, func.count()).group_by(Agent.state)).all())
    agents = session.execute(
        select(Agent.agent_id, Agent.state, Agent.state_changed_at, AgentRouting.current_call_id)
        .outerjoin(AgentRouting, AgentRouting.agent_id == Agent.agent_id)
        .order_by(Agent.agent_id)
    ).all()
    active = dict(
        session.execute(
            select(Call.state, func.count()).where(Call.state.in_(("ringing", "connected"))).group_by(Call.state)
        ).all()
    )
    return {
        "at": now,
        "calls_waiting": sum(queue["waiting"] for queue in queues),
        "longest_wait_seconds": max((queue["longest_wait_seconds"] for queue in queues), default=0.0),
        "calls_ringing": active.get("ringing", 0),
        "calls_connected": active.get("connected", 0),
        "queues": queues,
        "agents_by_state": {state: states.get(state, 0) for state in domain.AGENT_STATES},
        "agents": [
            {"agent_id": agent_id, "state": state, "since": since, "call_id": call_id}
            for agent_id, state, since, call_id in agents
        ],
    }


# --- the daily report -------------------------------------------------------------------------


def _count_columns(threshold: float):
    answered = Call.result == domain.ANSWERED
    handled = and_(answered, Call.state == "completed")

    def total(condition, value=1):
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    return (
        func.count(),
        total(Call.result == domain.SHORT_ABANDON),
        total(Call.result == domain.ABANDONED),
        total(and_(Call.result == domain.ABANDONED, Call.wait_seconds > threshold)),
        total(Call.result == domain.TIMEOUT),
        total(answered),
        total(and_(answered, Call.wait_seconds <= threshold)),
        total(answered, Call.wait_seconds),
        total(answered, Call.talk_seconds),
        total(handled),
        total(handled, Call.talk_seconds + Call.wrap_up_seconds),
    )


_COUNT_NAMES = [field.name for field in dataclasses.fields(call_report.Counts)]


def _counts(values) -> call_report.Counts:
    # SUM() comes back as int, float or Decimal depending on the database; the sums are ints or floats.
    return call_report.Counts(
        **{
            name: float(value) if name.endswith("seconds") else int(value)
            for name, value in zip(_COUNT_NAMES, values, strict=True)
        }
    )


def daily_report(uow: UnitOfWork, day: date, queue: str | None) -> dict:
    """The day's figures, by hour, per agent and by reason: three GROUP BYs over the day's calls (indexed)."""
    session = uow.session
    threshold = queue_rules_or_default(session, queue)
    where = [Call.day == day.isoformat(), Call.result.is_not(None)]
    if queue:
        where.append(Call.queue == queue)
    columns = _count_columns(threshold)
    by_hour = {
        hour: _counts(values)
        for hour, *values in session.execute(select(Call.hour, *columns).where(*where).group_by(Call.hour))
    }
    per_agent = {
        agent_id: _counts(values)
        for agent_id, *values in session.execute(
            select(Call.agent_id, *columns).where(*where, Call.agent_id.is_not(None)).group_by(Call.agent_id)
        )
    }
    reasons = dict(
        session.execute(
            select(Call.reason, func.count()).where(*where, Call.state == "completed").group_by(Call.reason)
        ).all()
    )
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    orphans = session.execute(
        select(func.count())
        .select_from(CallCallback)
        .where(
            CallCallback.record_call_id.is_(None),
            CallCallback.received_at >= day_start,
            CallCallback.received_at < day_start + timedelta(days=1),
        )
    ).scalar_one()
    total = sum(by_hour.values(), call_report.Counts())
    ranked = call_report.rank_agents(per_agent)
    return {
        "date": day.isoformat(),
        "queue": queue,
        "service_level_threshold_seconds": threshold,
        "totals": call_report.figures(total),
        "hours": [{"hour": hour, **call_report.figures(counts)} for hour, counts in sorted(by_hour.items())],
        "agents": ranked,
        "top_agent": ranked[0]["agent_id"] if ranked else None,
        "reasons": {reason: reasons.get(reason, 0) for reason in CALL_REASONS} | {"none": reasons.get(None, 0)},
        "orphan_callbacks": orphans,
    }


def queue_rules_or_default(session: Session, queue: str | None) -> float:
    """T for the report: the queue's own threshold, or the default across queues."""
    if queue:
        rules = session.get(InboundQueue, queue)
        if rules is not None:
            return float(rules.service_level_seconds)
    return float(call_report.SERVICE_LEVEL_SECONDS)
