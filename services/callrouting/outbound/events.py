"""Events of the call lists (outbound).

Publishes:
- ``callentry.completed``: once per recorded outcome (``service.record_outcome``).

Consumes:
- ``purchase.recorded``: a follow-up entry per active post-purchase campaign
  (``service.schedule_purchase_followups``);
- ``survey.completed``: a contact with the customer, for the contact-frequency rule
  (``service.record_survey_contact``);
- ``followup.requested``: a re-survey (or callback) entry, once per request
  (``service.schedule_followup``);
- after the replica (``customer.created``/``updated``/``merged``, wired in ``..events``): the
  customer's consent onto the do-not-call list and their zone onto their open entries
  (``service.sync_customer``); a merge moves the duplicate's entries, contacts and marks
  (``service.move_merged_customer``).
"""

from __future__ import annotations

from shared.consumer import Handler
from shared.events import Envelope
from shared.unit_of_work import UnitOfWork

from . import service

PUBLISHES = ("callentry.completed",)


def purchase_recorded(uow: UnitOfWork, envelope: Envelope) -> None:
    service.schedule_purchase_followups(uow, envelope.data)


def survey_completed(uow: UnitOfWork, envelope: Envelope) -> None:
    service.record_survey_contact(uow, envelope.data)


def followup_requested(uow: UnitOfWork, envelope: Envelope) -> None:
    service.schedule_followup(uow, envelope.data)


def customer_recorded(uow: UnitOfWork, envelope: Envelope) -> None:
    """After the replica took ``customer.created``/``updated``."""
    service.sync_customer(uow, str(envelope.data["customer_id"]), envelope.occurred_at)


def customer_merged(uow: UnitOfWork, envelope: Envelope) -> None:
    """After the replica took ``customer.merged``."""
    service.move_merged_customer(uow, str(envelope.data["merged_customer_id"]), str(envelope.data["into_customer_id"]))


HANDLERS: dict[str, Handler] = {
    "purchase.recorded": purchase_recorded,
    "survey.completed": survey_completed,
    "followup.requested": followup_requested,
}
