"""The service desk's ticket use cases: open, change (through the state machine), comment, list.

Each runs in one unit of work and commits once. An unknown ticket raises ``shared.errors.NotFound``,
a change the current state forbids ``Conflict``, input only the database can judge ``Invalid``
(an unknown customer); each leaves the unit of work uncommitted, so nothing is half-written.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update

from shared.errors import Conflict, Invalid, NotFound
from shared.models import new_id, utcnow
from shared.schemas import page_of
from shared.unit_of_work import UnitOfWork

from . import domain
from .models import (
    Counter,
    Customer,
    Mail,
    Ticket,
    TicketChange,
    TicketComment,
)
from .sla import SlaConfig, cached_sla_config, current_sla_config, sla_clock

TICKET_FIELDS = (
    "subject",
    "description",
    "category",
    "priority",
    "channel",
    "customer_id",
    "assignee_id",
    "group",
    "tags",
    "call_id",
)


TICKET_VIEW_FIELDS = (
    "id",
    "number",
    "customer_id",
    "subject",
    "description",
    "category",
    "priority",
    "channel",
    "status",
    "assignee_id",
    "group",
    "tags",
    "call_id",
    "survey_response_id",
    "created_by",
    "created_at",
    "updated_at",
    "first_responded_at",
    "resolved_at",
    "closed_at",
    "first_response_due_at",
    "resolution_due_at",
    "first_response_breached_at",
    "resolution_breached_at",
    "breached",
)


def ticket_view(ticket: Ticket) -> dict:
    view = {name: getattr(ticket, name) for name in TICKET_VIEW_FIELDS}
    view["tags"] = list(ticket.tags or [])
    return view


# One row, updated in the ticket's own transaction: gap-free and safe under concurrency
# (the row lock on PostgreSQL, the write lock on SQLite). Statements built once: building
# them costs more than running them.
_NEXT_NUMBER = (
    update(Counter).where(Counter.name == "ticket_number").values(value=Counter.value + 1).returning(Counter.value)
)


_MERGED_INTO = select(Customer.__table__.c.merged_into_id).where(Customer.__table__.c.id == bindparam("customer_id"))


_INSERT_TICKET = insert(Ticket.__table__)


_INSERT_CHANGE = insert(TicketChange.__table__)


def _next_number(uow: UnitOfWork) -> int:
    return uow.session.connection().execute(_NEXT_NUMBER).scalar_one()


def _resolve_ticket_customer(uow: UnitOfWork, customer_id: str | None) -> str | None:
    """The customer's id, or the survivor's when it was merged; 422 when there is no such customer."""
    if customer_id is None:
        return None
    for _ in range(10):  # merges keep redirects one hop long; the bound is only a guard
        row = uow.session.connection().execute(_MERGED_INTO, {"customer_id": customer_id}).first()
        if row is None:
            raise Invalid({"customer_id": "No such customer."})
        if row.merged_into_id is None:
            return customer_id
        customer_id = row.merged_into_id
    raise Invalid({"customer_id": "The customer's merge history is too long to follow."})


def record_change(uow: UnitOfWork, ticket: Ticket, actor_id: str | None, now: datetime, field: str, old, new) -> None:
    uow.session.add(
        TicketChange(
            ticket_id=ticket.id,
            actor_id=actor_id,
            changed_at=now,
            field=field,
            old_value=None if old is None else json.dumps(domain.iso(old)),
            new_value=None if new is None else json.dumps(domain.iso(new)),
        )
    )


def schedule_sla_check(ticket: Ticket) -> None:
    ticket.sla_check_at = domain.next_sla_check(
        ticket.first_response_due_at,
        ticket.first_responded_at is not None or ticket.status not in domain.UNRESOLVED,
        ticket.first_response_breached_at is not None,
        ticket.resolution_due_at,
        ticket.status in ("new", "open"),
        ticket.resolution_breached_at is not None,
    )


def _ensure_response_has_no_ticket(uow: UnitOfWork, response_id: str) -> None:
    """One ticket per survey response: a second one is a 409 naming the first."""
    existing = uow.session.execute(
        select(Ticket.id, Ticket.number).where(Ticket.survey_response_id == response_id)
    ).first()
    if existing is not None:
        raise Conflict(f"Survey response {response_id} already has ticket #{existing.number} ({existing.id}).")


def create_ticket(uow: UnitOfWork, body: dict, actor_id: str | None, now: datetime | None = None) -> dict:
    ticket = open_ticket(uow, body, actor_id, now or utcnow())
    uow.commit()
    return ticket


def open_ticket(uow: UnitOfWork, body: dict, actor_id: str | None, now: datetime) -> dict:
    """Insert a new ticket, its history row and ``ticket.created``; the ticket's view.

    The hot write path, so written with Core statements built once rather than ORM objects, and
    with everything that needs no database (the row, the due times from this process's cached
    SLA configuration) done before the first statement: on SQLite that statement takes the one
    write lock (BEGIN IMMEDIATE), held until the commit.
    """
    row = {
        "id": new_id(),
        "number": None,
        "customer_id": body.get("customer_id"),
        "subject": body["subject"].strip(),
        "description": body.get("description") or "",
        "category": body["category"],
        "priority": body.get("priority") or "normal",
        "channel": body.get("channel") or "web",
        "status": "new",
        "assignee_id": body.get("assignee_id"),
        "group_name": body.get("group"),
        "tags": sorted(set(body.get("tags") or [])),
        "call_id": body.get("call_id"),
        "survey_response_id": body.get("survey_response_id"),
        "created_by": actor_id,
        "created_at": now,
        "updated_at": now,
        "paused_seconds": 0.0,
        "breached": False,
        "first_response_due_at": None,
        "resolution_due_at": None,
        "sla_check_at": None,
    }
    guessed = cached_sla_config(uow)
    if guessed is not None:
        _set_due_times(row, guessed)

    row["customer_id"] = _resolve_ticket_customer(uow, row["customer_id"])
    if row["survey_response_id"] is not None:
        _ensure_response_has_no_ticket(uow, row["survey_response_id"])
    config = current_sla_config(uow)
    if config is not guessed:  # first ticket of this process, or the configuration just changed
        _set_due_times(row, config)
    row["number"] = _next_number(uow)
    connection = uow.session.connection()
    connection.execute(_INSERT_TICKET, row)
    connection.execute(
        _INSERT_CHANGE,
        {
            "ticket_id": row["id"],
            "actor_id": actor_id,
            "changed_at": now,
            "field": "created",
            "old_value": None,
            "new_value": json.dumps(row["number"]),
        },
    )
    uow.publish(
        "ticket.created",
        {
            "ticket_id": row["id"],
            "number": row["number"],
            "customer_id": row["customer_id"],
            "subject": row["subject"],
            "category": row["category"],
            "priority": row["priority"],
            "channel": row["channel"],
            "status": row["status"],
            "assignee_id": row["assignee_id"],
            "group": row["group_name"],
            "call_id": row["call_id"],
            "survey_response_id": row["survey_response_id"],
            "first_response_due_at": domain.iso(row["first_response_due_at"]),
            "resolution_due_at": domain.iso(row["resolution_due_at"]),
            "created_at": now.isoformat(),
            "created_by": actor_id,
        },
    )
    view = {name: row.get(name) for name in TICKET_VIEW_FIELDS}  # the columns a new ticket leaves empty: None
    view["group"] = row["group_name"]
    view["tags"] = list(row["tags"])
    return view


def _set_due_times(row: dict, config: SlaConfig) -> None:
    """A new ticket's due times under its priority's policy, and when the breach job looks."""
    policy, clock = config.clock(row["priority"])
    first_due, resolution_due = (None, None) if policy is None else domain.due_times(policy, clock, row["created_at"])
    row["first_response_due_at"], row["resolution_due_at"] = first_due, resolution_due
    # as schedule_sla_check for a ticket that is new: nothing responded, breached or paused yet
    row["sla_check_at"] = domain.next_sla_check(first_due, False, False, resolution_due, True, False)


def load_ticket(uow: UnitOfWork, ticket_id: str, *, for_update: bool = False) -> Ticket:
    if not domain.looks_like_id(ticket_id):
        raise NotFound(f"No ticket {ticket_id}.")
    query = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        query = query.with_for_update()
    ticket = uow.session.scalars(query).first()
    if ticket is None:
        raise NotFound(f"No ticket {ticket_id}.")
    return ticket


def get_ticket(uow: UnitOfWork, ticket_id: str) -> dict:
    return ticket_view(load_ticket(uow, ticket_id))


def update_ticket(
    uow: UnitOfWork, ticket_id: str, changes: dict, actor_id: str | None, now: datetime | None = None
) -> dict:
    """Change fields and/or the status (through the state machine), recording every change."""
    now = now or utcnow()
    ticket = load_ticket(uow, ticket_id, for_update=True)
    if "customer_id" in changes:
        changes = {**changes, "customer_id": _resolve_ticket_customer(uow, changes["customer_id"])}
    if "tags" in changes:
        changes = {**changes, "tags": sorted(set(changes["tags"] or []))}
    if "subject" in changes:
        changes = {**changes, "subject": changes["subject"].strip()}
    new_status = changes.get("status")
    if new_status is not None and new_status != ticket.status:
        try:
            domain.check_transition(ticket.status, new_status)
        except domain.IllegalTransition as error:
            raise Conflict(str(error)) from None
    if ticket.status == "closed" and any(name in changes for name in TICKET_FIELDS):
        raise Conflict("A closed ticket cannot be changed.")

    changed: dict[str, dict] = {}
    for name in TICKET_FIELDS:
        if name in changes and changes[name] != getattr(ticket, name):
            changed[name] = {"old": getattr(ticket, name), "new": changes[name]}
            setattr(ticket, name, changes[name])
    if "priority" in changed:
        _reschedule_for_priority(uow, ticket, changed)

    old_status = ticket.status
    if new_status is not None and new_status != old_status:
        _move(uow, ticket, new_status, now)

    schedule_sla_check(ticket)
    for name, change in changed.items():
        record_change(uow, ticket, actor_id, now, name, change["old"], change["new"])
    if ticket.status != old_status:
        record_change(uow, ticket, actor_id, now, "status", old_status, ticket.status)
    if changed or ticket.status != old_status:
        ticket.updated_at = now
    uow.session.flush()
    if changed:
        _announce_update(uow, ticket, actor_id, changed)
    if ticket.status != old_status:
        _announce_status(uow, ticket, old_status, actor_id, now)
    uow.commit()
    return ticket_view(ticket)


def _reschedule_for_priority(uow: UnitOfWork, ticket: Ticket, changed: dict) -> None:
    """Due times follow the new priority's policy, from the ticket's opening, keeping its pauses."""
    policy, clock = sla_clock(uow, ticket.priority)
    if policy is None:
        return
    first_due, resolution_due = domain.due_times(policy, clock, ticket.created_at)
    resolution_due = domain.add_business_time(clock, resolution_due, timedelta(seconds=ticket.paused_seconds or 0))
    for name, value in (("first_response_due_at", first_due), ("resolution_due_at", resolution_due)):
        if getattr(ticket, name) != value:
            changed[name] = {"old": getattr(ticket, name), "new": value}
            setattr(ticket, name, value)


def _move(uow: UnitOfWork, ticket: Ticket, new_status: str, now: datetime) -> None:
    old_status = ticket.status
    if old_status == "pending" and ticket.pending_since is not None:
        _, clock = sla_clock(uow, ticket.priority)
        paused = domain.business_time_between(clock, ticket.pending_since, now)
        if ticket.resolution_due_at is not None and ticket.resolution_breached_at is None:
            ticket.resolution_due_at = domain.resume_after_pause(
                clock, ticket.resolution_due_at, ticket.pending_since, now
            )
        ticket.paused_seconds = (ticket.paused_seconds or 0) + paused.total_seconds()
        ticket.pending_since = None
    if new_status == "pending":
        ticket.pending_since = now
    if new_status == "resolved":
        ticket.resolved_at = now
    if new_status == "open" and old_status == "resolved":
        ticket.resolved_at = None  # reopened: it counts as resolved again only when it is
    if new_status == "closed":
        ticket.closed_at = now
    ticket.status = new_status


def _announce_status(uow: UnitOfWork, ticket: Ticket, old_status: str, actor_id: str | None, now: datetime) -> None:
    uow.publish(
        "ticket.status_changed",
        {
            "ticket_id": ticket.id,
            "customer_id": ticket.customer_id,
            "category": ticket.category,
            "old_status": old_status,
            "new_status": ticket.status,
            "actor_id": actor_id,
            "changed_at": now.isoformat(),
        },
    )
    if ticket.status == "resolved":
        uow.publish(
            "ticket.resolved",
            {
                "ticket_id": ticket.id,
                "customer_id": ticket.customer_id,
                "category": ticket.category,
                "priority": ticket.priority,
                "assignee_id": ticket.assignee_id,
                "call_id": ticket.call_id,
                "survey_response_id": ticket.survey_response_id,
                "resolved_at": now.isoformat(),
                "within_sla": None if ticket.resolution_due_at is None else now <= ticket.resolution_due_at,
            },
        )


def first_response(uow: UnitOfWork, ticket: Ticket, at: datetime, actor_id: str | None, extra: dict) -> None:
    """Mark the first response (a public reply, a connected call) and announce it."""
    changed = {"first_responded_at": {"old": None, "new": at}, **extra}
    ticket.first_responded_at = at
    for name, change in extra.items():
        setattr(ticket, name, change["new"])
    schedule_sla_check(ticket)
    ticket.updated_at = utcnow()
    for name, change in changed.items():
        record_change(uow, ticket, actor_id, at, name, change["old"], change["new"])
    uow.session.flush()
    _announce_update(uow, ticket, actor_id, changed)


def _announce_update(uow: UnitOfWork, ticket: Ticket, actor_id: str | None, changed: dict) -> None:
    """``ticket.updated`` with each changed field's old and new value (as text)."""
    uow.publish(
        "ticket.updated",
        {
            "ticket_id": ticket.id,
            "customer_id": ticket.customer_id,
            "actor_id": actor_id,
            "changes": {
                name: {"old": domain.iso(change["old"]), "new": domain.iso(change["new"])}
                for name, change in changed.items()
            },
        },
    )


