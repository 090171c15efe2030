"""``Idempotency-Key`` on POST: a retried request gets the first answer instead of acting twice.

The key is claimed inside the request's first writing unit of work, so the claim commits
with the change or not at all: a request that failed (4xx raised inside the transaction,
or a crash) leaves nothing behind and may simply be retried. Once the change commits,
the response is stored and every retry with the same key and body gets it back, marked
``Idempotent-Replayed: true``. The same key with a different body is refused (422); a retry
that arrives while the first is still in flight gets 409 and may try again.

Keys are scoped to the method and path; they are kept ``RETENTION_SECONDS`` (24 h, as
Stripe does) and purged by the relay worker's housekeeping (``purge_expired``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time

from flask import Response, g, request
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.backbone import idempotency_keys as keys
from shared.db import Database
from shared.errors import Conflict
from shared.problems import problem

HEADER = "Idempotency-Key"
RETENTION_SECONDS = 24 * 3600
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces


def before_request(database: Database) -> Response | None:
    """Replay a stored answer, or note the key so the request's unit of work can claim it."""
    g.pop("idempotency", None)
    if request.method != "POST" or HEADER not in request.headers:
        return None
    key = request.headers[HEADER]
    if not _VALID_KEY.match(key):
        return problem(400, "Bad Request", f"{HEADER} must be 1 to 200 printable ASCII characters without spaces.")
    scope = f"POST {request.path}"
    fingerprint = hashlib.sha256(request.get_data()).hexdigest()
    with database.read_sessions() as session:
        stored = session.execute(
            select(keys.c.fingerprint, keys.c.status_code, keys.c.response).where(
                keys.c.scope == scope, keys.c.key == key
            )
        ).first()
    if stored is None:
        g.idempotency = {"scope": scope, "key": key, "fingerprint": fingerprint, "claimed": False}
        return None
    if stored.fingerprint != fingerprint:
        return problem(422, "Unprocessable Entity", f"This {HEADER} was already used with a different request body.")
    if stored.status_code is None:
        return _in_flight()
    saved = json.loads(stored.response)
    response = Response(saved["body"], status=stored.status_code, content_type=saved["content_type"])
    if saved.get("location"):
        response.headers["Location"] = saved["location"]
    response.headers["Idempotent-Replayed"] = "true"
    return response


def claim(session: Session) -> None:
    """Called by the request's first writing unit of work: the key commits with the change."""
    pending = g.get("idempotency")
    if not pending or pending["claimed"]:
        return
    row = {**{name: pending[name] for name in ("scope", "key", "fingerprint")}, "created_ts": time.time()}
    try:
        session.execute(insert(keys), row)
    except IntegrityError as error:  # the same key, committed by a concurrent request
        raise Conflict(_IN_FLIGHT) from error
    pending["claimed"] = True


def after_request(database: Database, response: Response) -> Response:
    """Store the answer of a request whose claim committed, so retries can get it back."""
    pending = g.get("idempotency")
    if not pending or not pending["claimed"] or response.status_code >= 500 or response.is_streamed:
        return response
    saved = {
        "body": response.get_data(as_text=True),
        "content_type": response.content_type,
        "location": response.headers.get("Location"),
    }
    with database.sessions() as session:
        session.execute(
            update(keys)
            .where(keys.c.scope == pending["scope"], keys.c.key == pending["key"], keys.c.status_code.is_(None))
            .values(status_code=response.status_code, response=json.dumps(saved))
        )
        session.commit()
    return response


def purge_expired(session: Session, now: float | None = None) -> int:
    cutoff = (now or time.time()) - RETENTION_SECONDS
    return session.execute(delete(keys).where(keys.c.created_ts < cutoff)).rowcount


_IN_FLIGHT = f"A request with this {HEADER} is still being processed; retry shortly."


def _in_flight() -> Response:
    response = problem(409, "Conflict", _IN_FLIGHT)
    response.headers["Retry-After"] = "1"
    return response
