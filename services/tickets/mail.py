"""E-mail, the service desk's second channel: replies out, customers' mail in.

Out: an agent's public reply queues a mail in the reply's own transaction (``queue_reply``); the
worker's ``mail_send`` job sends it (``shared.mail_outbox``: claimed, sent over SMTP, marked sent
once; a server that is down means a later attempt with backoff, never a lost or a second mail).

In: the worker's ``mail_fetch`` job reads the IMAP mailbox (``fetch_mailbox``) and the signed
webhook (api.py) passes raw mail on; both call ``receive`` once per mail, in its own transaction:
dedupe on ``Message-ID``; auto-replies, bulk mail and our own mails are recorded and ignored; a
reply (``In-Reply-To``/``References`` naming one of our mails, else ``[#<number>]`` in the subject)
becomes the customer's public comment and reopens a pending ticket; anything else opens a ticket for
the sender (matched by address, or a new customer). A mail that cannot be read is parked with the
reason, and the mailbox moves on.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import html as html_lib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import delete, func, select

from shared import mail_outbox
from shared.mail import MailSettings, address_of, format_address, new_message_id
from shared.models import new_id, utcnow
from shared.schemas import page_of
from shared.unit_of_work import UnitOfWork

from . import customers, domain, ticket_cases
from .models import Customer, Mail, MailAttachment, Ticket

log = logging.getLogger(__name__)

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates" / "mail"),
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=True,
)
NUMBER_IN_SUBJECT = re.compile(r"\[#(\d{1,9})\]")
ALLOWED_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/msword",
    "application/vnd.ms-excel",
)
NEW_MAIL_CATEGORY = "question"


# --- reading a mail (no I/O) ------------------------------------------------------------------


class MalformedMail(ValueError):
    pass


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class InboundMail:
    message_id: str
    from_name: str
    from_address: str
    to_address: str
    subject: str
    text: str
    in_reply_to: str | None
    references: list[str]
    auto_reason: str | None  # why this is an automatic mail that must not be answered
    attachments: list[Attachment] = field(default_factory=list)


def fallback_message_id(raw: bytes) -> str:
    """A stable id for a mail without one, so reading it twice is still recognised."""
    return f"<{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id>"


def _ids(value: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def _auto_reason(message: EmailMessage, from_address: str, message_id: str, mail: MailSettings) -> str | None:
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        if message.get(header) and header != "X-Auto-Response-Suppress":
            return f"{header} header"
    if message.get("List-Id") or message.get("List-Unsubscribe"):
        return "mailing-list mail"
    local = from_address.partition("@")[0]
    if local in ("mailer-daemon", "postmaster", "noreply", "no-reply"):
        return f"sent by {local}"
    if from_address == mail.from_email:
        return "sent from our own address (a loop)"
    if message_id.endswith(f"@{mail.message_id_domain}>"):
        return "one of our own Message-IDs (a loop)"
    return None


def _text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    content = body.get_content()
    if body.get_content_type() == "text/html":
        content = html_lib.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style).*?</\1>", "", content)))
        content = re.sub(r"[ \t]+", " ", content)
    return content.strip()


def parse(raw: bytes, mail: MailSettings) -> InboundMail:
    """Read a raw RFC 5322 mail; MalformedMail says why one cannot be taken in."""
    if not raw or not raw.strip():
        raise MalformedMail("the mail is empty")
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        from_name, from_address = address_of(str(message.get("From", "")))
    except Exception as error:  # noqa: BLE001 - the email package raises many kinds on broken headers
        raise MalformedMail(f"unreadable headers: {error}") from None
    if not from_address:
        raise MalformedMail("no sender address (From)")
    if message.get("Date") is None and message.get("Received") is None and not message.get("Subject"):
        raise MalformedMail("no Date, Received or Subject header: not a mail")
    message_id = (_ids(str(message.get("Message-ID", ""))) or [fallback_message_id(raw)])[0]
    try:
        text = _text_of(message)
        attachments = [
            Attachment(
                filename=part.get_filename() or "attachment",
                content_type=part.get_content_type(),
                data=part.get_payload(decode=True) or b"",
            )
            for part in message.iter_attachments()
        ]
    except Exception as error:  # noqa: BLE001 - as above, for broken bodies and encodings
        raise MalformedMail(f"unreadable body: {error}") from None
    return InboundMail(
        message_id=message_id,
        from_name=from_name,
        from_address=from_address,
        to_address=address_of(str(message.get("To", "")))[1],
        subject=str(message.get("Subject", "")).strip()[:300] or "(no subject)",
        text=text,
        in_reply_to=(_ids(str(message.get("In-Reply-To", ""))) or [None])[0],
        references=_ids(str(message.get("References", ""))),
        auto_reason=_auto_reason(message, from_address, message_id, mail),
        attachments=attachments,
    )


def attachment_refusal(attachment: Attachment, max_bytes: int) -> str | None:
    if len(attachment.data) > max_bytes:
        return f"larger than the limit of {max_bytes // 1024} KiB ({len(attachment.data) // 1024} KiB)"
    if attachment.content_type not in ALLOWED_TYPES:
        return f"its type {attachment.content_type} is not accepted"
    return None


# --- out: a reply by mail -----------------------------------------------------------------------


def ticket_subject(number: int, subject: str) -> str:
    return f"[#{number}] {subject}"


def queue_reply(uow: UnitOfWork, ticket: Ticket, comment: dict, mail: MailSettings | None = None) -> dict | None:
    """Queue the mail of an agent's public reply to the ticket's customer; None when they have no address."""
    mail = mail or _mail_settings(uow)
    customer = uow.session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    if customer is None or not customer.email:
        return None
    thread = list(
        uow.session.execute(
            select(Mail.message_id, Mail.direction)
            .where(Mail.ticket_id == ticket.id, Mail.status.in_(("queued", "sent", "threaded", "opened")))
            .order_by(Mail.created_at, Mail.id)
        )
    )
    references = [row.message_id for row in thread]
    answered = [row.message_id for row in thread if row.direction == "in"]
    in_reply_to = answered[-1] if answered else (references[-1] if references else None)
    subject = ticket_subject(ticket.number, ticket.subject)
    if answered:
        subject = f"Re: {subject}"
    context = {"ticket": ticket, "customer": customer, "body": comment["body"]}
    row = Mail(
        id=new_id(),
        direction="out",
        kind="reply",
        status="queued",
        message_id=new_message_id(mail),
        ticket_id=ticket.id,
        customer_id=customer.id,
        comment_id=comment["id"],
        from_address=mail.from_address,
        to_address=format_address(customer.name, customer.email),
        subject=subject[:300],
        body_text=TEMPLATES.get_template("reply.txt").render(context),
        body_html=TEMPLATES.get_template("reply.html").render(context),
        in_reply_to=in_reply_to,
        references=references[-20:],
        attempts=0,
        next_attempt_at=utcnow(),
        created_at=utcnow(),
    )
    uow.session.add(row)
    uow.session.flush()
    return {"to": customer.email, "status": "queued", "message_id": row.message_id, "sending": mail.sending}


def _mail_settings(uow: UnitOfWork) -> MailSettings:
    """This process's mail settings: the app's in a request, else the environment's."""
    from flask import current_app, has_app_context

    from shared.config import Settings

    settings = current_app.extensions["settings"] if has_app_context() else Settings.from_env("tickets")
    return MailSettings.from_settings(settings)


