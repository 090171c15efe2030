"""What every service's Flask app has in common, so each ``app.py`` only adds its routes.

``create_service_app`` gives a service: JSON logs with a request id (``X-Request-ID`` in,
out, and on every event the request publishes), migrations applied on start, problem+json
errors, ``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json`` from the marshmallow
schemas of its flask-smorest blueprints.
"""

from __future__ import annotations

import http
import json
import re
import time
from collections.abc import Callable, Iterable
from typing import ClassVar

import flask_smorest
from flask import Flask, current_app, g, jsonify, request
from flask_smorest import Api, Blueprint
from flask_smorest.utils import prepare_response
from marshmallow import RAISE
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from shared import broker, idempotency, metrics
from shared.auth import AccessControl, AccessRule, InternalTokens, User, internal_token_authenticator, public
from shared.config import Settings
from shared.db import Database, Migrations, migrate
from shared.errors import DomainError
from shared.json_provider import OrjsonProvider
from shared.logs import configure_logging, correlation_id, new_id
from shared.problems import (
    PROBLEM_JSON,
    ProblemSchema,
    domain_error_to_problem,
    http_exception_to_problem,
    problem,
    unexpected_error_to_problem,
)
from shared.unit_of_work import UnitOfWork

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_NOT_LOGGED = frozenset(("/healthz", "/metrics"))  # probes and scrapes would drown the access log


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class ProblemApi(Api):
    """flask-smorest's Api, answering every HTTP error as problem+json, and saying so in the spec."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return http_exception_to_problem(error)

    def _register_responses(self):
        # flask-smorest's own, with the content type the answers really have.
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An error, as problem+json", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


# ``@blueprint.doc(**CSV_TOO)`` on a route whose 200 is also CSV (``?format=csv``): the spec says so.
CSV_TOO = {"responses": {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}}


def load_json_body(raw: bytes):
    """A request's JSON, or a 400 for what the parser cannot take: nesting too deep for it, or a
    lone surrogate (``"\\ud800"``), which is valid JSON but no text any database can store."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise BadRequest("The JSON body is nested too deeply.") from None
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(document):
        raise BadRequest("The JSON body has a lone surrogate (\\ud800-\\udfff); it is not text.")
    return document


def _has_lone_surrogate(node) -> bool:
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(node, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(value) for key, value in node.items())
    if isinstance(node, list):
        return any(_has_lone_surrogate(item) for item in node)
    return False


class SafeJSONParser(FlaskParser):
    """webargs' Flask parser with :func:`load_json_body` (every schema-read body goes through it),
    and refusing query parameters no schema names: ``?assignee_id=`` where the filter is
    ``assignee`` is a 422 naming it, not a silently unfiltered list."""

    DEFAULT_UNKNOWN_BY_LOCATION: ClassVar[dict[str, str | None]] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return webargs_core.missing
        return load_json_body(req.get_data(cache=True))

    def load_json(self, req, schema):
        data = super().load_json(req, schema)
        if data is webargs_core.missing and req.method in ("PUT", "PATCH"):
            # A PUT or PATCH without a body would be a silent no-op (or create defaults): say so.
            flask_smorest.abort(422, messages={"json": {"_schema": [f"A {req.method} needs a JSON body."]}})
        return data


# Every flask-smorest blueprint of every service reads its bodies through this parser.
flask_smorest.Blueprint.ARGUMENTS_PARSER = SafeJSONParser()


