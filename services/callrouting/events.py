"""Events of the callrouting service.

Publishes: ``callentry.completed`` (``service.record_outcome``, once per recorded outcome).
Consumes:
- ``customer.created``, ``customer.updated``: the local customer replica; then the customer's
  consent onto the do-not-call list and their time zone onto their open entries;
- ``customer.merged``: the replica's redirect; the duplicate's open entries, contacts and
  do-not-call marks move to the survivor;
- ``purchase.recorded``: a follow-up entry per active post-purchase campaign;
- ``survey.completed``: a contact with the customer, for the contact-frequency rule;
- ``followup.requested``: a re-survey (or callback) entry, once per request;
- ``customer.erased``: the customer's personal data removed (``privacy.erase_customer``); a customer
  created later with one of their numbers goes on the do-not-call list (``privacy.recheck_erased_numbers``).
"""

from __future__ import annotations

from shared.consumer import Handler
from shared.events import Envelope
from shared.replicas import customer_replica_handlers
from shared.unit_of_work import UnitOfWork

from . import privacy
from .models import CustomerReplica, CustomerReplicaPhone
from .outbound import service

_REPLICA = customer_replica_handlers(CustomerReplica, CustomerReplicaPhone)


def customer_recorded(uow: UnitOfWork, envelope: Envelope) -> None:
    _REPLICA[envelope.type](uow, envelope)
    service.sync_customer(uow, str(envelope.data["customer_id"]), envelope.occurred_at)
    privacy.recheck_erased_numbers(uow.session, str(envelope.data["customer_id"]))


def customer_merged(uow: UnitOfWork, envelope: Envelope) -> None:
    _REPLICA["customer.merged"](uow, envelope)
    service.move_merged_customer(uow, str(envelope.data["merged_customer_id"]), str(envelope.data["into_customer_id"]))


def purchase_recorded(uow: UnitOfWork, envelope: Envelope) -> None:
    service.schedule_purchase_followups(uow, envelope.data)


def survey_completed(uow: UnitOfWork, envelope: Envelope) -> None:
    service.record_survey_contact(uow, envelope.data)


def followup_requested(uow: UnitOfWork, envelope: Envelope) -> None:
    service.schedule_followup(uow, envelope.data)


HANDLERS: dict[str, Handler] = {
    "customer.created": customer_recorded,
    "customer.updated": customer_recorded,
    "customer.merged": customer_merged,
    "purchase.recorded": purchase_recorded,
    "survey.completed": survey_completed,
    "followup.requested": followup_requested,
    "customer.erased": privacy.on_customer_erased,
}
