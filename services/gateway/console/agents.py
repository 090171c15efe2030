"""(to be written: the agents screen)"""

from __future__ import annotations

from shared.auth import rule

from .base import console, page, render

ACCESS: list = [rule("/agents*", "supervisor")] if "supervisor" != "agent" else []


@console.route("/agents")
@page
def agents_page():
    return render("console/placeholder.html", title="agents")