def create_service_app(
    settings: Settings,
    *,
    title: str,
    migrations: Migrations,
    blueprints: Iterable[Blueprint] = (),
    description: str = "",
    access: Iterable[AccessRule] = (),
    authenticate: Callable[[], User | None] | None = None,
    static_folder: str | None = None,
    pages: Iterable = (),
    denied: Callable | None = None,
) -> Flask:
    """A service's Flask app. ``access``: which roles its routes need (``shared.auth``);
    ``authenticate``: how a caller is recognised (by default, the gateway's internal token);
    ``pages``: plain Flask blueprints of HTML pages (not in the OpenAPI spec); ``denied``: how
    their refusals answer (``shared.auth.AccessControl``).
    """
    configure_logging(settings.service, settings.log_level)
    app = Flask(settings.service, static_folder=static_folder)
    app.json = OrjsonProvider(app)
    app.config.update(
        API_TITLE=title,
        API_VERSION="1.0",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": {"description": description}},
        # werkzeug refuses to read more (413); _start refuses a declared length above it at once.
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    if not settings.internal_auth_secret:
        # Without it a service could not tell the gateway's calls from anyone's: refuse to start.
        raise RuntimeError(f"INTERNAL_AUTH_SECRET is unset: {settings.service} cannot check who calls it")
    database = Database(settings.database_url)
    migrate(database, migrations)
    app.extensions["settings"] = settings
    app.extensions["database"] = database
    tokens = InternalTokens(settings.internal_auth_secret, settings.internal_token_max_age)
    app.extensions["internal_tokens"] = tokens

    api = ProblemApi(app)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    for blueprint in pages:
        app.register_blueprint(blueprint)
    app.register_error_handler(DomainError, domain_error_to_problem)  # the service layers' errors
    app.register_error_handler(Exception, unexpected_error_to_problem)
    app.register_error_handler(RequestEntityTooLarge, http_exception_to_problem)
    _install_operational_routes(app, database, settings)
    access_control = AccessControl(
        app,
        authenticate or internal_token_authenticator(tokens),
        access,
        scrape_token=settings.metrics_token,
        denied=denied,
    )
    _install_request_context(app, database, access_control)
    return app


def database() -> Database:
    return current_app.extensions["database"]


def unit_of_work(*, read_only: bool = False) -> UnitOfWork:
    """A unit of work for this request; reads should say ``read_only=True``.

    A writing unit of work claims the request's ``Idempotency-Key`` (if any) in its own
    transaction, so the key is spent only if the change commits.
    """
    return UnitOfWork(
        database(),
        source=current_app.extensions["settings"].service,
        read_only=read_only,
        on_begin=None if read_only else idempotency.claim,
    )


def _install_request_context(app: Flask, database: Database, access_control: AccessControl) -> None:
    proxy_hops = app.extensions["settings"].proxy_hops

    # These hooks run on every request, so each reads the request and ``g`` through their
    # proxies once and talks to the database object it was given, not via current_app.
    @app.before_request
    def _start():
        state = g._get_current_object()
        incoming = request.environ.get(_REQUEST_ID_ENVIRON, "")  # what request.headers.get() reads
        state.request_id = incoming if _VALID_REQUEST_ID.match(incoming) else new_id()
        state.correlation_token = correlation_id.set(state.request_id)
        state.started = time.perf_counter()
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if limit is not None and (request.content_length or 0) > limit:
            # Before anything reads it (werkzeug would also stop at the limit for a chunked body).
            return problem(413, "Content Too Large", f"The request body is over {limit} bytes.")
        # Who asks is settled before anything else, a replayed idempotent answer included.
        return access_control.check() or idempotency.before_request(database)

    @app.after_request
    def _finish(response):
        response = idempotency.after_request(database, response)
        state = g._get_current_object()
        current = request._get_current_object()
        response.headers[REQUEST_ID_HEADER] = getattr(state, "request_id", "")
        _security_headers(response, current, proxy_hops)
        rule = current.url_rule
        endpoint = rule.rule if rule is not None else "unmatched"
        now = time.perf_counter()
        elapsed = now - getattr(state, "started", now)
        status = response.status_code
        metrics.observe_request(current.method, endpoint, status, elapsed)
        if endpoint not in _NOT_LOGGED:
            app.logger.info(
                "request",
                extra={
                    "method": current.method,
                    "path": current.path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
        return response

    @app.teardown_request
    def _end(_error):
        token = g.pop("correlation_token", None)
        if token is not None:
            correlation_id.reset(token)


def _security_headers(response, current, proxy_hops: int) -> None:
    """What every answer says to a browser: never guess a content type, never be framed, and
    (once served over HTTPS) only ever be reached over HTTPS."""
    headers = response.headers
    if response.status_code in (204, 304):
        headers.pop("Content-Type", None)  # no content, no type (Flask's default would say text/html)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    forwarded = [part.strip() for part in current.headers.get("X-Forwarded-Proto", "").split(",") if part.strip()]
    behind_https = proxy_hops > 0 and len(forwarded) >= proxy_hops and forwarded[-proxy_hops] == "https"
    if current.is_secure or behind_https:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def _install_operational_routes(app: Flask, database: Database, settings: Settings) -> None:
    @app.get("/healthz")
    @public
    def healthz():
        return jsonify(status="ok", service=settings.service)

    @app.get("/readyz")
    @public
    def readyz():
        checks = {}
        for name, check in (("database", database.ping), ("broker", lambda: broker.ping(settings.amqp_url))):
            try:
                check()
                checks[name] = "ok"
            except Exception as error:  # noqa: BLE001 - any failure means: not ready
                checks[name] = f"unavailable: {type(error).__name__}"
        if all(state == "ok" for state in checks.values()):
            return jsonify(status="ready", service=settings.service, checks=checks)
        return problem(503, "Service Unavailable", "A dependency is unavailable.", checks=checks)

    backlog = metrics.OutboxBacklogCollector(database)

    @app.get("/metrics")
    def prometheus_metrics():
        body, content_type = metrics.render([backlog])
        return body, 200, {"Content-Type": content_type}
