"""Who is making a request.

Until the gateway's sign-in lands (issue 7), callers name themselves with ``X-User-Id``
(and ``X-User-Role``); the gateway will set both from the signed-in user and sign them,
and the services will then refuse requests that do not come through it. Service code asks
``acting_user()`` and never reads the headers itself, so that change stays in this file.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import has_request_context, request

USER_HEADER = "X-User-Id"
ROLE_HEADER = "X-User-Role"


@dataclass(frozen=True)
class User:
    id: str | None
    role: str | None


def acting_user() -> User:
    if not has_request_context():
        return User(None, None)
    return User(request.headers.get(USER_HEADER) or None, request.headers.get(ROLE_HEADER) or None)
