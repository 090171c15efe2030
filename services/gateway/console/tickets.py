"""(to be written: the tickets screen)"""

from __future__ import annotations

from shared.auth import rule

from .base import console, page, render

ACCESS: list = [rule("/tickets*", "agent")] if "agent" != "agent" else []


@console.route("/tickets")
@page
def tickets_page():
    return render("console/placeholder.html", title="tickets")