def retry_now(uow: UnitOfWork) -> int:
    """Queued mails waiting out a backoff become due now (an operator's nudge; the tests' clock)."""
    return mail_outbox.retry_now(uow, Mail)


# --- in: a mail into a ticket -------------------------------------------------------------------


def _park(uow: UnitOfWork, raw: bytes, reason: str, now: datetime) -> dict:
    message_id = fallback_message_id(raw)
    try:
        parsed_id = _ids(str(email.message_from_bytes(raw, policy=email.policy.compat32).get("Message-ID", "")))
        message_id = parsed_id[0] if parsed_id else message_id
    except Exception:  # noqa: BLE001, S110 - unreadable even so: the hash of the raw mail names it
        pass
    if uow.session.scalar(select(Mail.id).where(Mail.message_id == message_id)):
        return {"status": "duplicate", "message_id": message_id}
    row = Mail(
        id=new_id(),
        direction="in",
        kind="inbound",
        status="parked",
        message_id=message_id[:255],
        reason=reason,
        raw=raw,
        references=[],
        created_at=now,
    )
    uow.session.add(row)
    uow.commit()
    log.warning("inbound mail parked", extra={"mail_id": row.id, "reason": reason})
    return {"status": "parked", "mail_id": row.id, "reason": reason, "message_id": row.message_id}


