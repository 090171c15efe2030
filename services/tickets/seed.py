"""The demo history in the tickets service's database: customers, purchases, tickets, comments.

Written in one transaction through this service's own tables, with its own rules for what can't
be made up: due times from its SLA policies and business calendar (``domain.due_times``), breach
flags as its breach job would have set them, and ticket numbers from its counter. Nothing goes
to the outbox: a month-old ticket is history, not news (the other services' replicas are seeded
from the same world by their own seed).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update

from shared.db import Database
from shared.phones import language_of
from shared.unit_of_work import UnitOfWork

from . import domain, sla
from .domain import search_form
from .models import Counter, Customer, CustomerPhone, Purchase, Ticket, TicketChange, TicketComment
from .purchases import purchase_view

BREACH_JOB_LAG = timedelta(seconds=30)  # how long after a due time the breach job notices (SLA_CHECK_SECONDS)


def write(database: Database, world) -> bool:
    """Write ``world``'s tickets part; False (and nothing written) when it is already there."""
    with UnitOfWork(database, "tickets") as uow:
        session = uow.session
        if session.get(Customer, world.marker) is not None:
            return False
        connection = session.connection()
        connection.execute(insert(Customer.__table__), [_customer_row(customer) for customer in world.customers])
        phones = [
            {"customer_id": customer.id, "phone": phone, "position": position}
            for customer in world.customers
            for position, phone in enumerate(customer.phones)
        ]
        if phones:
            connection.execute(insert(CustomerPhone.__table__), phones)
        if world.purchases:
            connection.execute(insert(Purchase.__table__), [_purchase_row(purchase) for purchase in world.purchases])
        first_number = session.scalar(select(Counter.value).where(Counter.name == "ticket_number"))
        policies, calendar = sla.sla_policies(uow), sla.business_calendar(uow)
        tickets, comments, history = [], [], []
        for ticket in world.tickets:
            row = _ticket_row(ticket, first_number + ticket.number, policies, calendar, world.now)
            tickets.append(row)
            comments += [_comment_row(ticket, comment) for comment in ticket.comments]
            history += _history_rows(ticket, row)
        if tickets:
            connection.execute(insert(Ticket.__table__), tickets)
            connection.execute(insert(TicketComment.__table__), comments)
            connection.execute(insert(TicketChange.__table__), history)
        connection.execute(
            update(Counter.__table__)
            .where(Counter.__table__.c.name == "ticket_number")
            .values(value=first_number + len(world.tickets))
        )
        uow.commit()
    return True


def _customer_row(customer) -> dict:
    return {
        "id": customer.id,
        "name": customer.name,
        "phone": customer.phone,
        "email": customer.email,
        "created_at": customer.created_at,
        "time_zone": customer.time_zone,
        "do_not_call": customer.do_not_call,
        "marketing_consent": customer.marketing_consent,
        "segment": customer.segment,
        "language": language_of(customer.phone),
        "search_name": search_form(customer.name),
        "merged_into_id": None,
        "updated_at": customer.created_at,
    }


def _purchase_row(purchase) -> dict:
    return purchase_view(purchase, recorded_at=purchase.purchased_at + timedelta(seconds=1))


def _ticket_row(ticket, number: int, policies: dict, calendar, now: datetime) -> dict:
    policy = policies.get(ticket.priority)
    first_due = resolution_due = None
    if policy is not None:
        first_due, resolution_due = domain.due_times(policy, domain.clock_of(policy, calendar), ticket.created_at)
    status = ticket.status
    # As the breach job would have flagged them: a due time passed with the work still undone.
    first_breached = None
    if first_due is not None and first_due + BREACH_JOB_LAG <= now:
        responded = ticket.first_responded_at
        if responded is None or responded > first_due + BREACH_JOB_LAG:
            first_breached = first_due + BREACH_JOB_LAG
    resolution_breached = None
    if resolution_due is not None and resolution_due + BREACH_JOB_LAG <= now:
        pending_by_then = ticket.pending_since is not None and ticket.pending_since <= resolution_due
        resolved = ticket.resolved_at
        if not pending_by_then and (resolved is None or resolved > resolution_due + BREACH_JOB_LAG):
            resolution_breached = resolution_due + BREACH_JOB_LAG
    events = [ticket.created_at, ticket.first_responded_at, ticket.pending_since, ticket.resolved_at, ticket.closed_at]
    events += [comment.created_at for comment in ticket.comments]
    return {
        "id": ticket.id,
        "number": number,
        "customer_id": ticket.customer_id,
        "subject": ticket.subject,
        "description": ticket.description,
        "category": ticket.category,
        "priority": ticket.priority,
        "channel": ticket.channel,
        "status": status,
        "assignee_id": ticket.assignee_id,
        "group_name": None,
        "tags": sorted(set(ticket.tags)),
        "call_id": ticket.call_id,
        "survey_response_id": ticket.survey_response_id,
        "created_by": ticket.created_by,
        "created_at": ticket.created_at,
        "updated_at": max(moment for moment in events if moment is not None),
        "first_responded_at": ticket.first_responded_at,
        "resolved_at": ticket.resolved_at,
        "closed_at": ticket.closed_at,
        "first_response_due_at": first_due,
        "resolution_due_at": resolution_due,
        "pending_since": ticket.pending_since if status == "pending" else None,
        "paused_seconds": 0.0,
        "first_response_breached_at": first_breached,
        "resolution_breached_at": resolution_breached,
        "breached": bool(first_breached or resolution_breached),
        "sla_check_at": domain.next_sla_check(
            first_due,
            ticket.first_responded_at is not None or status not in domain.UNRESOLVED,
            first_breached is not None,
            resolution_due,
            status in ("new", "open"),
            resolution_breached is not None,
        ),
    }


def _comment_row(ticket, comment) -> dict:
    return {
        "id": comment.id,
        "ticket_id": ticket.id,
        "author_id": comment.author_id,
        "body": comment.body,
        "public": comment.public,
        "created_at": comment.created_at,
    }


def _history_rows(ticket, row: dict) -> list[dict]:
    """The ticket's history as the service records it: creation, first response, status moves, comments."""

    def change(at, actor, field, old, new) -> dict:
        encode = domain.iso  # the service's own JSON form of a value
        return {
            "ticket_id": ticket.id,
            "actor_id": actor,
            "changed_at": at,
            "field": field,
            "old_value": None if old is None else json.dumps(encode(old)),
            "new_value": None if new is None else json.dumps(encode(new)),
        }

    rows = [change(ticket.created_at, ticket.created_by, "created", None, row["number"])]
    agent = ticket.assignee_id
    if ticket.first_responded_at:
        rows.append(change(ticket.first_responded_at, agent, "first_responded_at", None, ticket.first_responded_at))
    status = "new"
    for at, new in (
        (ticket.first_responded_at, "open"),
        (ticket.pending_since if row["status"] == "pending" else None, "pending"),
        (ticket.resolved_at, "resolved"),
        (ticket.closed_at, "closed"),
    ):
        if at is not None:
            rows.append(change(at, agent, "status", status, new))
            status = new
    for comment in ticket.comments:
        kind = "public_reply" if comment.public else "internal_note"
        rows.append(change(comment.created_at, comment.author_id, kind, None, comment.id))
    return sorted(rows, key=lambda item: item["changed_at"])


def holds_data(database: Database) -> bool:
    """Whether the directory has customers already (then this is no fresh installation: ``--if-empty``)."""
    with database.read_sessions() as session:
        return session.scalar(select(func.count()).select_from(Customer)) > 0
