"""Events of the gateway service.

Publishes: nothing yet.
Consumes: ``customer.created``, ``customer.updated``, ``customer.merged`` (a local replica of the customer),
``customer.erased`` (the replica's details removed; ``privacy.erase_customer``).
"""

from __future__ import annotations

from shared.consumer import Handler
from shared.replicas import customer_replica_handlers

from .models import CustomerReplica, CustomerReplicaPhone
from .privacy import on_customer_erased

HANDLERS: dict[str, Handler] = {
    **customer_replica_handlers(CustomerReplica, CustomerReplicaPhone),
    "customer.erased": on_customer_erased,
}
