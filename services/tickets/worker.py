"""``python -m services.tickets.worker [relay|consume|jobs|all]``.

Its periodic jobs: every ``SLA_CHECK_SECONDS`` (30 by default) the tickets past a due time are
flagged and ``ticket.sla_breached`` is announced once per ticket and target; every 6 hours the
segments of customers whose purchases aged out of the last 12 months are recomputed; every hour
personal data past its retention is anonymised (``privacy.apply_retention``).
"""

import logging
from datetime import UTC, datetime, timedelta

from shared.config import Settings
from shared.db import Database
from shared.privacy import RETENTION_JOB_SECONDS, hash_secret
from shared.unit_of_work import UnitOfWork
from shared.worker import PeriodicJob, run_worker

from . import privacy, service
from .events import HANDLERS
from .models import MIGRATIONS

log = logging.getLogger(__name__)
BATCH = 500


def flag_sla_breaches(database: Database, settings: Settings) -> None:
    """One round: batches of tickets until none is past due and unflagged."""
    while True:
        with UnitOfWork(database, source=settings.service) as uow:
            examined, breaches = service.flag_sla_breaches(uow, limit=BATCH)
        if breaches:
            log.info("SLA breaches flagged", extra={"count": breaches})
        if examined < BATCH:
            return


SEGMENT_REFRESH_SECONDS = 6 * 3600
SEGMENT_REFRESH_LOOKBACK = timedelta(days=2)  # overlapping rounds: a missed one is caught up


def refresh_segments(database: Database, settings: Settings) -> None:
    """Segments of customers whose purchases have just aged out of the last 12 months."""
    now = datetime.now(UTC)
    with UnitOfWork(database, source=settings.service) as uow:
        changed = service.refresh_segments(
            uow, service.SegmentThresholds.from_settings(settings), now - SEGMENT_REFRESH_LOOKBACK, now
        )
    if changed:
        log.info("segments refreshed", extra={"count": changed})


def apply_retention(database: Database, settings: Settings) -> None:
    """Personal data past its retention (RETENTION_* settings, docs/privacy.md) anonymised or erased."""
    deadline = timedelta(minutes=float(settings.option("PRIVACY_ERASURE_DEADLINE_MINUTES", "60")))
    with UnitOfWork(database, source=settings.service) as uow:
        done = privacy.apply_retention(uow, settings, hash_secret(), deadline, datetime.now(UTC))
    if any(done.values()):
        log.info("retention applied", extra=done)


def jobs(settings: Settings | None = None) -> dict[str, PeriodicJob]:
    interval = float((settings or Settings.from_env("tickets")).option("SLA_CHECK_SECONDS", "30"))
    return {
        "sla_breaches": PeriodicJob(interval, flag_sla_breaches),
        "segments": PeriodicJob(SEGMENT_REFRESH_SECONDS, refresh_segments),
        "retention": PeriodicJob(RETENTION_JOB_SECONDS, apply_retention),
    }


if __name__ == "__main__":
    run_worker("tickets", MIGRATIONS, HANDLERS, jobs=jobs())
