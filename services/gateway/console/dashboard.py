"""(to be written: the dashboard screen)"""

from __future__ import annotations

from shared.auth import rule

from .base import console, page, render

ACCESS: list = [rule("/dashboard*", "supervisor")] if "supervisor" != "agent" else []


@console.route("/dashboard")
@page
def dashboard_page():
    return render("console/placeholder.html", title="dashboard")
