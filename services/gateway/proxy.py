"""One front: /api/<service>/... and the phone webhooks, passed on with the caller's identity."""

from __future__ import annotations

from flask_smorest import Blueprint

front = Blueprint("front", __name__, description="One front: /api/<service>/... and the phone webhooks, passed on with the caller's identity.")

# Which role these routes need beyond an agent (shared.auth rules; collected by app.py).
ACCESS: list = []
