"""Events of the surveys service.

Publishes (from the use cases, ``responses.py`` and ``incoming.py``, in the transaction of the change):
- ``survey.completed``: every complete response, with its provenance;
- ``survey.low_score``: a complete response that meets the low-score rule (``LOW_SCORE_RECOMMEND_MAX``,
  ``LOW_SCORE_ANY_MAX``); the tickets service opens a service-recovery ticket from it;
- ``followup.requested`` (purpose ``resurvey``): once per response, when its service-recovery ticket is
  resolved; due ``RESURVEY_DELAY_DAYS`` (7) after the resolution.

Consumes: ``customer.created``/``updated``/``merged`` (the customer replica; a merge also moves the
duplicate's responses to the survivor), ``purchase.recorded`` (a score's product),
``callentry.completed`` (customers reached, for the response rate; provenance of a survey on that entry),
``ticket.resolved`` (closes the loop), ``customer.erased`` (comments and the replica's details
removed, scores kept: ``privacy.erase_customer``). A follow-up entry that ends without a survey gets its
link by mail (``mail.after_call``).
"""

from __future__ import annotations

from shared.config import Settings
from shared.consumer import Handler
from shared.events import Envelope
from shared.mail import MailSettings
from shared.replicas import customer_replica_handlers
from shared.unit_of_work import UnitOfWork

from . import incoming, mail, privacy
from .mail_api import public_base
from .models import CustomerReplica, CustomerReplicaPhone

_replica = customer_replica_handlers(CustomerReplica, CustomerReplicaPhone)


def customer_merged(uow: UnitOfWork, envelope: Envelope) -> None:
    _replica["customer.merged"](uow, envelope)
    incoming.move_responses_to_survivor(uow, envelope.data["merged_customer_id"], envelope.data["into_customer_id"])


def purchase_recorded(uow: UnitOfWork, envelope: Envelope) -> None:
    incoming.record_purchase(uow, envelope.data)


def callentry_completed(uow: UnitOfWork, envelope: Envelope) -> None:
    incoming.record_contact(uow, envelope.data)
    invite_by_mail_after_call(uow, envelope.data)


def invite_by_mail_after_call(uow: UnitOfWork, data: dict) -> None:
    """An entry that ended without a survey: its link by mail. A campaign that chose
    ``link_by_email`` always gets it; for on-call campaigns it is the fallback that
    SURVEY_MAIL_AFTER_CALLS=0 turns off."""
    settings = Settings.from_env("surveys")
    chosen = data.get("survey_delivery") == "link_by_email"
    if not chosen and settings.option("SURVEY_MAIL_AFTER_CALLS", "1") != "1":
        return
    mail.after_call(
        uow,
        MailSettings.from_settings(settings),
        settings.option("SURVEY_LINK_SECRET"),
        public_base(settings),
        data,
        mail.default_template_id(uow, settings),
    )


def ticket_resolved(uow: UnitOfWork, envelope: Envelope) -> None:
    settings = Settings.from_env("surveys")
    incoming.request_resurvey(uow, envelope.data, incoming.resurvey_delay(settings))


HANDLERS: dict[str, Handler] = {
    "customer.created": _replica["customer.created"],
    "customer.updated": _replica["customer.updated"],
    "customer.merged": customer_merged,
    "purchase.recorded": purchase_recorded,
    "callentry.completed": callentry_completed,
    "ticket.resolved": ticket_resolved,
    "customer.erased": privacy.on_customer_erased,
}
