"""``python -m services.surveys.worker [relay|consume|jobs|all]``.

Its periodic job: every hour, survey comments past RETENTION_SURVEY_COMMENTS_DAYS are removed.
"""

from shared.privacy import RETENTION_JOB_SECONDS
from shared.worker import PeriodicJob, run_worker

from .events import HANDLERS
from .models import MIGRATIONS
from .privacy import retention_job

JOBS = {"retention": PeriodicJob(RETENTION_JOB_SECONDS, retention_job)}

if __name__ == "__main__":
    run_worker("surveys", MIGRATIONS, HANDLERS, jobs=JOBS)
