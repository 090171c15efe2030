"""HTTP routes of the service desk's mail: a ticket's mail thread and attachments, the mail status,
parked mail, and the signed inbound-mail webhook for providers that push mail instead of IMAP.

**Inbound-mail webhook** ``POST /webhooks/mail/inbound`` (through the gateway too):
body ``{"raw": "<the RFC 5322 mail, base64>"}``
(at most ``MAIL_WEBHOOK_MAX_BYTES``, 25 MB by default), header
``X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` under
``MAIL_WEBHOOK_SECRET`` (the same scheme as the phone system's JSON webhook, with its own secret).
The answer says what became of the mail: ``opened`` (a new ticket), ``threaded`` (a comment on
its ticket), ``ignored`` (an auto-reply, bulk mail, a loop), ``duplicate`` (seen before) or
``parked`` (unreadable; kept with the reason).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields, validate
from sqlalchemy.exc import IntegrityError

from shared.auth import public
from shared.errors import Invalid
from shared.mail import MailSettings
from shared.schemas import Timestamp, page, page_args, page_schema
from shared.web import unit_of_work
from shared.webhooks import verify_json

from . import mail

mails = Blueprint("mail", __name__, url_prefix="", description="E-mail: ticket threads and inbound mail")


def _mail_settings() -> MailSettings:
    return MailSettings.from_settings(current_app.extensions["settings"])


class AttachmentOut(Schema):
    id = fields.String()
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()


class MailOut(Schema):
    id = fields.String()
    direction = fields.String(metadata={"description": "in (from the customer) or out (to the customer)"})
    kind = fields.String()
    status = fields.String(metadata={"description": "out: queued, sent, failed; in: threaded, opened, ignored, parked"})
    message_id = fields.String()
    ticket_id = fields.String(allow_none=True)
    customer_id = fields.String(allow_none=True)
    from_address = fields.String(allow_none=True)
    to_address = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    body_text = fields.String(allow_none=True)
    in_reply_to = fields.String(allow_none=True)
    references = fields.List(fields.String())
    reason = fields.String(allow_none=True)
    attempts = fields.Integer()
    created_at = Timestamp()
    sent_at = Timestamp(allow_none=True)
    attachments = fields.List(fields.Nested(AttachmentOut))


MailPage = page_schema(MailOut, "MailPage")
ThreadMailQuery = page_args(default=200, maximum=1000, name="ThreadMailQuery")
CustomerMailQuery = page_args(default=20, maximum=500, name="CustomerMailQuery")
ParkedMailQuery = page_args(default=100, maximum=1000, name="ParkedMailQuery")


class MailStatusOut(Schema):
    sending = fields.Boolean(metadata={"description": "an SMTP server is configured (MAIL_SMTP_HOST)"})
    receiving = fields.Boolean(metadata={"description": "a mailbox (MAIL_IMAP_HOST) or the webhook is configured"})
    from_address = fields.String()
    queued = fields.Integer()
    sent = fields.Integer()
    failed = fields.Integer()
    parked = fields.Integer()


class InboundMailIn(Schema):
    raw = fields.String(required=True, validate=validate.Length(min=1), metadata={"description": "RFC 5322, base64"})


class InboundMailOut(Schema):
    status = fields.String()
    mail_id = fields.String()
    message_id = fields.String()
    ticket_id = fields.String()
    number = fields.Integer()
    reopened = fields.Boolean()
    reason = fields.String()
    refused_attachments = fields.List(fields.Dict())


@mails.route("/tickets/<ticket_id>/mails")
class TicketMails(MethodView):
    @mails.arguments(ThreadMailQuery(), location="query")
    @mails.response(200, MailPage)
    def get(self, args, ticket_id):
        """The ticket's mail thread, oldest first: mails in and out, with their attachments."""
        with unit_of_work(read_only=True) as uow:
            items, total = mail.ticket_mails(uow, ticket_id, args["limit"], args["offset"])
        return page(items, total, args)


@mails.route("/tickets/<ticket_id>/attachments/<attachment_id>")
class TicketAttachment(MethodView):
    @mails.response(200, description="the file, as it came")
    def get(self, ticket_id, attachment_id):
        """One stored attachment of the ticket's mail."""
        with unit_of_work(read_only=True) as uow:
            item = mail.attachment(uow, attachment_id)
            if item is None or item.ticket_id != ticket_id:
                abort(404, message=f"No attachment {attachment_id} on ticket {ticket_id}.")
            headers = {"Content-Disposition": f'attachment; filename="{item.filename.replace(chr(34), "")}"'}
            return Response(item.data, mimetype=item.content_type, headers=headers)


@mails.route("/customers/<customer_id>/mails")
class CustomerMails(MethodView):
    @mails.arguments(CustomerMailQuery(), location="query")
    @mails.response(200, MailPage)
    def get(self, args, customer_id):
        """The customer's mails, newest first, without their text: the timeline's."""
        with unit_of_work(read_only=True) as uow:
            items, total = mail.customer_mails(uow, customer_id, args["limit"], args["offset"])
        return page(items, total, args)


@mails.route("/mail/status")
class MailStatus(MethodView):
    @mails.response(200, MailStatusOut)
    def get(self):
        """Whether mail is configured, and how much is queued, sent, failed and parked."""
        with unit_of_work(read_only=True) as uow:
            return mail.mail_status(uow, _mail_settings())


@mails.route("/mail/parked")
class ParkedMail(MethodView):
    @mails.arguments(ParkedMailQuery(), location="query")
    @mails.response(200, MailPage)
    def get(self, args):
        """Inbound mail that could not be taken in, with the reason (oldest first)."""
        with unit_of_work(read_only=True) as uow:
            items, total = mail.parked_mails(uow, args["limit"], args["offset"])
        return page(items, total, args)


@mails.route("/webhooks/mail/inbound")
@public  # signed by the mail provider (MAIL_WEBHOOK_SECRET), checked before the body is read
class InboundMail(MethodView):
    @mails.arguments(InboundMailIn())
    @mails.response(200, InboundMailOut)
    def post(self, body):
        """A mail pushed by a mail provider (signed; see the module's docstring)."""
        config = _mail_settings()
        settings = current_app.extensions["settings"]
        max_bytes = int(settings.option("MAIL_WEBHOOK_MAX_BYTES", str(25 * 1024 * 1024)))
        if request.content_length and request.content_length > max_bytes * 4 // 3 + 1024:
            abort(413, message=f"An inbound mail may be at most {max_bytes} bytes.")
        try:
            raw = base64.b64decode(body["raw"], validate=True)
        except (binascii.Error, ValueError):
            raise Invalid({"raw": "Not base64."}) from None
        try:
            with unit_of_work() as uow:
                return mail.receive(uow, raw, config)
        except IntegrityError:  # the same Message-ID taken in at this instant (IMAP, a retried push)
            return {"status": "duplicate"}


def _verify_mail_webhook():
    settings = current_app.extensions["settings"]
    secret = MailSettings.from_settings(settings).webhook_secret
    if not secret:
        abort(403, message="MAIL_WEBHOOK_SECRET is not configured; unsigned inbound mail is refused.")
    verify_json(request, replace(settings, webhook_secret=secret))


# Checked before the body is parsed or anything is stored, like the phone webhooks.
mails.before_request(lambda: _verify_mail_webhook() if request.endpoint == "mail.InboundMail" else None)
