"""Signed webhooks from the phone system: Twilio's, and our generic JSON one.

Both are checked before anything is read or stored, and both answer 403 on failure.

**Twilio** signs the full URL it called plus the form parameters (``X-Twilio-Signature``);
we check with the ``twilio`` package's own ``RequestValidator``. The URL must be the one
Twilio used, which behind a reverse proxy is not the one Flask sees: set
``PUBLIC_BASE_URL`` (``https://cc.example.com``), or ``PROXY_HOPS`` to the number of
trusted proxies so ``X-Forwarded-Proto``/``X-Forwarded-Host`` are honoured.

**Generic JSON** (adapters for Asterisk, FreeSWITCH …): header
``X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` under
``PHONE_WEBHOOK_SECRET``. A timestamp further than ``PHONE_WEBHOOK_TOLERANCE_SECONDS``
(300) from now is refused, so a captured request cannot be replayed later; within that window
each signature is accepted once (``webhook_signatures``, in the service's own database, so
every replica sees the same claims), so it cannot be replayed sooner either.

**The public URL is pinned**: outside development (``CALLCENTER_ENV=development``) a Twilio
webhook is refused unless ``PUBLIC_BASE_URL`` is set, because a URL rebuilt from the request's
``Host`` (or a forwarded host) is whatever the caller says it is, and a request signed for their
own host would pass. ``make run`` sets it to the gateway's address.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time

from flask import Request, current_app, request
from sqlalchemy import Column, Float, Index, MetaData, String, Table, delete, insert
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import Forbidden

from shared.auth import public
from shared.config import Settings

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_HEADER = "X-Signature"


class BadSignature(Forbidden):
    description = "The webhook signature is missing or does not verify."


# The JSON webhook's signatures seen within the tolerance window (a service that takes signed JSON
# webhooks adds ``metadata`` to its migrations' metadata and creates the table in a migration).
metadata = MetaData()
webhook_signatures = Table(
    "webhook_signatures",
    metadata,
    Column("signature", String(64), primary_key=True),  # the hex HMAC: unique per (timestamp, body)
    Column("signed_ts", Float, nullable=False),
    Index("ix_webhook_signatures_signed_ts", "signed_ts"),
)


def public_url(req: Request, settings: Settings) -> str:
    """The URL the phone system called, as it signed it."""
    if settings.public_base_url:
        return settings.public_base_url + req.full_path.rstrip("?")
    if not settings.development:
        raise BadSignature("PUBLIC_BASE_URL is not configured; signatures cannot be checked against the public URL.")
    url = req.url
    if settings.proxy_hops > 0:
        proto = _forwarded(req, "X-Forwarded-Proto", settings.proxy_hops) or req.scheme
        host = _forwarded(req, "X-Forwarded-Host", settings.proxy_hops) or req.host
        url = f"{proto}://{host}{req.full_path.rstrip('?')}"
    return url


def _forwarded(req: Request, header: str, hops: int) -> str | None:
    # Each proxy appends; the value the outermost trusted proxy saw is ``hops`` from the end.
    values = [part.strip() for part in req.headers.get(header, "").split(",") if part.strip()]
    return values[-hops] if len(values) >= hops else None


def verify_twilio(req: Request, settings: Settings) -> None:
    if not settings.twilio_auth_token:
        raise BadSignature("TWILIO_AUTH_TOKEN is not configured; unsigned webhooks are refused.")
    signature = req.headers.get(TWILIO_SIGNATURE_HEADER, "")
    validator = RequestValidator(settings.twilio_auth_token)
    if not signature or not validator.validate(public_url(req, settings), req.form, signature):
        raise BadSignature()


# What the Twilio webhooks answer, for their ``@blueprint.doc(**...)`` (plain views, so the spec
# would otherwise know only the error answers).
TWIML_ANSWER = {"responses": {200: {"description": "TwiML", "content": {"text/xml": {"schema": {"type": "string"}}}}}}
JSON_ANSWER = {
    "responses": {
        200: {"description": "what was done", "content": {"application/json": {"schema": {"type": "object"}}}}
    }
}
NO_ANSWER = {"responses": {204: {"description": "noted"}}}


def sign_json(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Signature`` value for ``body`` (what an adapter, the simulator and tests send)."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def verify_json(req: Request, settings: Settings, now: float | None = None) -> None:
    if not settings.webhook_secret:
        raise BadSignature("PHONE_WEBHOOK_SECRET is not configured; unsigned webhooks are refused.")
    parts = dict(item.split("=", 1) for item in req.headers.get(SIGNATURE_HEADER, "").split(",") if "=" in item)
    try:
        moment = int(parts["t"])
    except (KeyError, ValueError):
        raise BadSignature(f"{SIGNATURE_HEADER} needs t=<unix seconds>,v1=<hex>.") from None
    if abs((now or time.time()) - moment) > settings.webhook_tolerance_seconds:
        raise BadSignature("The signed timestamp is too old or in the future; replays are refused.")
    expected = sign_json(settings.webhook_secret, req.get_data(), moment).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        raise BadSignature()
    claim_signature(current_app.extensions["database"], expected, moment, settings.webhook_tolerance_seconds)


def claim_signature(database, signature: str, moment: float, tolerance: float) -> None:
    """Accept ``signature`` once: a second request with it (a replay within the window) is 403.

    Claimed in its own short transaction, before the webhook's work: a request that then fails
    has spent its signature, and the phone system's retry is signed afresh (a new timestamp).
    Claims older than twice the window are swept on the way, since their timestamps are refused
    anyway.
    """
    with database.engine.begin() as connection:
        connection.execute(
            delete(webhook_signatures).where(webhook_signatures.c.signed_ts < time.time() - 2 * tolerance)
        )
        try:
            with connection.begin_nested():
                connection.execute(insert(webhook_signatures).values(signature=signature, signed_ts=moment))
        except IntegrityError:
            raise BadSignature("This signed request was already received; a replay is refused.") from None


def signed(kind: str):
    """Decorate a view: ``@signed("twilio")`` or ``@signed("json")`` verifies before it runs."""
    check = {"twilio": verify_twilio, "json": verify_json}[kind]

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            check(request, current_app.extensions["settings"])
            return view(*args, **kwargs)

        # Signed by the phone system, not by a signed-in user: the gateway passes it through.
        return public(wrapper)

    return decorate
