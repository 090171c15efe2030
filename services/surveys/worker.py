"""``python -m services.surveys.worker [relay|consume|jobs|all]``.

Its periodic jobs: every ``MAIL_SEND_SECONDS`` (1) queued survey invitations go out over SMTP
(``mail_send``; nothing without MAIL_SMTP_HOST, the mail waits queued); every hour survey comments
past RETENTION_SURVEY_COMMENTS_DAYS are removed (``retention``).
"""

from shared.privacy import RETENTION_JOB_SECONDS
from shared.worker import PeriodicJob, run_worker

from . import mail
from .events import HANDLERS
from .models import MIGRATIONS
from .privacy import retention_job


def jobs() -> dict[str, PeriodicJob]:
    from shared.config import Settings

    interval = float(Settings.from_env("surveys").option("MAIL_SEND_SECONDS", "1"))
    return {
        "mail_send": PeriodicJob(interval, mail.send_queued),
        "retention": PeriodicJob(RETENTION_JOB_SECONDS, retention_job),
    }


if __name__ == "__main__":
    run_worker("surveys", MIGRATIONS, HANDLERS, jobs=jobs())