def receive(uow: UnitOfWork, raw: bytes, mail: MailSettings, now: datetime | None = None) -> dict:
    """Take one raw mail in (see the module's docstring); what became of it, as a dict."""
    now = now or utcnow()
    try:
        inbound = parse(raw, mail)
    except MalformedMail as error:
        return _park(uow, raw, str(error), now)
    if uow.session.scalar(select(Mail.id).where(Mail.message_id == inbound.message_id)):
        return {"status": "duplicate", "message_id": inbound.message_id}
    row = Mail(
        id=new_id(),
        direction="in",
        kind="inbound",
        message_id=inbound.message_id[:255],
        from_address=format_address(inbound.from_name, inbound.from_address)[:320],
        to_address=inbound.to_address[:320] or None,
        subject=inbound.subject,
        body_text=inbound.text,
        in_reply_to=inbound.in_reply_to,
        references=inbound.references[-20:],
        created_at=now,
    )
    if inbound.auto_reason:
        row.status, row.reason = "ignored", inbound.auto_reason
        uow.session.add(row)
        uow.commit()
        return {"status": "ignored", "mail_id": row.id, "reason": inbound.auto_reason}

    ticket = _thread_of(uow, inbound)
    if ticket is not None:
        row.status, row.ticket_id, row.customer_id = "threaded", ticket.id, ticket.customer_id
        comment = ticket_cases.append_comment(uow, ticket, inbound.text or inbound.subject, True, None, True)
        row.comment_id = comment["id"]
        reopened = ticket_cases.reopen_on_customer_answer(uow, ticket, now)
    else:
        customer, created = _sender(uow, inbound)
        view = ticket_cases.open_ticket(
            uow,
            {
                "subject": inbound.subject[:200],
                "description": inbound.text[:20_000],
                "category": NEW_MAIL_CATEGORY,
                "channel": "email",
                "customer_id": customer.id,
                "tags": ["new-customer"] if created else [],
            },
            None,
            now,
        )
        ticket = uow.session.get(Ticket, view["id"])
        row.status, row.ticket_id, row.customer_id, row.created_customer = "opened", ticket.id, customer.id, created
        reopened = False
    uow.session.add(row)
    uow.session.flush()
    refused = _store_attachments(uow, row, ticket, inbound.attachments, mail.max_attachment_bytes, now)
    uow.commit()
    return {
        "status": row.status,
        "mail_id": row.id,
        "ticket_id": ticket.id,
        "number": ticket.number,
        "reopened": reopened,
        "refused_attachments": refused,
    }


def _thread_of(uow: UnitOfWork, inbound: InboundMail) -> Ticket | None:
    """The open ticket a mail answers: by the Message-IDs it names, else by [#number] in its subject."""
    named = [value for value in [inbound.in_reply_to, *inbound.references] if value]
    ticket_id = None
    if named:
        ticket_id = uow.session.scalar(
            select(Mail.ticket_id).where(Mail.message_id.in_(named), Mail.ticket_id.is_not(None)).limit(1)
        )
    if ticket_id is None:
        match = NUMBER_IN_SUBJECT.search(inbound.subject)
        if match:
            ticket_id = uow.session.scalar(select(Ticket.id).where(Ticket.number == int(match.group(1))))
    if ticket_id is None:
        return None
    ticket = ticket_cases.load_ticket(uow, ticket_id, for_update=True)
    return None if ticket.status == "closed" else ticket  # a closed ticket is final: a new one opens


def _sender(uow: UnitOfWork, inbound: InboundMail) -> tuple[Customer, bool]:
    """The customer with the sender's address, or a new one (listed by the duplicate finder)."""
    customer = uow.session.scalars(
        select(Customer)
        .where(Customer.email == inbound.from_address, Customer.merged_into_id.is_(None))
        .order_by(Customer.created_at, Customer.id)
        .limit(1)
    ).first()
    if customer is not None:
        return customer, False
    name = inbound.from_name.strip() or inbound.from_address.partition("@")[0]
    return customers.new_customer(uow, name=name[:200], email=inbound.from_address), True


def _store_attachments(
    uow: UnitOfWork, row: Mail, ticket: Ticket, attachments: list[Attachment], max_bytes: int, now: datetime
) -> list[dict]:
    refused = []
    for attachment in attachments:
        reason = attachment_refusal(attachment, max_bytes)
        if reason:
            refused.append({"filename": attachment.filename, "reason": reason})
            continue
        uow.session.add(
            MailAttachment(
                id=new_id(),
                mail_id=row.id,
                ticket_id=ticket.id,
                filename=attachment.filename[:255],
                content_type=attachment.content_type,
                size=len(attachment.data),
                data=attachment.data,
                created_at=now,
            )
        )
    if refused and ticket.status != "closed":
        lines = "\n".join(f"- {item['filename']}: {item['reason']}" for item in refused)
        note = f"Attachments of the mail from {row.from_address} were refused and not stored:\n{lines}"
        ticket_cases.append_comment(uow, ticket, note, False, None, False)
    return refused


