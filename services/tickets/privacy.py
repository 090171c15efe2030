"""What the tickets service holds about a customer, to export it and to erase it.

The directory owns erasure requests: ``request_erasure`` records one, applies it here in the
same transaction and announces ``customer.erased`` for the other services (each has a
``privacy.py`` like this one). ``export_customer`` and ``erase_customer`` name every kind of
record this service keeps about a customer; a new kind of record (e-mail, attachments) is
added to both.

Erasure keeps what the reports count: tickets keep their category, priority, status, times and
SLA figures; purchases their product, amount and date (segments, reports). What goes: the
customer's name, numbers, e-mail, and every free text (subjects, descriptions, comments, the
text in the history).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.errors import Conflict, NotFound
from shared.privacy import (
    ERASED_NAME,
    ERASED_TEXT,
    apply_erasure,
    as_record,
    erased_customer_ids,
    number_hash,
    records,
    utcnow,
)
from shared.schemas import page_of
from shared.unit_of_work import UnitOfWork

from . import domain
from .models import (
    Customer,
    CustomerPhone,
    PrivacyErasure,
    PrivacyRequest,
    Purchase,
    Ticket,
    TicketChange,
    TicketComment,
)

# Fields of the history whose old and new values are free text.
_TEXT_FIELDS = ("subject", "description")


def _customer_and_duplicates(session: Session, customer_id: str) -> list[str]:
    """The customer and every customer merged into them (at any depth)."""
    ids, frontier = [customer_id], [customer_id]
    while frontier:
        frontier = list(session.scalars(select(Customer.id).where(Customer.merged_into_id.in_(frontier))))
        ids += [each for each in frontier if each not in ids]
    return ids


def export_customer(session: Session, customer_id: str) -> dict:
    ids = _customer_and_duplicates(session, customer_id)
    customers = list(session.scalars(select(Customer).where(Customer.id.in_(ids))))
    tickets = list(session.scalars(select(Ticket).where(Ticket.customer_id.in_(ids)).order_by(Ticket.created_at)))
    ticket_ids = [ticket.id for ticket in tickets]
    return {
        "customers": [as_record(customer) for customer in customers],
        "phones": records(
            session, select(CustomerPhone).where(CustomerPhone.customer_id.in_(ids)).order_by(CustomerPhone.position)
        ),
        "purchases": records(
            session, select(Purchase).where(Purchase.customer_id.in_(ids)).order_by(Purchase.purchased_at)
        ),
        "tickets": [as_record(ticket) for ticket in tickets],
        "ticket_comments": records(
            session,
            select(TicketComment).where(TicketComment.ticket_id.in_(ticket_ids)).order_by(TicketComment.created_at),
        ),
        "ticket_history": records(
            session, select(TicketChange).where(TicketChange.ticket_id.in_(ticket_ids)).order_by(TicketChange.id)
        ),
        "privacy_requests": records(session, select(PrivacyRequest).where(PrivacyRequest.customer_id.in_(ids))),
    }


def erase_customer(session: Session, data: dict) -> None:
    """Remove the personal data of ``customer.erased``'s customers from this service's tables."""
    ids = erased_customer_ids(data)
    now = utcnow()
    session.execute(
        update(Customer)
        .where(Customer.id.in_(ids))
        .values(
            name=ERASED_NAME,
            search_name=None,  # the folded name is hers too: a search must not find the erased row
            phone=None,
            email=None,
            time_zone=None,
            marketing_consent=False,
            do_not_call=True,
            erased_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(CustomerPhone).where(CustomerPhone.customer_id.in_(ids)))
    # An order reference can name the customer (an e-mail, a loyalty number): replaced by the row's id,
    # which keeps (source, order_ref) unique.
    for purchase in session.scalars(select(Purchase).where(Purchase.customer_id.in_(ids))):
        purchase.order_ref = f"erased:{purchase.id}"
    ticket_ids = select(Ticket.id).where(Ticket.customer_id.in_(ids)).scalar_subquery()
    session.execute(
        update(Ticket)
        .where(Ticket.customer_id.in_(ids))
        .values(subject=ERASED_TEXT, description="")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(TicketComment)
        .where(TicketComment.ticket_id.in_(ticket_ids))
        .values(body=ERASED_TEXT)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(TicketChange)
        .where(TicketChange.ticket_id.in_(ticket_ids), TicketChange.field.in_(_TEXT_FIELDS))
        .values(old_value=json.dumps(None), new_value=json.dumps(ERASED_TEXT))
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


def request_erasure(
    uow: UnitOfWork, customer_id: str, requested_by: str | None, secret: bytes, deadline: timedelta
) -> tuple[dict, bool]:
    """(the request, whether it is new): records it, applies it here, announces ``customer.erased``.

    A customer already erased answers their earlier request: erasing twice changes nothing."""
    session = uow.session
    customer = session.get(Customer, customer_id) if 0 < len(customer_id) <= 36 else None
    if customer is None:
        raise NotFound(f"No customer {customer_id}.")
    if customer.merged_into_id:
        raise Conflict(f"Customer {customer_id} was merged into {customer.merged_into_id}; erase that one.")
    earlier = session.scalars(
        select(PrivacyRequest).where(PrivacyRequest.customer_id == customer_id, PrivacyRequest.kind == "erasure")
    ).first()
    if earlier is not None:
        return request_view(earlier), False
    ids = _customer_and_duplicates(session, customer_id)
    numbers = set(session.scalars(select(CustomerPhone.phone).where(CustomerPhone.customer_id.in_(ids))))
    numbers |= {phone for phone in session.scalars(select(Customer.phone).where(Customer.id.in_(ids))) if phone}
    now = utcnow()
    request = PrivacyRequest(
        customer_id=customer_id, kind="erasure", requested_by=requested_by, requested_at=now, due_at=now + deadline
    )
    session.add(request)
    session.flush()
    view = request_view(request)
    data = {
        "request_id": request.request_id,
        "customer_id": customer_id,
        "customer_ids": ids,
        "number_hashes": sorted(number_hash(number, secret) for number in numbers),
        "requested_at": now.isoformat(),
    }
    apply_erasure(session, PrivacyErasure, data, erase_customer)
    uow.publish("customer.erased", data)
    uow.commit()
    return view, True


def request_view(request: PrivacyRequest) -> dict:
    return {
        name: getattr(request, name)
        for name in ("request_id", "customer_id", "kind", "requested_by", "requested_at", "due_at")
    }


def get_request(uow: UnitOfWork, request_id: str) -> PrivacyRequest:
    request = uow.session.get(PrivacyRequest, request_id) if 0 < len(request_id) <= 36 else None
    if request is None:
        raise NotFound(f"No privacy request {request_id}.")
    return request


def list_requests(uow: UnitOfWork, since: datetime, limit: int, offset: int = 0) -> tuple[list[PrivacyRequest], int]:
    """A page of the requests made since ``since``, newest first, and how many there are."""
    query = (
        select(PrivacyRequest)
        .where(PrivacyRequest.requested_at >= since)
        .order_by(PrivacyRequest.requested_at.desc(), PrivacyRequest.request_id.desc())
    )
    return page_of(uow.session, query, limit, offset, scalars=True)


def apply_retention(
    uow: UnitOfWork, settings, secret: bytes, deadline: timedelta, now: datetime, limit: int = 100
) -> dict:
    """One round of the retention job: old comments anonymised, inactive customers erased (each a
    request like any other, so every service applies it). Counts of what changed."""
    from shared.privacy import retention

    done = {"ticket_comments": 0, "inactive_customers": 0}
    session = uow.session
    if days := retention(settings, "ticket_comments"):
        done["ticket_comments"] = session.execute(
            update(TicketComment)
            .where(TicketComment.created_at < now - timedelta(days=days), TicketComment.body != ERASED_TEXT)
            .values(body=ERASED_TEXT)
            .execution_options(synchronize_session=False)
        ).rowcount
    uow.commit()
    if months := retention(settings, "inactive_customers"):
        cutoff = domain.months_before(now, months)
        recent_purchase = select(Purchase.id).where(
            Purchase.customer_id == Customer.id, Purchase.purchased_at >= cutoff
        )
        recent_ticket = select(Ticket.id).where(Ticket.customer_id == Customer.id, Ticket.created_at >= cutoff)
        stale = list(
            session.scalars(
                select(Customer.id)
                .where(
                    Customer.merged_into_id.is_(None),
                    Customer.erased_at.is_(None),
                    Customer.created_at < cutoff,
                    ~recent_purchase.exists(),
                    ~recent_ticket.exists(),
                )
                .order_by(Customer.created_at)
                .limit(limit)
            )
        )
        for customer_id in stale:
            _request, new = request_erasure(uow, customer_id, "retention", secret, deadline)
            done["inactive_customers"] += int(new)
    return done


def refuse_if_erased(customer: Customer) -> None:
    """An erased customer's record stays anonymous: no details, purchases or merges any more."""
    if customer.erased_at is not None:
        raise Conflict(f"Customer {customer.id} was erased; record a new customer instead.")
