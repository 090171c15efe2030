"""Events of the surveys service.

Publishes: nothing yet.
Consumes: ``customer.created``, ``customer.updated``, ``customer.merged`` (a local replica of the customer).
"""

from __future__ import annotations

from shared.consumer import Handler
from shared.replicas import customer_replica_handlers

from .models import CustomerReplica, CustomerReplicaPhone

HANDLERS: dict[str, Handler] = {
    **customer_replica_handlers(CustomerReplica, CustomerReplicaPhone),
}
