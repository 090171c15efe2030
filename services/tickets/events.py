"""Events of the tickets service.

Publishes (through the outbox, from the use cases): ``customer.created``, ``customer.updated``,
``customer.merged``, ``purchase.recorded``, ``ticket.created``, ``ticket.updated``,
``ticket.status_changed``, ``ticket.resolved``, ``ticket.sla_breached``.
Consumes: ``survey.low_score`` (opens one service-recovery ticket per response) and
``call.completed`` (a connected call linked to a ticket is its first response); their use cases
are in ``consumed.py``.
"""

from __future__ import annotations

from shared.consumer import Handler
from shared.events import Envelope
from shared.unit_of_work import UnitOfWork

from . import consumed


def on_survey_low_score(uow: UnitOfWork, envelope: Envelope) -> None:
    consumed.open_service_recovery(uow, envelope.data)


def on_call_completed(uow: UnitOfWork, envelope: Envelope) -> None:
    consumed.record_call(uow, envelope.data)


HANDLERS: dict[str, Handler] = {
    "survey.low_score": on_survey_low_score,
    "call.completed": on_call_completed,
}
