"""Sign-in, sign-out, tokens and user management."""

from __future__ import annotations

from flask_smorest import Blueprint

auth = Blueprint("auth", __name__, description="Sign-in, sign-out, tokens and user management.")

# Which role these routes need beyond an agent (shared.auth rules; collected by app.py).
ACCESS: list = []
