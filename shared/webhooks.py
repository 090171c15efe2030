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
(300) from now is refused, so a captured request cannot be replayed later.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time

from flask import Request, current_app, request
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import Forbidden

from shared.auth import public
from shared.config import Settings

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_HEADER = "X-Signature"


class BadSignature(Forbidden):
    description = "The webhook signature is missing or does not verify."


def public_url(req: Request, settings: Settings) -> str:
    """The URL the phone system called, as it signed it."""
    if settings.public_base_url:
        return settings.public_base_url + req.full_path.rstrip("?")
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
