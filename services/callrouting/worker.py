"""``python -m services.callrouting.worker [relay|consume|jobs|all]``."""

from shared.privacy import RETENTION_JOB_SECONDS
from shared.worker import PeriodicJob, run_worker

from .events import HANDLERS
from .inbound.callbacks import expire_timers_job
from .models import MIGRATIONS
from .outbound.handout import sweep_lapsed_leases_job
from .privacy import retention_job

# Inbound timers: offers nobody answered, wrap-ups past their time (also applied on every routing decision).
JOBS = {
    "inbound_timers": PeriodicJob(5.0, expire_timers_job),
    # Call lists: lapsed leases back to the pool (the next hand-out does it as well).
    "lapsed_leases": PeriodicJob(30.0, sweep_lapsed_leases_job),
    # Call notes past RETENTION_CALL_NOTES_DAYS removed (docs/privacy.md).
    "retention": PeriodicJob(RETENTION_JOB_SECONDS, retention_job),
}

if __name__ == "__main__":
    run_worker("callrouting", MIGRATIONS, HANDLERS, jobs=JOBS)
