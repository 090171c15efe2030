"""The callrouting service's tables."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import DeclarativeBase

from shared import backbone
from shared.db import Migrations
from shared.replicas import CustomerReplicaColumns, CustomerReplicaPhoneColumns


class Base(DeclarativeBase):
    pass


class CustomerReplica(CustomerReplicaColumns, Base):
    """The customers this service has heard of, from the directory's events."""


class CustomerReplicaPhone(CustomerReplicaPhoneColumns, Base):
    """Every number of those customers."""


MIGRATIONS = Migrations(versions=Path(__file__).parent / "migrations", metadata=(Base.metadata, backbone.metadata))
