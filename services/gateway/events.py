"""Events of the gateway service.

Publishes: nothing yet.
Consumes: ``customer.created`` (keeps a local replica of the customer).
"""

from __future__ import annotations

from shared.consumer import Handler
from shared.replicas import on_customer_created

from .models import CustomerReplica

HANDLERS: dict[str, Handler] = {
    "customer.created": on_customer_created(CustomerReplica),
}