def add_comment(
    uow: UnitOfWork, ticket_id: str, body: str, public: bool, actor_id: str | None, from_customer: bool = False
) -> dict:
    """An internal note or a public reply; an agent's first public reply is the first response.

    ``from_customer``: the customer's own words, recorded by an agent or relayed by a channel;
    they are never the desk's first response.
    """
    ticket = load_ticket(uow, ticket_id, for_update=True)
    comment = append_comment(uow, ticket, body, public, actor_id, from_customer)
    comment["mail"] = None
    if public and not from_customer:
        from . import mail  # the reply goes out by mail, queued in this transaction

        comment["mail"] = mail.queue_reply(uow, ticket, comment)
    uow.commit()
    return comment


def append_comment(
    uow: UnitOfWork, ticket: Ticket, body: str, public: bool, actor_id: str | None, from_customer: bool
) -> dict:
    """add_comment on a loaded (locked) ticket, without the commit."""
    if ticket.status == "closed":
        raise Conflict("A closed ticket takes no more comments.")
    now = utcnow()
    comment = TicketComment(
        id=new_id(), ticket_id=ticket.id, author_id=actor_id, body=body, public=public, created_at=now
    )
    uow.session.add(comment)
    ticket.updated_at = now
    record_change(uow, ticket, actor_id, now, "public_reply" if public else "internal_note", None, comment.id)
    if public and ticket.first_responded_at is None and not from_customer:
        first_response(uow, ticket, now, actor_id, {})
    uow.session.flush()
    return comment_view(comment)


