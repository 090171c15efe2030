"""Events of the tickets service.

Publishes (through the outbox, see ``service.py``): ``customer.created``.
Consumes: nothing yet.
"""

from __future__ import annotations

from shared.consumer import Handler

HANDLERS: dict[str, Handler] = {}
