"""A service's real consumer that also counts: ``python -m tests.scale.counting_worker <service>``.

It is ``python -m services.<service>.worker consume`` with every handler of the service wrapped
so that, in the same transaction as the handler's effect (and the consumer's dedupe record),
one row per application goes into ``test_applications``. A redelivery that the dedupe stops
adds no row, and one it failed to stop adds a second: the scale test counts them.
"""

from __future__ import annotations

import importlib
import sys

from shared.worker import run_worker
from tests.support.counting import counting_handler


def counted(handler):
    def handle(uow, envelope):
        handler(uow, envelope)
        counting_handler(uow, envelope)

    return handle


def main(service: str) -> None:
    events = importlib.import_module(f"services.{service}.events")
    models = importlib.import_module(f"services.{service}.models")
    handlers = {event_type: counted(handler) for event_type, handler in events.HANDLERS.items()}
    run_worker(service, models.MIGRATIONS, handlers, argv=["consume"])


if __name__ == "__main__":
    main(sys.argv[1])
