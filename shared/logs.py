"""JSON logs that carry the request (correlation) id wherever the work goes.

The id lives in a context variable: the web layer sets it from ``X-Request-ID``, the
consumer sets it from the envelope it handles, and the outbox stamps it on every event
written meanwhile, so one id follows a request across services and events.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import uuid
from contextlib import contextmanager

from pythonjsonlogger.json import JsonFormatter

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
_service_name = "unknown"


def current_correlation_id() -> str:
    """The id of the work in progress, or a new one for work that starts here."""
    return correlation_id.get() or new_id()


def new_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def correlated(value: str | None):
    token = correlation_id.set(value)
    try:
        yield
    finally:
        correlation_id.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.service = _service_name
        record.request_id = correlation_id.get()
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record, ours and the libraries', to stdout as one JSON object."""
    global _service_name
    _service_name = service
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{service}{request_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pika and Alembic narrate their internals at INFO; their warnings are what matter
    # (shared.db logs each migration it applies).
    for chatty in ("pika", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
