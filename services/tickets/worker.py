"""``python -m services.tickets.worker [relay|consume|jobs|all]``.

Its periodic jobs: every ``SLA_CHECK_SECONDS`` (30 by default) the tickets past a due time are
flagged and ``ticket.sla_breached`` is announced once per ticket and target; every 6 hours the
segments of customers whose purchases aged out of the last 12 months are recomputed; every
second queued mail goes out over SMTP (``mail_send``), and every ``MAIL_IMAP_POLL_SECONDS`` the
mailbox is read (``mail_fetch``). Without MAIL_SMTP_HOST / MAIL_IMAP_HOST those two do nothing.
Every hour personal data past its retention is anonymised (``privacy.apply_retention``).
"""

import imaplib
import logging
from datetime import UTC, datetime, timedelta

from shared import mail_outbox
from shared.config import Settings
from shared.db import Database
from shared.mail import MailSettings, imap_connection
from shared.privacy import RETENTION_JOB_SECONDS, hash_secret
from shared.unit_of_work import UnitOfWork
from shared.worker import PeriodicJob, run_worker

from . import breaches, customers, mail, privacy, purchases
from .events import HANDLERS
from .models import MIGRATIONS, Mail

log = logging.getLogger(__name__)
BATCH = 500


def flag_sla_breaches(database: Database, settings: Settings) -> None:
    """One round: batches of tickets until none is past due and unflagged."""
    while True:
        with UnitOfWork(database, source=settings.service) as uow:
            examined, flagged = breaches.flag_sla_breaches(uow, limit=BATCH)
        if flagged:
            log.info("SLA breaches flagged", extra={"count": flagged})
        if examined < BATCH:
            return


SEGMENT_REFRESH_SECONDS = 6 * 3600
SEGMENT_REFRESH_LOOKBACK = timedelta(days=2)  # overlapping rounds: a missed one is caught up


def refresh_segments(database: Database, settings: Settings) -> None:
    """Segments of customers whose purchases have just aged out of the last 12 months."""
    now = datetime.now(UTC)
    with UnitOfWork(database, source=settings.service) as uow:
        changed = purchases.refresh_segments(
            uow, customers.SegmentThresholds.from_settings(settings), now - SEGMENT_REFRESH_LOOKBACK, now
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


def send_queued_mail(database: Database, settings: Settings) -> int:
    """One round of the mail queue (replies to customers); see shared.mail_outbox."""
    return mail_outbox.send_round(database, settings, Mail)


def fetch_mailbox(database: Database, settings: Settings) -> dict[str, int]:
    """One round over the IMAP folder: every unseen mail is taken in (``mail.receive``, once per
    Message-ID) and then flagged seen. A mail that fails is parked with the reason and flagged seen
    too, so it never blocks the ones behind it; a mail read twice (a crash before the flag) is
    recognised by its Message-ID."""
    config = MailSettings.from_settings(settings)
    outcomes: dict[str, int] = {}
    if not config.receiving:
        return outcomes
    client = imap_connection(config)
    try:
        client.select(config.imap_folder)
        _, data = client.uid("SEARCH", None, "UNSEEN")
        for uid in (data[0] or b"").split():
            _, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((part[1] for part in parts if isinstance(part, tuple)), b"")
            outcome = receive_raw(database, settings, raw, config)
            outcomes[outcome["status"]] = outcomes.get(outcome["status"], 0) + 1
            client.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    finally:
        try:
            client.logout()
        except (OSError, imaplib.IMAP4.error):
            pass  # the session is over either way
    if outcomes:
        log.info("mailbox read", extra={"outcomes": outcomes})
    return outcomes


def receive_raw(database: Database, settings: Settings, raw: bytes, config: MailSettings) -> dict:
    """``mail.receive`` in its own transaction; anything it raises parks the mail instead."""
    try:
        with UnitOfWork(database, source=settings.service) as uow:
            return mail.receive(uow, raw, config)
    except Exception as error:  # one bad mail must never block the mailbox
        log.exception("inbound mail failed; parked")
        with UnitOfWork(database, source=settings.service) as uow:
            try:
                return mail._park(
                    uow, raw, f"could not be taken in: {type(error).__name__}: {error}", datetime.now(UTC)
                )
            except Exception:  # noqa: BLE001 - e.g. the same Message-ID committed concurrently: a duplicate
                return {"status": "duplicate"}


def jobs(settings: Settings | None = None) -> dict[str, PeriodicJob]:
    settings = settings or Settings.from_env("tickets")
    interval = float(settings.option("SLA_CHECK_SECONDS", "30"))
    return {
        "sla_breaches": PeriodicJob(interval, flag_sla_breaches),
        "segments": PeriodicJob(SEGMENT_REFRESH_SECONDS, refresh_segments),
        "retention": PeriodicJob(RETENTION_JOB_SECONDS, apply_retention),
        "mail_send": PeriodicJob(float(settings.option("MAIL_SEND_SECONDS", "1")), send_queued_mail),
        "mail_fetch": PeriodicJob(MailSettings.from_settings(settings).imap_poll_seconds, fetch_mailbox),
    }


if __name__ == "__main__":
    run_worker("tickets", MIGRATIONS, HANDLERS, jobs=jobs())
