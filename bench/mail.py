"""Mail scenario (``BENCH_ONLY=mail``): how fast the worker sends mail, and how fast mail becomes tickets.

1. Out: 2,000 public replies (to 2,000 customers' tickets) are queued through the service layer, as
   ``POST /tickets/{id}/comments`` queues them; then the tickets worker's ``mail_send`` round
   (``shared.mail_outbox.send_round``) sends them all to an SMTP sink (aiosmtpd's ``Sink`` handler,
   its own process), timed from the first round until none is queued. Ceiling, in the same run: plain
   ``smtplib`` sending the same number of ready-made messages over one session to the same sink.
   mails/s; ratio = worker / raw smtplib (1.00x: the SMTP conversation is the limit, not our claim and
   mark-sent commits).
2. In: 1,000 mails from new senders and 1,000 answers to those tickets (``[#number]`` in the subject)
   are put into a throwaway dovecot mailbox (when ``dovecot`` is installed; the scenario says so
   otherwise), then the worker's ``mail_fetch`` round takes them all in, timed until the mailbox has
   nothing unseen. Ceiling: plain ``imaplib`` fetching the same messages (``BODY.PEEK[]``, UID by UID)
   without taking them in. mails/s for new tickets, and for answers threaded onto their tickets.
"""

from __future__ import annotations

import imaplib
import shutil
import smtplib
import time
from dataclasses import replace
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from sqlalchemy import func, select

from bench.procs import VENV_BIN, BenchError, Processes, free_port, say
from bench.report import Row
from services.tickets import customers, mail, ticket_cases
from services.tickets.models import MIGRATIONS, Mail, Ticket
from services.tickets.worker import fetch_mailbox, send_queued_mail
from shared.config import Settings
from shared.db import Database, migrate
from shared.mail import MailSettings
from shared.mail_outbox import message_of
from shared.models import utcnow
from shared.unit_of_work import UnitOfWork

OUTBOUND = 2_000
INBOUND = 1_000


