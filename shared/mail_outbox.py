"""The mail outbox: mails queued as rows in the transaction that causes them, sent by a worker.

Like the event outbox (``relay.py``): a mail is a row written with the change that causes it (a
public reply, a survey invitation), so a rolled-back change never mails anyone, and a committed one
is never lost. The worker's round (``send_round``) claims due rows with a conditional update
(several workers may run), sends them over one SMTP session, and marks each ``sent`` in its own
commit as soon as the server accepted it. A mail keeps the ``Message-ID`` it got when queued.

A server that is down or refuses leaves the mails queued with a backoff (``RETRY_DELAYS``); after the
last delay a mail is ``failed`` with the reason. The one window for a second copy is a crash between
the server's acceptance and that commit: the claim lapses and the mail goes again, with the same
``Message-ID``, which receiving systems use to drop the copy.

A queue model needs the columns: id, status ("queued" | "sent" | "failed" | other), message_id,
from_address, to_address, subject, body_text, body_html, in_reply_to, references, extra_headers
(optional), attempts, next_attempt_at, claimed_until, reason, sent_at.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import or_, select, update

from shared.config import Settings
from shared.db import Database
from shared.mail import MailSettings, compose, smtp_connection
from shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

RETRY_DELAYS = (10, 60, 300, 900, 3600)  # seconds; after the last one the mail is marked failed
CLAIM_SECONDS = 120  # a worker that dies mid-send leaves its claim to lapse
BATCH = 100


def message_of(row) -> EmailMessage:
    return compose(
        message_id=row.message_id,
        from_address=row.from_address,
        to_address=row.to_address,
        subject=row.subject,
        text=row.body_text or "",
        html=row.body_html,
        in_reply_to=getattr(row, "in_reply_to", None),
        references=list(getattr(row, "references", None) or []),
        extra_headers=dict(getattr(row, "extra_headers", None) or {"Auto-Submitted": "no"}),
    )


def claim(uow: UnitOfWork, model, limit: int, now: datetime) -> list:
    """Queued mails that are due, claimed for this worker; commits the claims."""
    due = list(
        uow.session.scalars(
            select(model)
            .where(
                model.status == "queued",
                model.next_attempt_at <= now,
                or_(model.claimed_until.is_(None), model.claimed_until < now),
            )
            .order_by(model.next_attempt_at, model.id)
            .limit(limit)
        )
    )
    claimed = []
    for row in due:
        taken = uow.session.execute(
            update(model)
            .where(
                model.id == row.id,
                model.status == "queued",
                or_(model.claimed_until.is_(None), model.claimed_until < now),
            )
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:
            claimed.append(row)
    uow.commit()
    return claimed


def mark_sent(uow: UnitOfWork, model, mail_id: str, now: datetime) -> None:
    uow.session.execute(
        update(model)
        .where(model.id == mail_id, model.status == "queued")
        .values(status="sent", sent_at=now, claimed_until=None, reason=None, attempts=model.attempts + 1)
    )
    uow.commit()


def mark_failed_attempt(uow: UnitOfWork, model, mail_id: str, reason: str, now: datetime) -> str:
    """Try again later with backoff; after the last delay the mail is marked failed."""
    row = uow.session.get(model, mail_id)
    row.attempts = (row.attempts or 0) + 1
    row.reason = reason[:2000]
    row.claimed_until = None
    if row.attempts > len(RETRY_DELAYS):
        row.status = "failed"
        row.next_attempt_at = None
    else:
        row.next_attempt_at = now + timedelta(seconds=RETRY_DELAYS[row.attempts - 1])
    uow.commit()
    return row.status


def retry_now(uow: UnitOfWork, model) -> int:
    """Queued mails waiting out a backoff become due now (an operator's nudge; the tests' clock)."""
    result = uow.session.execute(
        update(model).where(model.status == "queued").values(next_attempt_at=datetime.now(UTC))
    )
    uow.commit()
    return result.rowcount


def send_round(
    database: Database, settings: Settings, model, connect: Callable[[MailSettings], smtplib.SMTP] = smtp_connection
) -> int:
    """One round of the worker: send every due mail of ``model``'s queue; how many were sent.
    Without MAIL_SMTP_HOST it sends nothing (the mail waits queued)."""
    config = MailSettings.from_settings(settings)
    if not config.sending:
        return 0
    sent = 0
    while True:
        now = datetime.now(UTC)
        with UnitOfWork(database, source=settings.service) as uow:
            messages = [(row.id, message_of(row)) for row in claim(uow, model, BATCH, now)]
        if not messages:
            return sent
        try:
            client = connect(config)
        except (OSError, smtplib.SMTPException) as error:
            _failed(
                database, settings, model, [mail_id for mail_id, _ in messages], f"SMTP server unavailable: {error}"
            )
            return sent
        try:
            for index, (mail_id, message) in enumerate(messages):
                try:
                    client.send_message(message)
                except smtplib.SMTPRecipientsRefused as error:
                    _failed(database, settings, model, [mail_id], f"recipient refused: {error.recipients}")
                    continue
                except (OSError, smtplib.SMTPException) as error:
                    # The session broke: this mail and the rest wait for the next attempt.
                    rest = [waiting for waiting, _ in messages[index:]]
                    _failed(database, settings, model, rest, f"SMTP error: {error}")
                    return sent
                with UnitOfWork(database, source=settings.service) as uow:
                    mark_sent(uow, model, mail_id, datetime.now(UTC))
                sent += 1
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                pass  # the mails are marked already; the session is over either way
        if len(messages) < BATCH:
            return sent


def _failed(database: Database, settings: Settings, model, mail_ids: list[str], reason: str) -> None:
    log.warning("mail not sent; will retry", extra={"count": len(mail_ids), "reason": reason})
    now = datetime.now(UTC)
    for mail_id in mail_ids:
        with UnitOfWork(database, source=settings.service) as uow:
            mark_failed_attempt(uow, model, mail_id, reason, now)
