"""Events as plain data: the envelope every event travels in, validated both ways.

An envelope is checked against its own schema and its data against the catalog entry for
its (type, version) when it is written to the outbox and again when a consumer receives
it; a message that fails on receipt is parked at once, it can never succeed on retry.
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import fields as fields_of
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate

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


# --- validating fast ------------------------------------------------------------------
#
# ``Schema.validate`` costs 30 to 50 microseconds per event, most of it marshmallow's
# general machinery (error stores, partial loading, hooks), and every write request pays it
# once per event it publishes. ``_passes(schema, data)`` answers the common question, "is
# this valid?", by walking a checker built once per schema. It is written to be sound one
# way only: when it says yes, ``schema.validate`` finds no error (each field is checked
# with marshmallow's own rules: the same type test, then the field's own validators, or
# ``field.deserialize`` itself for the kinds not spelt out below). When it is not sure it
# says no, and the caller asks marshmallow, whose answer and error messages stand. So the
# contract decides exactly as before; the fast path only skips work for data that passes.

_UNSURE = object()  # "ask marshmallow": never a valid field value


def _parse_string(value):
    return value if type(value) is str else _UNSURE


def _parse_uuid(value):
    if type(value) is not str:
        return _UNSURE
    try:
        return uuid.UUID(value)
    except ValueError:
        return _UNSURE


def _parse_boolean(value):
    return value if value is True or value is False else _UNSURE


def _parse_integer(value):
    return value if type(value) is int else _UNSURE  # bool is not int here, as in marshmallow


def _parse_float(value):
    if type(value) is int and -(2**53) <= value <= 2**53:  # seconds are often whole: float() of it is exact
        return float(value)
    return value if type(value) is float and math.isfinite(value) else _UNSURE


def _parse_dict(value):
    return value if type(value) is dict else _UNSURE


def _iso_datetime_parser(aware: bool) -> Callable[[Any], Any]:
    def parse(value):
        if type(value) is not str:
            return _UNSURE
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return _UNSURE
        if aware and (moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None):
            return _UNSURE
        return moment

    return parse


def _list_parser(inner: fields.Field) -> Callable[[Any], Any]:
    check = _field_check(inner)

    def parse(value):
        if type(value) is not list:
            return _UNSURE
        for each in value:
            if not check(each, None):
                return _UNSURE
        return value  # a List without validators of its own: the items were what mattered

    return parse


def _field_parser(field: fields.Field) -> Callable[[Any], Any] | None:
    """The type test marshmallow applies to this exact field class, or None: use the field itself."""
    kind = type(field)
    if field.pre_load or field.post_load:
        return None
    if kind in (fields.String, fields.Email):  # an Email's address check is one of its validators
        return _parse_string
    if kind is fields.UUID:
        return _parse_uuid
    if kind is fields.Boolean:
        return _parse_boolean
    if kind is fields.Integer:
        return _parse_integer
    if kind is fields.Float:
        return _parse_float
    if kind in (fields.DateTime, fields.AwareDateTime) and field.format in ("iso", "iso8601"):
        return _iso_datetime_parser(aware=kind is fields.AwareDateTime)
    if kind is fields.Dict and field.key_field is None and field.value_field is None:
        return _parse_dict
    if kind is fields.List and not field.validators:
        return _list_parser(field.inner)
    return None


def _field_check(field: fields.Field) -> Callable[[Any, Any], bool]:
    parse = _field_parser(field)
    if parse is None:

        def check(value, data, name=field.name):
            try:
                field.deserialize(value, name, data)
            except ValidationError:
                return False
            return True

        return check

    validators = tuple(field.validators)
    allow_none = field.allow_none

    def check(value, _data):
        if value is None:
            return allow_none
        value = parse(value)
        if value is _UNSURE:
            return False
        for validator in validators:
            try:
                validator(value)
            except ValidationError:
                return False
        return True

    return check


class _SchemaCheck:
    def __init__(self, schema: Schema):
        hooks = getattr(schema, "_hooks", None)
        # Hooks (pre_load, validates, validates_schema...) or a partial/many schema: always marshmallow.
        self.usable = isinstance(hooks, dict) and not any(hooks.values()) and not schema.many and not schema.partial
        self.exact = schema.unknown == RAISE
        self.fields = tuple(
            (field.data_key if field.data_key is not None else name, field.required, _field_check(field))
            for name, field in schema.load_fields.items()
        )
        self.known = frozenset(key for key, _, _ in self.fields)

    def passes(self, data) -> bool:
        if not self.usable or type(data) is not dict:
            return False
        if self.exact and not self.known.issuperset(data):
            return False
        for key, required, check in self.fields:
            value = data.get(key, missing)
            if value is missing:
                if required:
                    return False
            elif not check(value, data):
                return False
        return True


@functools.cache
def _schema_check(schema: Schema) -> _SchemaCheck:
    return _SchemaCheck(schema)  # built once per schema instance (the catalog's live for good)


def _passes(schema: Schema, data) -> bool:
    return _schema_check(schema).passes(data)


def _errors(schema: Schema, data) -> dict:
    """marshmallow's errors for ``data``, asked only when the fast check is not sure."""
    return {} if _passes(schema, data) else schema.validate(data)


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
        errors = _errors(_ENVELOPE_SCHEMA, self.as_dict())
        if errors:
            raise InvalidEvent(errors)
        return self._validate_data(receiving=False)

    def _validate_data(self, *, receiving: bool) -> Envelope:
        entry = event_catalog.lookup(self.type, self.version)
        if entry is None:
            raise InvalidEvent({"type": [f"{self.type} v{self.version} is not in the event catalog"]})
        # A publisher must send exactly the contract; a consumer tolerates fields added
        # by a newer publisher so that additive changes need no lock-step deploys.
        schema = entry.receiving_schema if receiving else entry.publishing_schema
        data_errors = _errors(schema, self.data)
        if data_errors:
            raise InvalidEvent({"data": data_errors})
        return self

    def as_dict(self) -> dict:
        # A shallow dict: dataclasses.asdict deep-copies, which costs more than the rest of publishing.
        return {name: getattr(self, name) for name in _FIELDS}

    def to_json(self) -> bytes:
        return self.to_text().encode()

    def to_text(self) -> str:
        return _COMPACT_JSON.encode(self.as_dict())

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        """Parse and validate a received message; raise InvalidEvent when it is not one."""
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidEvent({"_body": [f"not JSON: {error}"]}) from error
        if not isinstance(document, dict):
            raise InvalidEvent({"_body": ["an envelope is a JSON object"]})
        errors = _errors(_ENVELOPE_SCHEMA, document)
        if errors:
            raise InvalidEvent(errors)
        return cls(**document)._validate_data(receiving=True)


_FIELDS = tuple(field.name for field in fields_of(Envelope))
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))  # json.dumps(..., separators=...) builds one per call
