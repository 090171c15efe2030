"""The event worker of a service: its outbox relay, its consumer, or both.

    python -m services.<name>.worker relay     # send this service's outbox
    python -m services.<name>.worker consume   # handle the events routed to it
    python -m services.<name>.worker jobs      # its periodic jobs (SLA breaches, housekeeping ...)
    python -m services.<name>.worker all       # all of them, one thread (and connection) each

A periodic job is ``PeriodicJob(interval_seconds, run)`` where ``run(database, settings)``
does one round in its own unit of work; a round that fails is logged and retried at the
next interval. Several workers may run the same jobs, so a round must be safe to run
concurrently (claim rows with conditional updates, publish through the outbox).

SIGINT/SIGTERM stop it cleanly: in-flight batches finish, unacked messages go back.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared import idempotency
from shared.config import Settings
from shared.consumer import Consumer, Handler
from shared.db import Database, Migrations, migrate
from shared.logs import configure_logging
from shared.relay import OutboxRelay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    interval_seconds: float
    run: Callable[[Database, Settings], None]


class PeriodicJobs:
    """Runs each job every ``interval_seconds`` until stopped."""

    def __init__(self, database: Database, settings: Settings, jobs: dict[str, PeriodicJob], stop: threading.Event):
        self.database, self.settings, self.jobs, self.stop = database, settings, jobs, stop

    def run(self) -> None:
        due = dict.fromkeys(self.jobs, 0.0)
        log.info("periodic jobs started", extra={"jobs": sorted(self.jobs)})
        while not self.stop.is_set():
            for name, job in self.jobs.items():
                if time.monotonic() < due[name]:
                    continue
                try:
                    job.run(self.database, self.settings)
                except Exception:
                    log.exception("periodic job failed", extra={"job": name})
                due[name] = time.monotonic() + job.interval_seconds
            self.stop.wait(max(0.0, min(due.values()) - time.monotonic()))


def purge_idempotency_keys(database: Database, settings: Settings) -> None:
    with database.sessions() as session:
        purged = idempotency.purge_expired(session)
        session.commit()
    if purged:
        log.info("purged expired idempotency keys", extra={"count": purged})


HOUSEKEEPING = {"purge_idempotency_keys": PeriodicJob(3600.0, purge_idempotency_keys)}


def run_worker(
    service: str,
    migrations: Migrations,
    handlers: dict[str, Handler],
    argv=None,
    jobs: dict[str, PeriodicJob] | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}.worker")
    parser.add_argument("role", choices=["relay", "consume", "jobs", "all"], nargs="?", default="all")
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
    if args.role in ("jobs", "all"):
        runners.append(PeriodicJobs(database, settings, {**HOUSEKEEPING, **(jobs or {})}, stop).run)
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
