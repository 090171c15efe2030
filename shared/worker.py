"""The event worker of a service: its outbox relay, its consumer, or both.

    python -m services.<name>.worker relay     # send this service's outbox
    python -m services.<name>.worker consume   # handle the events routed to it
    python -m services.<name>.worker all       # both, one thread (and connection) each

SIGINT/SIGTERM stop it cleanly: in-flight batches finish, unacked messages go back.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from shared.config import Settings
from shared.consumer import Consumer, Handler
from shared.db import Database, Migrations, migrate
from shared.logs import configure_logging
from shared.relay import OutboxRelay

log = logging.getLogger(__name__)


def run_worker(service: str, migrations: Migrations, handlers: dict[str, Handler], argv=None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}.worker")
    parser.add_argument("role", choices=["relay", "consume", "all"], nargs="?", default="all")
    args = parser.parse_args(argv)

    settings = Settings.from_env(service)
    configure_logging(service, settings.log_level)
    database = Database(settings.database_url)
    migrate(database, migrations)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    runners = []
    if args.role in ("relay", "all"):
        runners.append(OutboxRelay(database, settings, stop).run)
    if args.role in ("consume", "all"):
        if handlers:
            runners.append(Consumer(database, settings, handlers, stop).run)
        elif args.role == "consume":
            log.info("this service consumes no events")
    died = []

    def guarded(run):
        def target():
            try:
                run()
            except BaseException:
                # Half a worker is worse than none: stop the rest and let the supervisor restart us.
                log.exception("worker thread died")
                died.append(run)
                stop.set()

        return target

    threads = [threading.Thread(target=guarded(run), name=run.__self__.__class__.__name__) for run in runners]
    for thread in threads:
        thread.start()
    log.info("worker started", extra={"role": args.role})
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=0.5)
    database.dispose()
    if died:
        raise SystemExit(1)