def run(processes: Processes, env: dict[str, str], var_dir: Path) -> dict:
    sink_port = free_port()
    sink = processes.start(
        "smtp-sink",
        [
            str(VENV_BIN / "python"),
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{sink_port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        env,
    )
    try:
        _wait_for_smtp(processes, sink, sink_port)
        out = measure_outbound(var_dir, sink_port)
    finally:
        processes.stop(sink)
    rows = [
        Row("mail out: worker → SMTP", "mails/s", out["worker"], "mails/s", out["raw"], "raw smtplib"),
    ]
    figures = {"out": out}
    problems = []
    if shutil.which("dovecot") or Path("/usr/sbin/dovecot").exists():
        inbound = measure_inbound(var_dir)
        figures["in"] = inbound
        rows += [
            Row(
                "mail in: IMAP → new tickets",
                "mails/s",
                inbound["opened"],
                "mails/s",
                inbound["raw"],
                "raw imaplib fetch",
            ),
            Row(
                "mail in: IMAP → answers on tickets",
                "mails/s",
                inbound["threaded"],
                "mails/s",
                inbound["raw"],
                "raw imaplib fetch",
            ),
        ]
    else:
        problems.append("dovecot is not installed (scripts/ensure-system.sh dovecot): inbound mail not measured")
    return {"rows": rows, "problems": problems, **figures}


def _wait_for_smtp(processes: Processes, sink, port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        processes.check_alive("smtp-sink", sink)
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError("the SMTP sink did not start")


def _settings(database: Database, options: dict) -> Settings:
    return replace(Settings.from_env("tickets"), database_url=database.url, options=options)


def _database(var_dir: Path, label: str) -> Database:
    database = Database(f"sqlite:///{var_dir / f'{label}.db'}")
    migrate(database, MIGRATIONS)
    return database


def measure_outbound(var_dir: Path, port: int) -> dict:
    database = _database(var_dir, "mail-out")
    options = {"MAIL_SMTP_HOST": "127.0.0.1", "MAIL_SMTP_PORT": str(port), "MAIL_SMTP_SECURITY": "none"}
    settings = _settings(database, {**options, "MAIL_SEND_SECONDS": "1"})
    say(f"mail: queueing {OUTBOUND} replies")
    with UnitOfWork(database, source="tickets") as uow:
        for n in range(OUTBOUND):
            customer = customers.new_customer(uow, name=f"Customer {n}", email=f"customer{n}@example.org")
            ticket = ticket_cases.open_ticket(
                uow,
                {"subject": f"Order {n}", "category": "question", "customer_id": customer.id},
                None,
                utcnow(),
            )
            row = uow.session.get(Ticket, ticket["id"])
            comment = ticket_cases.append_comment(uow, row, "Your replacement is on its way.", True, "agent-1", False)
            mail.queue_reply(uow, row, comment, MailSettings.from_settings(settings))
        uow.commit()

    say("mail: the worker sends them")
    started = time.perf_counter()
    sent = 0
    while sent < OUTBOUND:
        round_sent = send_queued_mail(database, settings)
        if round_sent == 0:
            raise BenchError(f"the mail worker stopped after {sent} of {OUTBOUND} mails")
        sent += round_sent
    worker_seconds = time.perf_counter() - started
    with database.sessions() as session:
        left = session.scalar(select(func.count()).select_from(Mail).where(Mail.status != "sent"))
        messages = [message_of(row) for row in session.scalars(select(Mail).limit(OUTBOUND))]
    if left:
        raise BenchError(f"{left} mails were not sent")

    say("mail: raw smtplib, the same number of messages")
    started = time.perf_counter()
    client = smtplib.SMTP("127.0.0.1", port)
    for message in messages:
        client.send_message(message)
    client.quit()
    raw_seconds = time.perf_counter() - started
    database.dispose()
    return {"worker": OUTBOUND / worker_seconds, "raw": OUTBOUND / raw_seconds, "mails": OUTBOUND}


def _customer_mail(n: int, subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"Sender {n} <sender{n}@example.net>"
    message["To"] = "support@desk.example"
    message["Subject"] = subject
    message["Date"] = "Thu, 03 Dec 2026 10:00:00 +0000"
    message["Message-ID"] = make_msgid(domain="example.net")
    message.set_content(f"Hello, this is mail number {n}. My order has not arrived.\n" * 5)
    return message.as_bytes()


def measure_inbound(var_dir: Path) -> dict:
    from tests.support.mailservers import Dovecot  # the test suite's throwaway IMAP server

    server = Dovecot()
    server.start()
    try:
        database = _database(var_dir, "mail-in")
        settings = _settings(
            database,
            {
                "MAIL_IMAP_HOST": "127.0.0.1",
                "MAIL_IMAP_PORT": str(server.port),
                "MAIL_IMAP_SECURITY": "none",
                "MAIL_IMAP_USER": server.user,
                "MAIL_IMAP_PASSWORD": server.password,
                "MAIL_FROM": "support@desk.example",
            },
        )
        say(f"mail: {INBOUND} new mails into dovecot")
        _deliver(server, [_customer_mail(n, f"Order {n} missing") for n in range(INBOUND)])
        raw = _raw_fetch_rate(server)
        started = time.perf_counter()
        outcomes = fetch_mailbox(database, settings)
        opened_seconds = time.perf_counter() - started
        if outcomes.get("opened") != INBOUND:
            raise BenchError(f"new mails: {outcomes}")

        with database.sessions() as session:
            numbers = list(session.scalars(select(Ticket.number).order_by(Ticket.number)))
        say(f"mail: {INBOUND} answers into dovecot")
        _deliver(server, [_customer_mail(n, f"Re: [#{number}] Order {n} missing") for n, number in enumerate(numbers)])
        started = time.perf_counter()
        outcomes = fetch_mailbox(database, settings)
        threaded_seconds = time.perf_counter() - started
        if outcomes.get("threaded") != INBOUND:
            raise BenchError(f"answers: {outcomes}")
        database.dispose()
        return {"opened": INBOUND / opened_seconds, "threaded": INBOUND / threaded_seconds, "raw": raw}
    finally:
        server.stop()


def _deliver(server, messages: list[bytes]) -> None:
    imap = server.connect()
    try:
        for raw in messages:
            imap.append("INBOX", None, None, raw)
    finally:
        imap.logout()


def _raw_fetch_rate(server) -> float:
    """Plain imaplib: fetch every unseen message, UID by UID, leaving them unseen."""
    imap: imaplib.IMAP4 = server.connect()
    try:
        imap.select("INBOX")
        started = time.perf_counter()
        _, data = imap.uid("SEARCH", None, "UNSEEN")
        uids = data[0].split()
        for uid in uids:
            imap.uid("FETCH", uid, "(BODY.PEEK[])")
        seconds = time.perf_counter() - started
    finally:
        imap.logout()
    return len(uids) / seconds
