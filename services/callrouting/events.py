"""Every event callrouting publishes and consumes, in one place (each half lists its own in
``outbound/events.py`` and ``inbound/events.py``; ``tests/callrouting/test_events_catalog.py``
holds these lists to ``shared.event_catalog``, and the consumer checks ``HANDLERS`` against
the catalog at start).

Publishes:
- outbound: ``callentry.completed``;
- inbound: ``call.started``, ``call.answered``, ``call.abandoned``, ``call.completed``,
  ``agent.state_changed``.

Consumes:
- ``customer.created``, ``customer.updated``: the customer replica (both halves read it); then
  the customer's consent onto the do-not-call list and their zone onto their open entries
  (outbound), and a new customer holding an erased customer's number goes on the list
  (``privacy.recheck_erased_numbers``);
- ``customer.merged``: the replica's redirect; the duplicate's open entries, contacts and
  do-not-call marks move to the survivor (outbound);
- ``purchase.recorded``, ``survey.completed``, ``followup.requested``: outbound;
- ``customer.erased``: the customer's personal data removed in both halves
  (``privacy.on_customer_erased``).
"""

from __future__ import annotations

from shared.consumer import Handler
from shared.events import Envelope
from shared.replicas import customer_replica_handlers
from shared.unit_of_work import UnitOfWork

from . import privacy
from .inbound import events as inbound
from .models import CustomerReplica, CustomerReplicaPhone
from .outbound import events as outbound

PUBLISHES = (*outbound.PUBLISHES, *inbound.PUBLISHES)

_REPLICA = customer_replica_handlers(CustomerReplica, CustomerReplicaPhone)


def customer_recorded(uow: UnitOfWork, envelope: Envelope) -> None:
    _REPLICA[envelope.type](uow, envelope)
    outbound.customer_recorded(uow, envelope)
    privacy.recheck_erased_numbers(uow.session, str(envelope.data["customer_id"]))


def customer_merged(uow: UnitOfWork, envelope: Envelope) -> None:
    _REPLICA["customer.merged"](uow, envelope)
    outbound.customer_merged(uow, envelope)


HANDLERS: dict[str, Handler] = {
    "customer.created": customer_recorded,
    "customer.updated": customer_recorded,
    "customer.merged": customer_merged,
    "customer.erased": privacy.on_customer_erased,
    **outbound.HANDLERS,
    **inbound.HANDLERS,
}
