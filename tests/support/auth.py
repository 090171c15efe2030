"""Calling a service as the gateway does: with an internal token naming the user.

The services refuse every request without one (``shared.auth``); tests that talk to a
service directly sign their requests with the test run's ``INTERNAL_AUTH_SECRET``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from shared.auth import INTERNAL_TOKEN_HEADER, InternalTokens, User


def tokens_of(app: Flask) -> InternalTokens:
    return app.extensions["internal_tokens"]


def as_user(app: Flask, user_id: str, role: str = "agent") -> dict[str, str]:
    """Headers for one request made for ``user_id`` with ``role``."""
    return {INTERNAL_TOKEN_HEADER: tokens_of(app).sign(User(user_id, role))}


def signed_client(app: Flask, user_id: str = "tester", role: str = "admin") -> FlaskClient:
    """A test client whose every request comes from the gateway for ``user_id`` (default: an admin)."""
    client = app.test_client()
    client.environ_base["HTTP_X_INTERNAL_TOKEN"] = tokens_of(app).sign(User(user_id, role))
    return client


class signed_as(Mapping):
    """Request headers for ``user_id`` with ``role``, signed afresh each time they are read.

    A module-level ``AGENT = signed_as("agent-7")`` stays valid however long the run takes.
    """

    def __init__(self, user_id: str, role: str = "agent"):
        self.user = User(user_id, role)

    def _headers(self) -> dict[str, str]:
        return {INTERNAL_TOKEN_HEADER: InternalTokens(os.environ["INTERNAL_AUTH_SECRET"]).sign(self.user)}

    def __getitem__(self, key):
        return self._headers()[key]

    def __iter__(self):
        return iter((INTERNAL_TOKEN_HEADER,))

    def __len__(self):
        return 1


def gateway_user(database, user_id: str, role: str = "agent", password: str = "correct horse battery") -> str:
    """Create ``user_id`` in the gateway's database (if new); return a fresh one-hour API token."""
    from services.gateway import users
    from services.gateway.models import UserAccount

    with database.sessions() as session:
        if session.get(UserAccount, user_id) is None:
            now = users.utcnow()
            session.add(
                UserAccount(
                    id=user_id,
                    name=user_id.replace("-", " ").title(),
                    role=role,
                    password_hash=users.hash_password(password),
                    active=True,
                    failed_sign_ins=0,
                    created_at=now,
                    password_changed_at=now,
                )
            )
            session.flush()
        token = users.issue_token(session, user_id, "api", timedelta(hours=1))
        session.commit()
    return token