def reopen_on_customer_answer(uow: UnitOfWork, ticket: Ticket, now: datetime) -> bool:
    """The customer answered: a pending (or resolved) ticket is open again and its SLA clock runs."""
    if ticket.status not in ("pending", "resolved"):
        return False
    old_status = ticket.status
    _move(uow, ticket, "open", now)
    schedule_sla_check(ticket)
    record_change(uow, ticket, None, now, "status", old_status, ticket.status)
    ticket.updated_at = now
    uow.session.flush()
    _announce_status(uow, ticket, old_status, None, now)
    return True


def comment_view(comment: TicketComment) -> dict:
    return {
        "id": comment.id,
        "ticket_id": comment.ticket_id,
        "author_id": comment.author_id,
        "body": comment.body,
        "public": comment.public,
        "created_at": comment.created_at,
    }


def list_comments(uow: UnitOfWork, ticket_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
    """A page of the ticket's notes and replies, oldest first, and how many it has."""
    ticket = load_ticket(uow, ticket_id)
    query = (
        select(TicketComment, Mail.from_address)
        .outerjoin(Mail, and_(Mail.comment_id == TicketComment.id, Mail.direction == "in"))
        .where(TicketComment.ticket_id == ticket.id)
        .order_by(TicketComment.created_at, TicketComment.id)
    )
    rows, total = page_of(uow.session, query, limit, offset)
    # A comment that came in by mail names its sender (the mail row holds the address; erasure removes it).
    return [comment_view(comment) | {"mailed_from": sender} for comment, sender in rows], total


def ticket_history(uow: UnitOfWork, ticket_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
    """A page of the ticket's changes, oldest first, and how many there are."""
    ticket = load_ticket(uow, ticket_id)
    query = select(TicketChange).where(TicketChange.ticket_id == ticket.id).order_by(TicketChange.id)
    changes, total = page_of(uow.session, query, limit, offset, scalars=True)
    return [
        {
            "field": change.field,
            "old": None if change.old_value is None else json.loads(change.old_value),
            "new": None if change.new_value is None else json.loads(change.new_value),
            "actor_id": change.actor_id,
            "changed_at": change.changed_at,
        }
        for change in changes
    ], total


PRIORITY_RANK = case({"urgent": 0, "high": 1, "normal": 2, "low": 3}, value=Ticket.priority)


SORTS = {
    "created_at": (Ticket.created_at, Ticket.id),
    "-created_at": (Ticket.created_at.desc(), Ticket.id.desc()),
    "priority": (PRIORITY_RANK, Ticket.created_at, Ticket.id),
    "-priority": (PRIORITY_RANK.desc(), Ticket.created_at, Ticket.id),
    "due": (Ticket.resolution_due_at.is_(None), Ticket.resolution_due_at, Ticket.id),
    "-due": (Ticket.resolution_due_at.is_(None), Ticket.resolution_due_at.desc(), Ticket.id),
}


def list_tickets(uow: UnitOfWork, filters: dict, sort: str, limit: int, offset: int) -> tuple[list[dict], int]:
    conditions = []
    for name, column in (
        ("status", Ticket.status),
        ("category", Ticket.category),
        ("priority", Ticket.priority),
        ("assignee", Ticket.assignee_id),
        ("customer", Ticket.customer_id),
        ("group", Ticket.group),
        ("channel", Ticket.channel),
    ):
        if filters.get(name):
            values = filters[name]
            conditions.append(column == values[0] if len(values) == 1 else column.in_(values))
    if filters.get("created_from"):
        conditions.append(Ticket.created_at >= filters["created_from"])
    if filters.get("created_to"):
        conditions.append(Ticket.created_at < filters["created_to"])
    if filters.get("breached") is not None:
        conditions.append(Ticket.breached.is_(filters["breached"]))
    if filters.get("unassigned") is not None:
        conditions.append(Ticket.assignee_id.is_(None) if filters["unassigned"] else Ticket.assignee_id.is_not(None))
    if filters.get("due_before"):
        # sla_check_at is the earliest due time still open (null when nothing can breach any more)
        conditions.append(Ticket.sla_check_at < filters["due_before"])
    if filters.get("q"):
        pattern = f"%{domain.escape_like(filters['q'].strip().lower())}%"
        conditions.append(
            or_(
                func.lower(Ticket.subject).like(pattern, escape="\\"),
                func.lower(Ticket.description).like(pattern, escape="\\"),
            )
        )
    # The page's ids first: with an index on (filter columns, created_at, id) this reads index
    # entries only; then the rows of that page alone.
    page_ids = select(Ticket.id).where(*conditions).order_by(*SORTS[sort])
    ids, total = page_of(uow.session, page_ids, limit, offset, scalars=True)
    # The page's views straight from their columns: loading ORM objects only to read them costs
    # more than the query.
    rows = uow.session.connection().execute(_TICKET_VIEWS, {"ids": ids})
    views = {row.id: _row_view(row) for row in rows}
    return [views[ticket_id] for ticket_id in ids], total


_TICKET_VIEWS = select(
    *(Ticket.__table__.c["group_name" if name == "group" else name].label(name) for name in TICKET_VIEW_FIELDS)
).where(Ticket.__table__.c.id.in_(bindparam("ids", expanding=True)))


def _row_view(row) -> dict:
    """ticket_view of a row of _TICKET_VIEWS."""
    view = row._asdict()
    view["tags"] = list(view["tags"] or [])
    return view
