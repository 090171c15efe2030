"""HTTP routes of survey mail: invite a customer by mail, and the unsubscribe link every
invitation carries (``List-Unsubscribe``; one-click POST per RFC 8058, or the page's button)."""

from __future__ import annotations

from datetime import timedelta
from html import escape

from flask import Response, current_app, request
from flask import abort as fail
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from shared.auth import public
from shared.mail import MailSettings
from shared.models import utcnow
from shared.web import unit_of_work

from . import domain, mail
from .domain import Provenance

survey_mail = Blueprint("survey_mail", __name__, url_prefix="/links", description="Survey invitations by mail")


def _settings():
    return current_app.extensions["settings"]


def _secret() -> str:
    secret = _settings().option("SURVEY_LINK_SECRET")
    if not secret:
        fail(503, "SURVEY_LINK_SECRET is not configured; survey links are not issued or answered.")
    return secret


def public_base(settings) -> str:
    """Where customers open links: SURVEY_LINK_BASE_URL, else PUBLIC_BASE_URL (the gateway's front)."""
    base = settings.option("SURVEY_LINK_BASE_URL") or settings.public_base_url or "http://127.0.0.1:8000"
    return base.rstrip("/")


class InvitationIn(Schema):
    customer_id = fields.UUID(required=True)
    template_id = fields.UUID(load_default=lambda: domain.DEFAULT_TEMPLATE_ID)
    template_version = fields.Integer(load_default=None, allow_none=True)
    language = fields.String(
        load_default=None, allow_none=True, metadata={"description": "when the customer has none of their own"}
    )
    expires_in = fields.Integer(load_default=14 * 24 * 3600, validate=validate.Range(min=3600, max=90 * 24 * 3600))
    agent_id = fields.String(load_default=None, allow_none=True)
    campaign_id = fields.UUID(load_default=None, allow_none=True)
    entry_id = fields.UUID(load_default=None, allow_none=True)
    purchase_id = fields.UUID(load_default=None, allow_none=True)


class InvitationOut(Schema):
    mail_id = fields.String()
    link_id = fields.String()
    to = fields.String()
    language = fields.String()
    status = fields.String(metadata={"description": "queued (sent by the worker when a server is configured)"})
    sending = fields.Boolean()


@survey_mail.route("/email")
class Invitations(MethodView):
    @survey_mail.arguments(InvitationIn())
    @survey_mail.response(201, InvitationOut)
    def post(self, body):
        """Mail the customer a signed survey link; 409 when they have no address, no consent or opted out."""
        secret = _secret()
        config = MailSettings.from_settings(_settings())
        provenance = Provenance.of(body)
        with unit_of_work() as uow:
            try:
                row = mail.invite(
                    uow,
                    config,
                    secret,
                    public_base(_settings()),
                    customer_id=str(body["customer_id"]),
                    template_id=str(body["template_id"]),
                    template_version=body["template_version"],
                    language=body["language"],
                    provenance=provenance,
                    expires_in=timedelta(seconds=body["expires_in"]),
                )
            except mail.NotInvited as refused:
                fail(409, refused.reason)
            uow.commit()
            return {
                "mail_id": row.id,
                "link_id": row.link_id,
                "to": row.to_address,
                "language": row.language,
                "status": row.status,
                "sending": config.sending,
            }


PAGE = """<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Survey mail</title></head><body style="font-family: sans-serif; max-width: 32em; margin: 2em auto">
<p>{text}</p>{form}</body></html>"""


@survey_mail.route("/unsubscribe/<token>")
@public  # the customer's own link: the signed token is the credential
class Unsubscribe(MethodView):
    @survey_mail.response(200, description="a page that asks to confirm (a mail scanner's GET changes nothing)")
    def get(self, token):
        """The unsubscribe page."""
        if mail.customer_of_unsubscribe(_secret(), token) is None:
            fail(404, "This is not an unsubscribe link of ours.")
        form = f'<form method="post" action="{escape(request.path)}"><button>Unsubscribe</button></form>'
        return Response(PAGE.format(text="Stop survey mails to this address?", form=form), mimetype="text/html")

    @survey_mail.response(200, description="unsubscribed (one-click per RFC 8058, or the page's button)")
    def post(self, token):
        """Unsubscribe from survey mail."""
        customer_id = mail.customer_of_unsubscribe(_secret(), token)
        if customer_id is None:
            fail(404, "This is not an unsubscribe link of ours.")
        with unit_of_work() as uow:
            mail.opt_out(uow, customer_id, utcnow())
        return Response(PAGE.format(text="You will get no more survey mails from us.", form=""), mimetype="text/html")
