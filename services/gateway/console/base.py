"""What every console page shares: the blueprint, the page marker, asking a service as the
signed-in user, rendering, and the answers to refusals and failures.

The console is server-rendered (Jinja, autoescaped: nothing a user typed is ever rendered as
HTML) with htmx for the parts of a page that change. Every page and action calls the services
through the gateway's own ``upstreams`` as the signed-in user, exactly as the JSON API does, so
the services' rules and roles hold for the console too.

- ``@page`` marks a view as a console page: without a session it redirects to the sign-in page
  (a full page) or answers 401 with ``HX-Redirect`` (an htmx request) instead of problem+json.
- ``ask(service, method, path, ...)`` returns the service's JSON answer; a 4xx raises
  ``Refused`` and an unreachable service ``ServiceDown``, both rendered as an alert (the
  problem's detail and field errors) into the page's ``#flash`` region.
- ``render(template, **context)`` renders a page, or for htmx only the fragment it asked for.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    send_from_directory,
)
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.http import HTTP_STATUS_CODES

from shared.auth import acting_user, public
from shared.errors import DomainError
from shared.problems import status_of

from .. import users
from ..upstream import UpstreamUnavailable, upstreams

console = Blueprint(
    "console",
    __name__,
    template_folder="templates",
)
STATIC = Path(__file__).resolve().parent / "static"

# Front-end libraries come from npm (package-lock.json; `make setup` runs `npm ci`), never from
# the repo: the name a page asks for, and where it lies under node_modules.
NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"
VENDOR_FILES = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
}


def page(view):
    """Mark a view as part of the console: refusals answer as pages, not problem+json."""
    view.console_page = True
    return view


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def denied(view, status: int, detail: str) -> Response | None:
    """How the console answers a request it may not serve (``shared.auth.AccessControl``)."""
    if not getattr(view, "console_page", False):
        return None
    if status == 401:
        target = "/sign-in?next=" + quote(request.full_path.rstrip("?"), safe="/")
        if is_htmx() or request.method != "GET":
            answer = make_response("", 401)
            answer.headers["HX-Redirect"] = target
            return answer
        return redirect(target, 303)
    return _alert_answer(status, "Not allowed", detail)


# --- asking the services -----------------------------------------------------------------------


class Refused(HTTPException):
    """A service answered 4xx: its problem, to show the user."""

    def __init__(self, status: int, problem: dict):
        super().__init__(problem.get("detail") or problem.get("title") or "Refused")
        self.code = status
        self.problem = problem


class ServiceDown(HTTPException):
    code = 503

    def __init__(self, service: str, reason: str):
        super().__init__(f"The {service} service is not answering ({reason}); try again in a moment.")
        self.service = service


def ask(
    service: str,
    method: str,
    path: str,
    *,
    json: Any = None,
    params: dict | None = None,
    idempotency_key: str | None = None,
    missing_ok: bool = False,
) -> Any:
    """The JSON answer of ``service`` to ``method path``, asked as the signed-in user.

    ``idempotency_key``: a key rendered into the form, so that a double submit changes nothing
    twice. ``missing_ok``: a 404 returns None instead of raising.
    """
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    try:
        answer = upstreams().call(service, method, path, json=json, params=params, headers=headers)
    except UpstreamUnavailable as error:
        raise ServiceDown(service, error.reason) from None
    if answer.status_code == 404 and missing_ok:
        return None
    if answer.status_code >= 400:
        raise refused(answer)
    if answer.status_code == 204 or not answer.content:
        return None
    if "json" not in answer.headers.get("Content-Type", ""):
        return answer.text
    return answer.json()


def refused(answer) -> Refused:
    """A service's 4xx answer as ``Refused``, with its problem (or what it said instead)."""
    try:
        problem = answer.json()
    except ValueError:
        problem = {"title": answer.reason, "detail": answer.text[:300]}
    return Refused(answer.status_code, problem if isinstance(problem, dict) else {"detail": str(problem)})


