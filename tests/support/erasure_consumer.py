"""Call routing's real consumer in its own process, for the test that kills it mid-erasure:
``python -m tests.support.erasure_consumer``.

Every handler is the service's own; ``customer.erased`` also records each real application of the
erasure in ``test_applications`` (in the handler's transaction), so the test can count them. Like
``consumer_process`` it can pause to be killed: ``PAUSE_AT=handling`` (the erasure applied, not
committed) or ``PAUSE_AT=committed`` (committed, not acked), touching ``$PAUSE_FLAG`` first.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import shared.consumer as consumer_module
from services.callrouting import privacy
from services.callrouting.events import HANDLERS
from services.callrouting.models import PrivacyErasure
from shared.config import Settings
from shared.consumer import Consumer
from shared.db import Database
from shared.logs import configure_logging
from shared.privacy import erasure_handler
from tests.support.counting import counting_handler, metadata

pause_at = os.environ.get("PAUSE_AT")
pause_flag = Path(os.environ.get("PAUSE_FLAG", "/nonexistent"))
erasing = threading.local()


def pause_here() -> None:
    pause_flag.touch()
    time.sleep(600)  # until the test kills us


def counted_erasure(session, data) -> None:
    privacy.erase_customer(session, data)
    counting_handler(erasing.uow, erasing.envelope)


_erase = erasure_handler(PrivacyErasure, counted_erasure)


def on_customer_erased(uow, envelope) -> None:
    erasing.uow, erasing.envelope = uow, envelope
    _erase(uow, envelope)
    uow.session.flush()
    erasing.paused_kind = envelope.type
    if pause_at == "handling":
        pause_here()


if pause_at == "committed":
    _apply_once = consumer_module.apply_once

    def apply_then_pause(*args, **kwargs):
        outcome = _apply_once(*args, **kwargs)
        if getattr(erasing, "paused_kind", None) == "customer.erased":
            pause_here()
        return outcome

    consumer_module.apply_once = apply_then_pause


def main() -> None:
    settings = Settings.from_env("callrouting")
    configure_logging("callrouting")
    database = Database(settings.database_url)
    metadata.create_all(database.engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Consumer(database, settings, {**HANDLERS, "customer.erased": on_customer_erased}, stop).run()


if __name__ == "__main__":
    main()
