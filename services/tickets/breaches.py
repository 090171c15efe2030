"""The SLA breach job's use case: flag tickets past a due time and announce each breach once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from shared.models import utcnow
from shared.unit_of_work import UnitOfWork

from . import domain
from .models import (
    Ticket,
)
from .ticket_cases import record_change, schedule_sla_check


def flag_sla_breaches(uow: UnitOfWork, now: datetime | None = None, limit: int = 500) -> tuple[int, int]:
    """Flag tickets past a due time and announce each breach once: (tickets looked at, breaches)."""
    now = now or utcnow()
    query = select(Ticket).where(Ticket.sla_check_at <= now).order_by(Ticket.sla_check_at).limit(limit)
    if uow.session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    breaches = examined = 0
    for ticket in uow.session.scalars(query):
        examined += 1
        targets = []
        if (
            ticket.first_response_due_at is not None
            and ticket.first_response_due_at <= now
            and ticket.first_responded_at is None
            and ticket.first_response_breached_at is None
            and ticket.status in domain.UNRESOLVED
        ):
            ticket.first_response_breached_at = now
            targets.append(("first_response", ticket.first_response_due_at))
        if (
            ticket.resolution_due_at is not None
            and ticket.resolution_due_at <= now
            and ticket.resolution_breached_at is None
            and ticket.status in ("new", "open")
        ):
            ticket.resolution_breached_at = now
            targets.append(("resolution", ticket.resolution_due_at))
        for target, due in targets:
            ticket.breached = True
            record_change(uow, ticket, None, now, f"{target}_breached_at", None, now)
            uow.publish(
                "ticket.sla_breached",
                {
                    "ticket_id": ticket.id,
                    "customer_id": ticket.customer_id,
                    "category": ticket.category,
                    "priority": ticket.priority,
                    "assignee_id": ticket.assignee_id,
                    "group": ticket.group,
                    "target": target,
                    "due_at": due.isoformat(),
                    "breached_at": now.isoformat(),
                },
            )
            breaches += 1
        schedule_sla_check(ticket)
    uow.commit()
    return examined, breaches
