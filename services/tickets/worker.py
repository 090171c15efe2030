"""``python -m services.tickets.worker [relay|consume|jobs|all]``.

Its periodic jobs: every ``SLA_CHECK_SECONDS`` (30 by default) the tickets past a due time are
flagged and ``ticket.sla_breached`` is announced once per ticket and target; every 6 hours the
segments of customers whose purchases aged out of the last 12 months are recomputed.
"""

import logging
from datetime import UTC, datetime, timedelta

from shared.config import Settings
from shared.db import Database
from shared.unit_of_work import UnitOfWork
from shared.worker import PeriodicJob, run_worker

from . import service
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


def jobs(settings: Settings | None = None) -> dict[str, PeriodicJob]:
    interval = float((settings or Settings.from_env("tickets")).option("SLA_CHECK_SECONDS", "30"))
    return {
        "sla_breaches": PeriodicJob(interval, flag_sla_breaches),
        "segments": PeriodicJob(SEGMENT_REFRESH_SECONDS, refresh_segments),
    }


if __name__ == "__main__":
    run_worker("tickets", MIGRATIONS, HANDLERS, jobs=jobs())