# --- reading -------------------------------------------------------------------------------------


def mail_view(row: Mail, attachments: list[MailAttachment] | None = None) -> dict:
    return {
        "id": row.id,
        "direction": row.direction,
        "kind": row.kind,
        "status": row.status,
        "message_id": row.message_id,
        "ticket_id": row.ticket_id,
        "customer_id": row.customer_id,
        "from_address": row.from_address,
        "to_address": row.to_address,
        "subject": row.subject,
        "body_text": row.body_text,
        "in_reply_to": row.in_reply_to,
        "references": list(row.references or []),
        "reason": row.reason,
        "attempts": row.attempts,
        "created_at": row.created_at,
        "sent_at": row.sent_at,
        "attachments": [
            {"id": item.id, "filename": item.filename, "content_type": item.content_type, "size": item.size}
            for item in attachments or []
        ],
    }


def ticket_mails(uow: UnitOfWork, ticket_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
    """A page of the ticket's mail thread, oldest first, with attachments; and how many mails it has."""
    ticket = ticket_cases.load_ticket(uow, ticket_id)
    query = select(Mail).where(Mail.ticket_id == ticket.id).order_by(Mail.created_at, Mail.id)
    rows, total = page_of(uow.session, query, limit, offset, scalars=True)
    attachments: dict[str, list[MailAttachment]] = {}
    if rows:
        on_page = MailAttachment.mail_id.in_([row.id for row in rows])
        for item in uow.session.scalars(select(MailAttachment).where(MailAttachment.ticket_id == ticket.id, on_page)):
            attachments.setdefault(item.mail_id, []).append(item)
    return [mail_view(row, attachments.get(row.id)) for row in rows], total


def customer_mails(uow: UnitOfWork, customer_id: str, limit: int = 20, offset: int = 0) -> tuple[list[dict], int]:
    """A page of the customer's mails, newest first, without their text; and how many there are."""
    query = select(Mail).where(Mail.customer_id == customer_id).order_by(Mail.created_at.desc(), Mail.id.desc())
    rows, total = page_of(uow.session, query, limit, offset, scalars=True)
    return [{key: value for key, value in mail_view(row).items() if key != "body_text"} for row in rows], total


def customer_mails_json(uow: UnitOfWork, customer_id: str, limit: int = 20) -> list[dict]:
    """The customer's latest mails with RFC 3339 times, for the customer overview (written without a schema)."""
    mails, _ = customer_mails(uow, customer_id, limit)
    return [
        {**view, "created_at": domain.rfc3339(view["created_at"]), "sent_at": domain.rfc3339(view["sent_at"])}
        for view in mails
    ]


def attachment(uow: UnitOfWork, attachment_id: str) -> MailAttachment | None:
    return uow.session.get(MailAttachment, attachment_id) if domain.looks_like_id(attachment_id) else None


def mail_status(uow: UnitOfWork, mail: MailSettings) -> dict:
    counts = dict(
        uow.session.execute(
            select(Mail.status, func.count()).where(Mail.direction == "out").group_by(Mail.status)
        ).all()
    )
    parked = uow.session.scalar(select(func.count()).select_from(Mail).where(Mail.status == "parked"))
    return {
        "sending": mail.sending,
        "receiving": mail.receiving or bool(mail.webhook_secret),
        "from_address": mail.from_address,
        "queued": counts.get("queued", 0),
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "parked": parked,
    }


def parked_mails(uow: UnitOfWork, limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    """A page of the inbound mail that could not be taken in (oldest first), and how much there is."""
    query = select(Mail).where(Mail.status == "parked").order_by(Mail.created_at, Mail.id)
    rows, total = page_of(uow.session, query, limit, offset, scalars=True)
    return [mail_view(row) for row in rows], total


def erase_customer_mail(uow: UnitOfWork, customer_id: str) -> int:
    """Every mail of a customer and their attachments, deleted (the data-protection erase's one place
    for mail). Does not commit: it runs inside the erasure's own unit of work."""
    ids = select(Mail.id).where(Mail.customer_id == customer_id)
    uow.session.execute(delete(MailAttachment).where(MailAttachment.mail_id.in_(ids)))
    result = uow.session.execute(delete(Mail).where(Mail.customer_id == customer_id))
    return result.rowcount
