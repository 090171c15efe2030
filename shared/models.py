"""What every service's ``models.py`` starts from.

Each service still declares its own ``class Base(DeclarativeBase)``: a declarative base
carries the metadata of one database, and every service has its own database (sharing one
base would put every service's tables into every service's migrations).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as an aware UTC time (what ``shared.sqltypes.UtcDateTime`` stores)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new resource id: a random UUID in its canonical text form."""
    return str(uuid.uuid4())
