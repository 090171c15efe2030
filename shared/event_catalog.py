"""The event catalog: every event type, its data contract, who publishes and who consumes it.

This is the single source of truth for the contracts between services; ``docs/events.md``
describes the same entries for people and a test keeps the two in step. The broker
topology is derived from the ``consumers`` column, so a consumer's queue is bound before
anything is published to it (see ``shared.topology``).

To change a contract incompatibly, add a new version beside the old one; additive
changes (a new optional field) keep the version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

E164 = r"^\+[1-9]\d{6,14}$"


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    schema: type[Schema]
    publisher: str
    consumers: tuple[str, ...]
    summary: str
    publishing_schema: Schema = field(init=False, repr=False, compare=False)
    receiving_schema: Schema = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # A publisher sends exactly the contract; a consumer ignores fields it does not know.
        object.__setattr__(self, "publishing_schema", self.schema(unknown=RAISE))
        object.__setattr__(self, "receiving_schema", self.schema(unknown=EXCLUDE))


class CustomerCreatedV1(Schema):
    customer_id = fields.UUID(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    phone = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(E164))
    email = fields.Email(load_default=None, allow_none=True)


CATALOG: dict[tuple[str, int], EventType] = {
    (entry.name, entry.version): entry
    for entry in [
        EventType(
            name="customer.created",
            version=1,
            schema=CustomerCreatedV1,
            publisher="tickets",
            consumers=("callrouting", "surveys", "gateway"),
            summary="A customer was added to the directory.",
        ),
    ]
}


def lookup(name: str, version: int) -> EventType | None:
    return CATALOG.get((name, version))


def consumed_by(service: str) -> list[str]:
    """The event types (routing keys) a service's queue is bound to."""
    return sorted({entry.name for entry in CATALOG.values() if service in entry.consumers})


def consuming_services() -> list[str]:
    return sorted({service for entry in CATALOG.values() for service in entry.consumers})
