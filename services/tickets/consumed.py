"""The use cases of consumed events (``survey.low_score``, ``call.completed``).

The consumer commits, with the event's id, so a redelivery changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select

from shared.errors import NotFound
from shared.models import utcnow
from shared.unit_of_work import UnitOfWork

from . import domain
from .customers import load_customer
from .models import (
    Ticket,
)
from .ticket_cases import first_response, load_ticket, open_ticket

log = logging.getLogger(__name__)


def open_service_recovery(uow: UnitOfWork, data: dict) -> None:
    """One urgent service-recovery ticket per low-scored survey response (``survey.low_score``)."""
    response_id = str(data["response_id"])
    if uow.session.scalar(select(Ticket.id).where(Ticket.survey_response_id == response_id)) is not None:
        return  # the same response again (a redelivery, or a republished event)
    customer_id = str(data["customer_id"])
    try:
        customer_id = load_customer(uow, customer_id, follow=True).id
    except NotFound:
        log.warning("low score of an unknown customer", extra={"customer_id": customer_id})
        customer_id = None
    subject, description = domain.recovery_ticket_text(
        data["low_questions"], data.get("answers") or {}, data.get("product"), data.get("comment")
    )
    body = {
        "subject": subject,
        "description": description,
        "category": "service_recovery",
        "priority": "urgent",
        "channel": "survey",
        "customer_id": customer_id,
        "assignee_id": None,
        "call_id": data.get("call_id"),
        "survey_response_id": response_id,
        "tags": ["low_score"],
    }
    open_ticket(uow, body, actor_id=None, now=utcnow())  # the consumer commits, with the event's id


def record_call(uow: UnitOfWork, data: dict) -> None:
    """``call.completed``: a connected call linked to a ticket is its first response, if none yet."""
    ticket_id, answered = data.get("ticket_id"), data.get("answered_at")
    if ticket_id is None or answered is None:
        return  # not linked, or never connected
    answered_at = answered if isinstance(answered, datetime) else datetime.fromisoformat(answered)
    if answered_at.tzinfo is None:
        answered_at = answered_at.replace(tzinfo=UTC)
    try:
        ticket = load_ticket(uow, str(ticket_id), for_update=True)
    except NotFound:
        log.warning("a call linked to an unknown ticket", extra={"ticket_id": str(ticket_id)})
        return
    if ticket.first_responded_at is not None:
        return
    at = max(answered_at.astimezone(UTC), ticket.created_at)  # a ticket opened during the call
    extra = {}
    if ticket.call_id is None:
        extra["call_id"] = {"old": None, "new": data["call_id"]}
    first_response(uow, ticket, at, data.get("agent_id"), extra)
