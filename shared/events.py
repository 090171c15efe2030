"""Events as plain data: the envelope every event travels in, validated both ways.

An envelope is checked against its own schema and its data against the catalog entry for
its (type, version) when it is written to the outbox and again when a consumer receives
it; a message that fails on receipt is parked at once, it can never succeed on retry.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from dataclasses import fields as fields_of
from datetime import UTC, datetime

from marshmallow import RAISE, Schema, fields, validate

from shared import event_catalog
from shared.logs import current_correlation_id

EVENT_TYPE_PATTERN = r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$"


class InvalidEvent(ValueError):
    """An envelope or its data does not match the contract."""

    def __init__(self, errors: dict):
        super().__init__(json.dumps(errors, default=str, sort_keys=True))
        self.errors = errors


def utc_now() -> datetime:
    return datetime.now(UTC)


def isoformat_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class EnvelopeSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.Regexp(EVENT_TYPE_PATTERN))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    occurred_at = fields.AwareDateTime(required=True, format="iso")
    source = fields.String(required=True, validate=validate.Length(min=1, max=64))
    correlation_id = fields.String(required=True, validate=validate.Length(min=1, max=128))
    data = fields.Dict(required=True)


_ENVELOPE_SCHEMA = EnvelopeSchema()  # schemas are reusable; building one is not cheap


@dataclass(frozen=True)
class Envelope:
    type: str
    data: dict
    source: str
    version: int = 1
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: str = field(default_factory=lambda: isoformat_utc(utc_now()))
    correlation_id: str = field(default_factory=current_correlation_id)

    def validate(self) -> Envelope:
        """Check an envelope about to be published: the envelope, then the exact contract."""
        errors = _ENVELOPE_SCHEMA.validate(self.as_dict())
        if errors:
            raise InvalidEvent(errors)
        return self.validate_contract()

    def validate_contract(self) -> Envelope:
        """Check the data against the exact contract of its type and version, and nothing else:
        for an envelope built here (``UnitOfWork.publish``), whose id, time and correlation id
        this module makes and whose source is the service's own name. Checking those again
        cost as much as checking the data."""
        return self._validate_data(receiving=False)

    def _validate_data(self, *, receiving: bool) -> Envelope:
        entry = event_catalog.lookup(self.type, self.version)
        if entry is None:
            raise InvalidEvent({"type": [f"{self.type} v{self.version} is not in the event catalog"]})
        # A publisher must send exactly the contract; a consumer tolerates fields added
        # by a newer publisher so that additive changes need no lock-step deploys.
        schema = entry.receiving_schema if receiving else entry.publishing_schema
        data_errors = schema.validate(self.data)
        if data_errors:
            raise InvalidEvent({"data": data_errors})
        return self

    def as_dict(self) -> dict:
        # A shallow dict: dataclasses.asdict deep-copies, which costs more than the rest of publishing.
        return {name: getattr(self, name) for name in _FIELDS}

    def to_json(self) -> bytes:
        return json.dumps(self.as_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        """Parse and validate a received message; raise InvalidEvent when it is not one."""
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidEvent({"_body": [f"not JSON: {error}"]}) from error
        if not isinstance(document, dict):
            raise InvalidEvent({"_body": ["an envelope is a JSON object"]})
        errors = _ENVELOPE_SCHEMA.validate(document)
        if errors:
            raise InvalidEvent(errors)
        return cls(**document)._validate_data(receiving=True)


_FIELDS = tuple(field.name for field in fields_of(Envelope))
