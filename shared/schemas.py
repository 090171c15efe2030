"""The marshmallow pieces every service's API is made of, so every API reads the same way
(the convention is ``docs/api.md``; ``tests/test_api_convention.py`` holds every spec to it).

- :class:`Timestamp`: every moment an API answers is RFC 3339 in UTC with ``Z``, to the
  microsecond (``2026-12-04T09:30:00.000000Z``), the same text the events carry.
- :func:`page_args` and :func:`page_of`: every collection takes ``limit`` and ``offset``
  and answers ``{items, total, limit, offset}``; ``total`` counts every match, never a cap.
"""

from __future__ import annotations

from datetime import UTC, datetime

from marshmallow import Schema, fields, validate
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shared.events import isoformat_utc

MAX_OFFSET = 1_000_000_000  # past any list; PostgreSQL's OFFSET is a bigint, and a 500 is no answer


class Timestamp(fields.AwareDateTime):
    """An aware moment, answered as RFC 3339 UTC with ``Z``; read from any RFC 3339 offset
    (a time without one is taken as UTC; ``default_timezone=None`` refuses it instead)."""

    def __init__(self, *, default_timezone=UTC, **kwargs):
        metadata = kwargs.setdefault("metadata", {})
        metadata.setdefault("example", "2026-12-04T09:30:00.000000Z")
        super().__init__(default_timezone=default_timezone, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            raise ValueError(f"{attr}: a naive datetime does not say its zone")
        return isoformat_utc(value)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).astimezone(UTC)


def page_args(*, default: int = 50, maximum: int = 500, name: str | None = None) -> type[Schema]:
    """The query schema of a collection: ``limit`` (``default``, at most ``maximum``) and
    ``offset``; subclass it to add the collection's filters."""

    class PageArgs(Schema):
        limit = fields.Integer(
            load_default=default,
            validate=validate.Range(min=1, max=maximum),
            metadata={"description": f"how many items, {default} unless said, at most {maximum}"},
        )
        offset = fields.Integer(
            load_default=0,
            validate=validate.Range(min=0, max=MAX_OFFSET),
            metadata={"description": "how many matching items to skip"},
        )

    PageArgs.__name__ = name or f"PageArgs{default}x{maximum}"
    return PageArgs


PageArgs = page_args()


def page_schema(item: type[Schema] | Schema, name: str) -> type[Schema]:
    """The answer of a collection of ``item``: ``{items, total, limit, offset}``."""
    page = Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item), required=True),
            "total": fields.Integer(required=True, metadata={"description": "every match, not just this page"}),
            "limit": fields.Integer(required=True),
            "offset": fields.Integer(required=True),
        },
        name=name,
    )
    return page


def page(items: list, total: int, args: dict) -> dict:
    """A collection's answer from the items of this page, the total and the request's paging."""
    return {"items": items, "total": total, "limit": args["limit"], "offset": args["offset"]}


def page_of(session: Session, statement: Select, limit: int, offset: int, *, scalars: bool = False) -> tuple[list, int]:
    """One page of ``statement``'s rows (or, with ``scalars``, its first column's values) and
    how many rows it has in all.

    ``statement`` must be ordered, ending on a unique column, so pages never overlap. A short
    page that is not past the end says the total itself (``offset`` + its rows); only a full
    page, or an empty one past the first, costs the count query.
    """
    result = session.execute(statement.limit(limit).offset(offset))
    rows = list(result.scalars() if scalars else result)
    if len(rows) < limit and (rows or offset == 0):
        return rows, offset + len(rows)
    total = session.scalar(select(func.count()).select_from(statement.order_by(None).subquery())) or 0
    return rows, total
