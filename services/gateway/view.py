"""The customer view, assembled from every service."""

from __future__ import annotations

from flask_smorest import Blueprint

customer_view = Blueprint("customer_view", __name__, description="The customer view, assembled from every service.")

# Which role these routes need beyond an agent (shared.auth rules; collected by app.py).
ACCESS: list = []