def new_key() -> str:
    """A fresh idempotency key for a form."""
    return uuid.uuid4().hex


# --- rendering ---------------------------------------------------------------------------------


def render(template: str, http_status: int = 200, **context) -> Response:
    """Render ``template`` (it extends ``console/base.html`` and knows ``is_htmx`` for fragments)
    with ``http_status``; ``status`` is left free for the templates' own use."""
    return make_response(render_template(template, **context), http_status)


def signed_in_account():
    user = acting_user()
    if user.id is None:
        return None
    return users.get_user(current_app.extensions["database"], user.id)


@console.app_context_processor
def _console_context():
    if request.blueprint != "console":
        return {}
    user = acting_user()
    csrf = ""
    presented = users.presented_token() if user.id else None
    if presented and presented[0] == "cookie":
        csrf = users.csrf_token_for(presented[1], current_app.extensions["settings"].internal_auth_secret or "")
    return {"user": user, "csrf_token": csrf, "is_htmx": is_htmx(), "new_key": new_key}


def _alert_answer(status: int, title: str, detail: str, errors: dict | None = None) -> Response:
    """A refusal or failure, shown in the page's alert region (htmx) or as a page of its own."""
    context = {"status": status, "title": title, "detail": detail, "errors": field_errors(errors)}
    if is_htmx():
        answer = make_response(render_template("console/alert.html", **context), status)
        answer.headers["HX-Retarget"] = "#flash"
        answer.headers["HX-Reswap"] = "innerHTML"
        return answer
    return make_response(render_template("console/error.html", **context), status)


def field_errors(errors, prefix: str = "") -> list[tuple[str, str]]:
    """Field errors as (field, message) pairs: the services' problem+json list of
    ``{"field", "detail", ...}`` (shared.problems), or marshmallow's nested messages."""
    if not errors:
        return []
    if isinstance(errors, str):
        return [(prefix, errors)]
    if isinstance(errors, list):
        pairs = []
        for item in errors:
            if isinstance(item, dict) and "detail" in item:
                pairs.append((str(item.get("field") or prefix), str(item["detail"])))
            else:
                pairs.extend(field_errors(item, prefix))
        return pairs
    if isinstance(errors, dict):
        return [pair for key, value in errors.items() for pair in field_errors(value, f"{prefix}.{key}".strip("."))]
    return [(prefix, str(errors))]


@console.errorhandler(Refused)
def _refused(error: Refused):
    problem = error.problem
    errors = problem.get("errors")
    return _alert_answer(error.code, problem.get("title") or "Refused", problem.get("detail") or "", errors)


@console.errorhandler(ServiceDown)
def _service_down(error: ServiceDown):
    return _alert_answer(503, "Service unavailable", error.description)


@console.errorhandler(DomainError)
def _domain_error(error: DomainError):
    """A use case's plain error (an unknown customer or user...), shown like the HTTP one it maps to."""
    status = status_of(error)
    return _alert_answer(status, HTTP_STATUS_CODES[status], error.detail)


@console.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return _alert_answer(error.code or 500, error.name, error.description or "")


# --- the console's own files and the front-end libraries -----------------------------------------


@console.route("/static/console/<path:filename>")
@public  # the sign-in page needs them too
def static_file(filename: str):
    return send_from_directory(STATIC, filename, max_age=300)


@console.route("/static/vendor/<name>")
@public  # the libraries the sign-in page needs too
def vendor_file(name: str):
    relative = VENDOR_FILES.get(name)
    if relative is None or not (NODE_MODULES / relative).is_file():
        raise NotFound(f"No front-end library {name!r} (run `make setup`, which runs `npm ci`).")
    return send_file(NODE_MODULES / relative, mimetype="text/javascript", max_age=3600)


# --- headers every console answer carries -----------------------------------------------------------

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


@console.after_request
def _page_headers(response: Response) -> Response:
    # No inline script may run, even if markup ever slipped through the escaping.
    if response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["Cache-Control"] = "no-store"  # pages hold customers' data
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
