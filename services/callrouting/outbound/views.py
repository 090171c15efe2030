"""Read models of the call lists: the pages the API lists (agents, campaigns, entries, the
do-not-call list), one entry with its attempts, and the campaign report. Reads only."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from shared.db import get_or_not_found
from shared.schemas import page_of
from shared.unit_of_work import UnitOfWork

from ..models import Agent, CallAttempt, CallEntry, Campaign, DoNotCall
from .service import get_campaign


def list_agents(uow: UnitOfWork, limit: int = 50, offset: int = 0) -> tuple[list[Agent], int]:
    """The agents registry, by id (a page and the total)."""
    return page_of(uow.session, select(Agent).order_by(Agent.agent_id), limit, offset, scalars=True)


def list_campaigns(
    uow: UnitOfWork, purpose: str | None = None, active: bool | None = None, *, limit: int = 50, offset: int = 0
) -> tuple[list[Campaign], int]:
    """Call lists, oldest first (a page and the total)."""
    query = select(Campaign).order_by(Campaign.created_at, Campaign.campaign_id)
    if purpose:
        query = query.where(Campaign.purpose == purpose)
    if active is not None:
        query = query.where(Campaign.active == active)
    return page_of(uow.session, query, limit, offset, scalars=True)


def list_do_not_call(
    uow: UnitOfWork, customer_id: str | None, phone: str | None, limit: int, offset: int
) -> tuple[list[DoNotCall], int]:
    """The do-not-call list, newest first (a page and the total)."""
    conditions = []
    if customer_id:
        conditions.append(DoNotCall.customer_id == customer_id)
    if phone:
        conditions.append(DoNotCall.phone == phone)
    query = select(DoNotCall).where(*conditions).order_by(DoNotCall.dnc_id.desc())
    return page_of(uow.session, query, limit, offset, scalars=True)


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
    query = select(CallEntry).where(*conditions).order_by(CallEntry.due_at, CallEntry.entry_id)
    return page_of(uow.session, query, limit, offset, scalars=True)


def get_entry(uow: UnitOfWork, entry_id: str) -> tuple[CallEntry, list[CallAttempt]]:
    entry = get_or_not_found(uow.session, CallEntry, entry_id, "call-list entry")
    history = uow.session.scalars(
        select(CallAttempt).where(CallAttempt.entry_id == entry_id).order_by(CallAttempt.attempt)
    ).all()
    return entry, list(history)


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
