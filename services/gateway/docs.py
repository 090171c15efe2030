"""The documentation page linking every service's OpenAPI spec."""

from __future__ import annotations

from flask_smorest import Blueprint

docs = Blueprint("docs", __name__, description="The documentation page linking every service's OpenAPI spec.")

# Which role these routes need beyond an agent (shared.auth rules; collected by app.py).
ACCESS: list = []
