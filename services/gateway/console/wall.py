"""(to be written: the wall screen)"""

from __future__ import annotations

from shared.auth import rule

from .base import console, page, render

ACCESS: list = [rule("/wall*", "supervisor")] if "supervisor" != "agent" else []


@console.route("/wall")
@page
def wall_page():
    return render("console/placeholder.html", title="wall")
