"""HTTP routes of the callrouting service."""

from __future__ import annotations

from shared.replicas import customer_replica_blueprint
from shared.web import unit_of_work

from .models import CustomerReplica

customer_replicas = customer_replica_blueprint(CustomerReplica, unit_of_work)
