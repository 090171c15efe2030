"""One front: ``/api/<service>/...``, the phone webhooks and survey links, passed on to the services.

``/api/tickets/<path>``, ``/api/callrouting/<path>`` and ``/api/surveys/<path>`` reach the
service's ``/<path>`` with the signed-in user as an internal token (``upstream``); the service
checks the role (``ACCESS`` in its ``app.py``), so its 401/403 and every other 4xx come back as
they are (already problem+json). A service that does not answer usefully is a problem+json with
the upstream's status: its own 5xx, 503 when it is unreachable or its breaker is open, 504 when
it timed out; never a stack trace.

``/webhooks/...`` and ``/links/<token>`` are public here: the phone system's signature and the
survey link's signed token are checked by the service. Twilio signs the full public URL it
called, so the gateway tells the service that URL in ``X-Forwarded-Proto``/``X-Forwarded-Host``
(services behind the gateway run with ``PROXY_HOPS=1``, or with ``PUBLIC_BASE_URL`` equal to
the gateway's public URL); the body is passed on byte for byte and the answer (TwiML or JSON)
comes back byte for byte.

The routes are plain Flask routes: the services' own specs (``/api/<service>/openapi.json``)
describe what is behind them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import flask
import requests
from flask import Response, current_app, request
from flask_smorest import Blueprint

from shared.auth import ANONYMOUS, public
from shared.problems import PROBLEM_JSON, problem
from shared.webhooks import SIGNATURE_HEADER, TWILIO_SIGNATURE_HEADER, public_url

from .upstream import BACKENDS, UpstreamUnavailable, upstreams

front = Blueprint("front", __name__, description="One front: /api/<service>/..., the phone webhooks and survey links.")

# The role checks happen in the services (the internal token carries the role).
ACCESS: list = []

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
# What a client may tell a service through the front (besides the user and request id the gateway signs).
_API_REQUEST_HEADERS = ("Content-Type", "Accept", "Idempotency-Key")
# A webhook keeps every header but these: hop-by-hop ones, the Host the gateway was called at (told as
# X-Forwarded-Host instead), the body's length (set again) and anything claiming to be the gateway's.
_NOT_FORWARDED = frozenset(
    (
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "authorization",
        "cookie",
        "x-internal-token",
        "x-request-id",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-for",
    )
)
_ANSWER_HEADERS = (
    "Content-Type",
    "Location",
    "X-Total-Count",
    "Retry-After",
    "Content-Disposition",
    "ETag",
    "Last-Modified",
    "WWW-Authenticate",
    "Idempotent-Replayed",
)
_NO_ANSWER = {"timed out": 504}  # any other failure without an answer (unreachable, circuit open): 503


def _route(rule: str, view, methods) -> None:
    # flask.Blueprint's own add_url_rule: not in the gateway's OpenAPI spec (the services' specs say what is here).
    flask.Blueprint.add_url_rule(front, rule, view_func=view, methods=methods)


def _target(path: str) -> str:
    query = request.query_string.decode("latin-1")
    return f"/{path}?{query}" if query else f"/{path}"


def pass_on(service: str, path: str, headers: dict[str, str], *, user=None) -> Response:
    """``request`` to ``service`` at ``/path``; its answer, or the problem of its absence."""
    try:
        answer = upstreams().call(
            service,
            request.method,
            _target(path),
            user=user,
            headers=headers,
            data=request.get_data(),
        )
    except UpstreamUnavailable as error:
        return _unavailable(error)
    return _answer(service, answer)


def _answer(service: str, answer: requests.Response) -> Response:
    response = Response(answer.content, status=answer.status_code)
    for name in _ANSWER_HEADERS:
        value = answer.headers.get(name)
        if value is not None:
            response.headers[name] = _location(service, value) if name == "Location" else value
    if "Content-Type" not in answer.headers:
        del response.headers["Content-Type"]  # an empty answer (204) has none
    return response


def _location(service: str, location: str) -> str:
    """A service's Location, as the client reaches it: under ``/api/<service>``."""
    base = upstreams().services[service].base_url
    if location.startswith(base):
        location = location[len(base) :] or "/"
    return f"/api/{service}{location}" if location.startswith("/") else location


