"""A consumer in its own process, for tests that kill it: ``python -m tests.support.consumer_process``.

It is the real ``shared.consumer.Consumer`` with a handler that records each application
in ``test_applications``. To let a test kill it at a chosen moment, it can pause:

    PAUSE_AT=handling    inside the handler, before the commit (touches $PAUSE_FLAG first)
    PAUSE_AT=committed   after the commit, before the ack (touches $PAUSE_FLAG first)
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import shared.consumer as consumer_module
from shared import event_catalog
from shared.config import Settings
from shared.consumer import Consumer
from shared.db import Database
from shared.logs import configure_logging
from tests.support.counting import counting_handler, metadata

pause_at = os.environ.get("PAUSE_AT")
pause_flag = Path(os.environ.get("PAUSE_FLAG", "/nonexistent"))


def pause_here() -> None:
    pause_flag.touch()
    time.sleep(600)  # until the test kills us


def handler(uow, envelope) -> None:
    counting_handler(uow, envelope)
    uow.session.flush()
    if pause_at == "handling":
        pause_here()


if pause_at == "committed":
    _apply_once = consumer_module.apply_once

    def apply_then_pause(*args, **kwargs):
        outcome = _apply_once(*args, **kwargs)
        pause_here()
        return outcome

    consumer_module.apply_once = apply_then_pause


def main() -> None:
    settings = Settings.from_env("gateway")
    configure_logging("gateway")
    database = Database(settings.database_url)
    metadata.create_all(database.engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    handlers = dict.fromkeys(event_catalog.consumed_by("gateway"), handler)  # only customer.created arrives
    Consumer(database, settings, handlers, stop).run()


if __name__ == "__main__":
    main()
