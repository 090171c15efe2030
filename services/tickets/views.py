"""Read models: the customer overview (the gateway's customer view), the daily report and the
customer hygiene report. They only read: nothing here writes or publishes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, case, exists, func, or_, select

from shared.errors import NotFound
from shared.models import utcnow
from shared.unit_of_work import UnitOfWork

from . import domain
from .models import (
    Customer,
    CustomerPhone,
    Purchase,
    Ticket,
)
from .sla import business_calendar, sla_policies


def hygiene_report(uow: UnitOfWork, inactive_months: int, limit: int, now: datetime | None = None) -> dict:
    """Customers with no purchase or ticket (nor creation) for N months; records missing contact data."""
    now = now or utcnow()
    cutoff = domain.months_before(now, inactive_months)
    active = and_(Customer.merged_into_id.is_(None), Customer.erased_at.is_(None))
    recent_purchase = exists().where(Purchase.customer_id == Customer.id, Purchase.purchased_at >= cutoff)
    recent_ticket = exists().where(Ticket.customer_id == Customer.id, Ticket.created_at >= cutoff)
    sections = {
        "inactive": and_(active, Customer.created_at < cutoff, ~recent_purchase, ~recent_ticket),
        "no_phone_and_no_email": and_(active, Customer.phone.is_(None), Customer.email.is_(None)),
        "no_phone": and_(active, Customer.phone.is_(None)),
        "no_time_zone": and_(active, Customer.time_zone.is_(None)),
    }
    report: dict = {"inactive_months": inactive_months, "inactive_since": cutoff}
    for name, condition in sections.items():
        total = uow.session.scalar(select(func.count()).select_from(Customer).where(condition))
        ids = list(uow.session.scalars(select(Customer.id).where(condition).order_by(Customer.created_at).limit(limit)))
        report[name] = {"total": total, "customer_ids": ids}
    return report


def daily_report(uow: UnitOfWork, start: datetime, end: datetime) -> dict:
    """Tickets of one day [start, end): opened, resolved, backlog, response times, SLA, per agent."""
    from shared.event_catalog import TICKET_CATEGORIES

    opened = dict.fromkeys(TICKET_CATEGORIES, 0)
    for category, count in uow.session.execute(
        select(Ticket.category, func.count())
        .where(Ticket.created_at >= start, Ticket.created_at < end)
        .group_by(Ticket.category)
    ):
        opened[category] = count
    backlog = uow.session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.created_at < end, or_(Ticket.resolved_at.is_(None), Ticket.resolved_at >= end))
        .where(or_(Ticket.closed_at.is_(None), Ticket.closed_at >= end))
    )
    policies = sla_policies(uow)
    calendar = business_calendar(uow)

    def clock(priority: str):
        policy = policies.get(priority)
        return domain.clock_of(policy, calendar) if policy else None

    first_responses = list(
        uow.session.scalars(select(Ticket).where(Ticket.first_responded_at >= start, Ticket.first_responded_at < end))
    )
    resolved = list(uow.session.scalars(select(Ticket).where(Ticket.resolved_at >= start, Ticket.resolved_at < end)))

    def minutes(delta: timedelta) -> float:
        return round(delta.total_seconds() / 60, 2)

    def first_response_minutes(ticket):
        spent = domain.business_time_between(clock(ticket.priority), ticket.created_at, ticket.first_responded_at)
        return minutes(spent)

    def resolution_minutes(ticket):
        spent = domain.business_time_between(clock(ticket.priority), ticket.created_at, ticket.resolved_at)
        return minutes(max(spent - timedelta(seconds=ticket.paused_seconds or 0), timedelta(0)))

    def attainment(tickets, done, due):
        judged = [ticket for ticket in tickets if getattr(ticket, due) is not None]
        met = sum(1 for ticket in judged if getattr(ticket, done) <= getattr(ticket, due))
        return {"met": met, "judged": len(judged), "rate": round(met / len(judged), 4) if judged else None}

    def times(values):
        median, p90 = domain.median_and_p90(values)
        return {"median_minutes": median, "p90_minutes": p90, "count": len(values)}

    agents: dict[str, list[Ticket]] = {}
    for ticket in resolved:
        agents.setdefault(ticket.assignee_id or "(unassigned)", []).append(ticket)
    breaches = uow.session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(
            or_(
                and_(Ticket.first_response_breached_at >= start, Ticket.first_response_breached_at < end),
                and_(Ticket.resolution_breached_at >= start, Ticket.resolution_breached_at < end),
            )
        )
    )
    return {
        "opened": {"total": sum(opened.values()), "by_category": opened},
        "replacements": opened["replacement"],
        "refunds": opened["refund"],
        "resolved": len(resolved),
        "backlog": backlog,
        "first_response": times([first_response_minutes(ticket) for ticket in first_responses]),
        "resolution": times([resolution_minutes(ticket) for ticket in resolved]),
        "sla": {
            "first_response": attainment(first_responses, "first_responded_at", "first_response_due_at"),
            "resolution": attainment(resolved, "resolved_at", "resolution_due_at"),
            "tickets_breached": breaches,
        },
        "per_agent": [
            {
                "assignee_id": agent,
                "resolved": len(tickets),
                "resolution": times([resolution_minutes(ticket) for ticket in tickets]),
                "sla_resolution": attainment(tickets, "resolved_at", "resolution_due_at"),
            }
            for agent, tickets in sorted(agents.items(), key=lambda item: (-len(item[1]), item[0]))
        ],
        "business_hours": calendar is not None,
    }


OPEN_STATUSES = ("new", "open", "pending")


SERVICE_RECOVERY = "service_recovery"


OVERVIEW_LIMIT = 20  # items per list; the totals count them all


_tickets = Ticket.__table__.c


_OVERVIEW_TICKET_COLUMNS = (
    _tickets.id,
    _tickets.number,
    _tickets.subject,
    _tickets.category,
    _tickets.priority,
    _tickets.channel,
    _tickets.status,
    _tickets.assignee_id,
    _tickets.call_id,
    _tickets.survey_response_id,
    _tickets.created_at,
    _tickets.updated_at,
    _tickets.first_responded_at,
    _tickets.resolved_at,
    _tickets.first_response_due_at,
    _tickets.resolution_due_at,
    _tickets.first_response_breached_at,
    _tickets.resolution_breached_at,
    _tickets.breached,
)


# Both read the (customer_id, created_at, id) index newest first; a customer's open tickets
# are a small part of their history, filtered on the way.
_RECENT_TICKETS = (
    select(*_OVERVIEW_TICKET_COLUMNS)
    .where(_tickets.customer_id == bindparam("customer_id"))
    .order_by(_tickets.created_at.desc(), _tickets.id.desc())
    .limit(bindparam("limit"))
)


_OPEN_TICKETS = (
    select(*_OVERVIEW_TICKET_COLUMNS)
    .where(_tickets.customer_id == bindparam("customer_id"), _tickets.status.in_(OPEN_STATUSES))
    .order_by(_tickets.created_at.desc(), _tickets.id.desc())
    .limit(bindparam("limit"))
)


_OPEN_RECOVERY = (
    select(*_OVERVIEW_TICKET_COLUMNS)
    .where(
        _tickets.customer_id == bindparam("customer_id"),
        _tickets.category == SERVICE_RECOVERY,
        _tickets.status.in_(OPEN_STATUSES),
    )
    .order_by(_tickets.created_at.desc(), _tickets.id.desc())
    .limit(bindparam("limit"))
)


# Every total in one pass over the customer's index entries.
_TICKET_TOTALS = select(
    func.count(),
    func.coalesce(func.sum(case((_tickets.status.in_(OPEN_STATUSES), 1), else_=0)), 0),
    func.coalesce(
        func.sum(case((and_(_tickets.status.in_(OPEN_STATUSES), _tickets.category == SERVICE_RECOVERY), 1), else_=0)),
        0,
    ),
).where(_tickets.customer_id == bindparam("customer_id"))


_purchases = Purchase.__table__.c


_RECENT_PURCHASES = (
    select(
        _purchases.id,
        _purchases.sku,
        _purchases.product,
        _purchases.amount,
        _purchases.currency,
        _purchases.purchased_at,
        _purchases.source,
        _purchases.order_ref,
    )
    .where(_purchases.customer_id == bindparam("customer_id"))
    .order_by(_purchases.purchased_at.desc(), _purchases.id.desc())
    .limit(bindparam("limit"))
)


_PURCHASE_TOTALS = select(func.count()).where(_purchases.customer_id == bindparam("customer_id"))


_customers, _customer_phones = Customer.__table__.c, CustomerPhone.__table__.c


_OVERVIEW_CUSTOMER = select(
    _customers.id,
    _customers.name,
    _customers.phone,
    _customers.email,
    _customers.time_zone,
    _customers.do_not_call,
    _customers.marketing_consent,
    _customers.segment,
    _customers.language,
    _customers.created_at,
    _customers.updated_at,
    _customers.merged_into_id,
).where(_customers.id == bindparam("customer_id"))


_CUSTOMER_NUMBERS = (
    select(_customer_phones.phone)
    .where(_customer_phones.customer_id == bindparam("customer_id"))
    .order_by(_customer_phones.position)
)


def _overview_customer(connection, customer_id: str) -> dict:
    """The customer (merges followed) as JSON values, read as columns: no ORM objects to build."""
    if not domain.looks_like_id(customer_id):
        raise NotFound(f"No customer {customer_id}.")
    seen = set()
    while True:
        row = connection.execute(_OVERVIEW_CUSTOMER, {"customer_id": customer_id}).first()
        if row is None:
            raise NotFound(f"No customer {customer_id}.")
        if not row.merged_into_id or row.merged_into_id in seen:
            break
        seen.add(customer_id)
        customer_id = row.merged_into_id
    customer = row._asdict()
    del customer["merged_into_id"]
    customer["created_at"], customer["updated_at"] = domain.rfc3339(row.created_at), domain.rfc3339(row.updated_at)
    phones = connection.execute(_CUSTOMER_NUMBERS, {"customer_id": row.id}).scalars().all()
    return {**customer, "phones": phones}


def _overview_ticket(row, now: datetime) -> dict:
    return {
        "id": row.id,
        "number": row.number,
        "subject": row.subject,
        "category": row.category,
        "priority": row.priority,
        "channel": row.channel,
        "status": row.status,
        "assignee_id": row.assignee_id,
        "call_id": row.call_id,
        "survey_response_id": row.survey_response_id,
        "created_at": domain.rfc3339(row.created_at),
        "updated_at": domain.rfc3339(row.updated_at),
        "first_responded_at": domain.rfc3339(row.first_responded_at),
        "resolved_at": domain.rfc3339(row.resolved_at),
        "sla": domain.sla_state(row, now),
    }


def customer_overview(uow: UnitOfWork, customer_id: str, limit: int = OVERVIEW_LIMIT, now: datetime | None = None):
    """What the service desk knows of a customer, for the customer view: the profile and
    segment, the latest purchases, open and recent tickets with their SLA state, and open
    service-recovery cases; each list at most ``limit`` long, with its total.

    A merged customer's overview is the survivor's (``merged_from`` names the id asked for).
    Raises NotFound for an unknown customer. Reads only the customer's index entries.
    """
    now = now or utcnow()
    connection = uow.session.connection()
    customer = _overview_customer(connection, customer_id)
    params = {"customer_id": customer["id"], "limit": limit}
    total, open_total, recovery_total = connection.execute(_TICKET_TOTALS, params).one()
    recent = [_overview_ticket(row, now) for row in connection.execute(_RECENT_TICKETS, params)]
    # When every ticket is on the recent page, the open ones are among them: no second read.
    if total <= limit:
        open_tickets = [ticket for ticket in recent if ticket["status"] in OPEN_STATUSES]
    else:
        open_tickets = [_overview_ticket(row, now) for row in connection.execute(_OPEN_TICKETS, params)]
    if open_total <= len(open_tickets):  # every open ticket is at hand
        recovery = [ticket for ticket in open_tickets if ticket["category"] == SERVICE_RECOVERY]
    else:
        recovery = [_overview_ticket(row, now) for row in connection.execute(_OPEN_RECOVERY, params)]
    purchases = [
        {**row._asdict(), "amount": str(row.amount), "purchased_at": domain.rfc3339(row.purchased_at)}
        for row in connection.execute(_RECENT_PURCHASES, params)
    ]
    purchases_total = (
        len(purchases) if len(purchases) < limit else connection.execute(_PURCHASE_TOTALS, params).scalar_one()
    )
    from . import mail

    return {
        "customer": customer,
        "mails": mail.customer_mails_json(uow, customer["id"], limit),
        "merged_from": customer_id if customer["id"] != customer_id else None,
        "purchases": {"items": purchases, "total": purchases_total, "limit": limit},
        "tickets": {"open": open_tickets, "open_total": open_total, "recent": recent, "total": total, "limit": limit},
        "service_recovery": {"open": recovery, "total": recovery_total, "limit": limit},
        "as_of": domain.rfc3339(now),
    }
