"""E-mail: settings, the SMTP and IMAP connections, and outbound messages, for every service that mails.

Everything comes from the environment through ``Settings.option`` (README, "Mail"):

    MAIL_SMTP_HOST, MAIL_SMTP_PORT (587), MAIL_SMTP_SECURITY (starttls | tls | none),
    MAIL_SMTP_USER, MAIL_SMTP_PASSWORD, MAIL_FROM ("Support <support@example.com>"),
    MAIL_MESSAGE_ID_DOMAIN (our Message-IDs end in @<this>; from MAIL_FROM by default),
    MAIL_IMAP_HOST, MAIL_IMAP_PORT (993), MAIL_IMAP_SECURITY (tls | starttls | none),
    MAIL_IMAP_USER, MAIL_IMAP_PASSWORD, MAIL_IMAP_FOLDER (INBOX), MAIL_IMAP_POLL_SECONDS (30),
    MAIL_WEBHOOK_SECRET (the signed inbound-mail webhook), MAIL_MAX_ATTACHMENT_BYTES (10 MB),
    MAIL_CA_FILE (a CA bundle to trust instead of the system's, e.g. a test server's).

Without MAIL_SMTP_HOST nothing is sent: mail stays queued, and the console says so.
The standard library does the work (``email``, ``smtplib``, ``imaplib``, ``ssl``): it is maintained,
complete for this, and what every kept mail library wraps.
"""

from __future__ import annotations

import imaplib
import smtplib
import ssl
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr

from shared.config import Settings

SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True)
class MailSettings:
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_user: str | None = None
    smtp_password: str | None = None
    from_address: str = "Support <support@localhost>"
    message_id_domain: str = "localhost"
    imap_host: str | None = None
    imap_port: int = 993
    imap_security: str = "tls"
    imap_user: str | None = None
    imap_password: str | None = None
    imap_folder: str = "INBOX"
    imap_poll_seconds: float = 30.0
    webhook_secret: str | None = None
    max_attachment_bytes: int = 10 * 1024 * 1024
    ca_file: str | None = None
    timeout: float = 20.0

    @property
    def sending(self) -> bool:
        """Whether an SMTP server is configured (else mail waits in the queue)."""
        return bool(self.smtp_host)

    @property
    def receiving(self) -> bool:
        return bool(self.imap_host)

    @property
    def from_email(self) -> str:
        return parseaddr(self.from_address)[1].lower()

    @classmethod
    def from_settings(cls, settings: Settings) -> MailSettings:
        option = settings.option
        from_address = option("MAIL_FROM") or cls.from_address
        smtp_security = (option("MAIL_SMTP_SECURITY") or "starttls").lower()
        imap_security = (option("MAIL_IMAP_SECURITY") or "tls").lower()
        for name, value in (("MAIL_SMTP_SECURITY", smtp_security), ("MAIL_IMAP_SECURITY", imap_security)):
            if value not in SECURITY:
                raise ValueError(f"{name} must be one of {', '.join(SECURITY)}, not {value!r}")
        domain = option("MAIL_MESSAGE_ID_DOMAIN") or parseaddr(from_address)[1].rpartition("@")[2] or "localhost"
        return cls(
            smtp_host=option("MAIL_SMTP_HOST") or None,
            smtp_port=int(option("MAIL_SMTP_PORT") or (465 if smtp_security == "tls" else 587)),
            smtp_security=smtp_security,
            smtp_user=option("MAIL_SMTP_USER") or None,
            smtp_password=option("MAIL_SMTP_PASSWORD") or None,
            from_address=from_address,
            message_id_domain=domain,
            imap_host=option("MAIL_IMAP_HOST") or None,
            imap_port=int(option("MAIL_IMAP_PORT") or (993 if imap_security == "tls" else 143)),
            imap_security=imap_security,
            imap_user=option("MAIL_IMAP_USER") or None,
            imap_password=option("MAIL_IMAP_PASSWORD") or None,
            imap_folder=option("MAIL_IMAP_FOLDER") or "INBOX",
            imap_poll_seconds=float(option("MAIL_IMAP_POLL_SECONDS") or 30),
            webhook_secret=option("MAIL_WEBHOOK_SECRET") or None,
            max_attachment_bytes=int(option("MAIL_MAX_ATTACHMENT_BYTES") or cls.max_attachment_bytes),
            ca_file=option("MAIL_CA_FILE") or None,
        )

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


def smtp_connection(mail: MailSettings) -> smtplib.SMTP:
    """A connected, authenticated SMTP session (implicit TLS, STARTTLS or plain, as configured)."""
    if not mail.sending:
        raise RuntimeError("MAIL_SMTP_HOST is not set")
    if mail.smtp_security == "tls":
        client = smtplib.SMTP_SSL(mail.smtp_host, mail.smtp_port, timeout=mail.timeout, context=mail.tls_context())
    else:
        client = smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=mail.timeout)
        if mail.smtp_security == "starttls":
            client.starttls(context=mail.tls_context())
    if mail.smtp_user:
        client.login(mail.smtp_user, mail.smtp_password or "")
    return client


def imap_connection(mail: MailSettings) -> imaplib.IMAP4:
    """A logged-in IMAP session (implicit TLS, STARTTLS or plain, as configured)."""
    if not mail.receiving:
        raise RuntimeError("MAIL_IMAP_HOST is not set")
    if mail.imap_security == "tls":
        client = imaplib.IMAP4_SSL(mail.imap_host, mail.imap_port, ssl_context=mail.tls_context(), timeout=mail.timeout)
    else:
        client = imaplib.IMAP4(mail.imap_host, mail.imap_port, timeout=mail.timeout)
        if mail.imap_security == "starttls":
            client.starttls(ssl_context=mail.tls_context())
    client.login(mail.imap_user or "", mail.imap_password or "")
    return client


def new_message_id(mail: MailSettings) -> str:
    return make_msgid(domain=mail.message_id_domain)


def compose(
    *,
    message_id: str,
    from_address: str,
    to_address: str,
    subject: str,
    text: str,
    html: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    extra_headers: dict[str, str] | None = None,
) -> EmailMessage:
    """One outbound mail, plain text with an HTML alternative; the same row gives the same mail."""
    message = EmailMessage()
    message["Message-ID"] = message_id
    message["Date"] = formatdate(localtime=False)
    message["From"] = from_address
    message["To"] = to_address
    message["Subject"] = subject
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    for name, value in (extra_headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


def address_of(header_value: str | None) -> tuple[str, str]:
    """(display name, lower-case address) of a From-like header; ('', '') when there is none."""
    pairs = getaddresses([header_value or ""])
    for name, address in pairs:
        if "@" in address:
            return name, address.strip().lower()
    return "", ""


def format_address(name: str | None, address: str) -> str:
    if not name:
        return address
    local, _, domain = address.partition("@")
    return str(Address(display_name=name, username=local, domain=domain))
