"""Users, passwords and the tokens that prove a sign-in.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second profile). A
sign-in gives an opaque random token; only its SHA-256 is stored, with an expiry, so a
stolen database yields no usable token and sign-out is a revocation. The console keeps its
token in an HttpOnly cookie and must echo a CSRF token (an HMAC of the session token) on
every write; API clients send theirs as ``Authorization: Bearer``, which needs no CSRF token
because no browser sends it by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, request
from sqlalchemy import select
from werkzeug.exceptions import Forbidden

from shared.auth import ROLES, User
from shared.db import Database

from .models import AuthToken, UserAccount

SESSION_COOKIE = "cc_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
_hasher = PasswordHasher()


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- passwords ------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- tokens ---------------------------------------------------------------------------------


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(session_token: str, secret: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def issue_token(session, user_id: str, kind: str, lifetime: timedelta, label: str | None = None) -> str:
    """A new token for ``user_id`` (added to ``session``; the caller commits). Returns the token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AuthToken(
            token_hash=token_digest(token),
            user_id=user_id,
            kind=kind,
            label=label,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def user_for_token(database: Database, token: str) -> User | None:
    """The active user a live (unexpired, unrevoked) token belongs to."""
    query = (
        select(UserAccount.id, UserAccount.role)
        .join(AuthToken, AuthToken.user_id == UserAccount.id)
        .where(
            AuthToken.token_hash == token_digest(token),
            AuthToken.revoked_at.is_(None),
            AuthToken.expires_at > utcnow(),
            UserAccount.active.is_(True),
        )
    )
    with database.reader.connect() as connection:  # a read: no write lock on SQLite
        row = connection.execute(query).first()
    if row is None or row.role not in ROLES:
        return None
    return User(row.id, row.role)


def authenticate() -> User | None:
    """The gateway's way to recognise a caller: a bearer token, or the console's cookie + CSRF."""
    database = current_app.extensions["database"]
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return user_for_token(database, header[7:].strip())
    session_token = request.cookies.get(SESSION_COOKIE)
    if not session_token:
        return None
    user = user_for_token(database, session_token)
    if user is not None and request.method not in _SAFE_METHODS:
        expected = csrf_token_for(session_token, current_app.extensions["settings"].internal_auth_secret or "")
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), expected):
            raise Forbidden(f"A signed-in console write needs its CSRF token in {CSRF_HEADER}.")
    return user