def _unavailable(error: UpstreamUnavailable) -> Response:
    upstream_answer = error.response
    status = upstream_answer.status_code if upstream_answer is not None else _NO_ANSWER.get(error.reason, 503)
    detail = f"The {error.service} service {error.reason}."
    if upstream_answer is not None and upstream_answer.headers.get("Content-Type", "").startswith(PROBLEM_JSON):
        try:
            detail = f"{detail} {upstream_answer.json().get('detail') or ''}".strip()
        except ValueError:
            pass  # a body that is not JSON after all: the sentence above says enough
    response = problem(status, _TITLES.get(status, "Upstream Error"), detail, service=error.service)
    if upstream_answer is not None and upstream_answer.headers.get("Retry-After"):
        response.headers["Retry-After"] = upstream_answer.headers["Retry-After"]
    elif status == 503:
        response.headers["Retry-After"] = str(int(upstreams().services[error.service].breaker.reset_timeout))
    return response


_TITLES = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


# --- /api/<service>/... ----------------------------------------------------------------------


def api(service: str, path: str):
    """The signed-in user's request, passed on to the service's ``/<path>``."""
    headers = {name: request.headers[name] for name in _API_REQUEST_HEADERS if name in request.headers}
    headers.update({name: value for name, value in request.headers.items() if name.lower().startswith("if-")})
    return pass_on(service, path, headers)


_route(f"/api/<any({', '.join(BACKENDS)}):service>/<path:path>", api, METHODS)


# --- /webhooks/... and /links/<token>: public, signed by others --------------------------------


def _forwarded_headers() -> dict[str, str]:
    """Everything the caller sent, plus the public URL they called (for Twilio's signature)."""
    headers = {name: value for name, value in request.headers.items() if name.lower() not in _NOT_FORWARDED}
    called = urlsplit(public_url(request, current_app.extensions["settings"]))
    headers["X-Forwarded-Proto"] = called.scheme
    headers["X-Forwarded-Host"] = called.netloc
    chain = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    headers["X-Forwarded-For"] = ", ".join([*chain, request.remote_addr or "unknown"])
    return headers


def webhook_service(path: str) -> str:
    """Whose webhook ``/webhooks/<path>`` is: the keypad survey's is the surveys', inbound mail the
    tickets', the rest call routing's."""
    if path.startswith("mail/"):
        return "tickets"
    return "surveys" if path == "twilio/survey" or path.startswith("twilio/survey/") else "callrouting"


_SIGNATURE_HEADERS = (TWILIO_SIGNATURE_HEADER, SIGNATURE_HEADER)


@public
def webhooks(path: str):
    """A phone system's webhook (Twilio's or the signed JSON one), to call routing or surveys.

    The service checks the signature (the gateway holds no webhook secret); what the gateway can
    refuse without it, it refuses before reading the body: one over the size limit (413, in
    ``shared.web``) and one that carries no signature at all (403).
    """
    if request.method == "POST" and not any(request.headers.get(name) for name in _SIGNATURE_HEADERS):
        return problem(403, "Forbidden", "The webhook carries no signature (X-Twilio-Signature or X-Signature).")
    return pass_on(webhook_service(path), f"webhooks/{path}", _forwarded_headers(), user=ANONYMOUS)


@public
def survey_link(token: str):
    """A customer's survey link page (the signed token in the URL is the credential)."""
    return pass_on("surveys", f"links/{token}", _forwarded_headers(), user=ANONYMOUS)


_route("/webhooks/<path:path>", webhooks, ["GET", "POST"])
_route("/links/<token>", survey_link, ["GET", "POST"])


@public
def survey_mail_unsubscribe(token: str):
    """The unsubscribe link of a survey mail (List-Unsubscribe; the signed token is the credential)."""
    return pass_on("surveys", f"links/unsubscribe/{token}", _forwarded_headers(), user=ANONYMOUS)


_route("/links/unsubscribe/<token>", survey_mail_unsubscribe, ["GET", "POST"])
