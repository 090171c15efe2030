"""Errors as RFC 9457 problem details (``application/problem+json``), never HTML.

The service layers raise plain domain errors (``shared.errors``); this module is where they,
and every HTTP error, become answers. Validation failures (422) list every invalid field in ``errors``, each with a JSON
pointer into the request body (or the query-string parameter) and what is wrong.
"""

from __future__ import annotations

import logging

from flask import Response, json, request
from marshmallow import Schema, fields
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from shared.errors import Conflict, DomainError, Invalid, NotFound
from shared.logs import correlation_id

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class FieldErrorSchema(Schema):
    field = fields.String(metadata={"description": "the field, dotted (``phones.0``), or ``_schema``"})
    detail = fields.String()
    location = fields.String(metadata={"description": "json, query, path, ..."})
    pointer = fields.String(metadata={"description": "a JSON pointer into the body (location json)"})
    parameter = fields.String(metadata={"description": "the parameter's name (other locations)"})


class ProblemSchema(Schema):
    """What every error answer is (``application/problem+json``, RFC 9457); the specs say so."""

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    instance = fields.String()
    request_id = fields.String(allow_none=True)
    errors = fields.List(fields.Nested(FieldErrorSchema), metadata={"description": "422: each invalid field"})


def problem(status: int, title: str, detail: str | None = None, **extensions) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path
    body["request_id"] = correlation_id.get()
    body.update(extensions)
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)


def field_errors(messages: dict) -> list[dict]:
    """Flatten webargs/marshmallow messages ({location: {field: [msg]}}) into a list."""
    flat: list[dict] = []

    def walk(location: str, path: list[str], node) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(location, [*path, str(key)], child)
        elif isinstance(node, list) and node and all(isinstance(item, str) for item in node):
            for message in node:
                flat.append(_field_error(location, path, message))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(location, [*path, str(index)], child)
        else:
            flat.append(_field_error(location, path, str(node)))

    for location, named in messages.items():
        walk(location, [], named)
    return flat


def _field_error(location: str, path: list[str], message: str) -> dict:
    name = ".".join(path) if path else "_schema"
    entry = {"field": name, "detail": message, "location": location}
    if location == "json":
        entry["pointer"] = "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in path)
    else:
        entry["parameter"] = name
    return entry


def http_exception_to_problem(error: HTTPException) -> Response:
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    status = error.code or 500
    if status == 400 and messages and "json" in messages and "Invalid JSON body." in str(messages["json"]):
        return problem(400, "Bad Request", "The request body is not valid JSON.")
    if messages:
        errors = field_errors(messages)
        return problem(
            status,
            error.name,
            f"{len(errors)} invalid field(s): " + ", ".join(sorted({e["field"] for e in errors})),
            errors=errors,
        )
    # flask-smorest's abort(404, message="No call nope.") carries its sentence in data["message"].
    response = problem(status, error.name, data.get("message") or error.description)
    if status == 405 and error.get_response().headers.get("Allow"):
        response.headers["Allow"] = error.get_response().headers["Allow"]
    return response


_DOMAIN_STATUS = {NotFound: 404, Conflict: 409, Invalid: 422}


def status_of(error: DomainError) -> int:
    """The HTTP status of a service layer's plain error (404, 409, 422; 400 for any other)."""
    return next((code for kind, code in _DOMAIN_STATUS.items() if isinstance(error, kind)), 400)


def domain_error_to_problem(error: DomainError) -> Response:
    """The one place where a service layer's plain error becomes an HTTP answer."""
    status = status_of(error)
    title = HTTP_STATUS_CODES[status]  # the same titles as werkzeug's HTTP errors
    if isinstance(error, Invalid):
        errors = field_errors({error.location: error.errors})
        detail = f"{len(errors)} invalid field(s): " + ", ".join(sorted({e["field"] for e in errors}))
        return problem(status, title, detail, errors=errors)
    return problem(status, title, error.detail)


def unexpected_error_to_problem(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return http_exception_to_problem(error)
    if isinstance(error, DomainError):
        return domain_error_to_problem(error)
    if isinstance(error, OperationalError):
        # Locked past the busy timeout, or the server is gone: the request may be retried.
        log.warning("database unavailable", extra={"error": str(error.orig)})
        response = problem(503, "Service Unavailable", "The database is busy or unreachable; try again shortly.")
        response.headers["Retry-After"] = "1"
        return response
    refused = _refused_input(error)
    if refused is not None:
        return refused
    log.exception("unhandled error")
    return problem(500, "Internal Server Error", "An unexpected error occurred; it has been logged.")


def _refused_input(error: Exception) -> Response | None:
    """The input a schema could not stop, answered as the client's mistake rather than a 500.

    These are the last line (each route should refuse such input before it gets this far): a
    structure nested too deeply to handle, text that cannot be encoded (a lone surrogate), a
    number or date out of any representable range, and a write that a unique or foreign-key
    constraint refused (two requests racing, or a reference the route did not check).
    """
    if isinstance(error, RecursionError):
        return problem(400, "Bad Request", "The request is nested too deeply.")
    if isinstance(error, UnicodeError):
        return problem(400, "Bad Request", "The request has text that is not valid Unicode (a lone surrogate?).")
    if isinstance(error, OverflowError):
        return problem(422, "Unprocessable Content", "A number or date in the request is out of range.")
    if isinstance(error, IntegrityError):
        log.warning("write refused by a constraint", extra={"error": str(error.orig)[:300]})
        return problem(409, "Conflict", "The change conflicts with an existing record or names one that is unknown.")
    return None
