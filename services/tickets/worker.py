"""``python -m services.tickets.worker [relay|consume|jobs|all]``.

Its periodic job flags SLA breaches: every ``SLA_CHECK_SECONDS`` (30 by default) the tickets
past a due time are flagged and ``ticket.sla_breached`` is announced once per ticket and target.
"""

import logging

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


def jobs(settings: Settings | None = None) -> dict[str, PeriodicJob]:
    interval = float((settings or Settings.from_env("tickets")).option("SLA_CHECK_SECONDS", "30"))
    return {"sla_breaches": PeriodicJob(interval, flag_sla_breaches)}


if __name__ == "__main__":
    run_worker("tickets", MIGRATIONS, HANDLERS, jobs=jobs())
