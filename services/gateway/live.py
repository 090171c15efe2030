"""Live updates per signed-in user (Server-Sent Events from the broker)."""

from __future__ import annotations

from flask_smorest import Blueprint

live = Blueprint("live", __name__, description="Live updates per signed-in user (Server-Sent Events from the broker).")

# Which role these routes need beyond an agent (shared.auth rules; collected by app.py).
ACCESS: list = []
