"""The supervisor's daily report, joined from the three services."""

from __future__ import annotations

from flask_smorest import Blueprint

reports = Blueprint("reports", __name__, description="The supervisor's daily report, joined from the three services.")

# Which role these routes need beyond an agent (shared.auth rules; collected by app.py).
ACCESS: list = []
