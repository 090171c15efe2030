"""(to be written: the recovery screen)"""

from __future__ import annotations

from shared.auth import rule

from .base import console, page, render

ACCESS: list = [rule("/recovery*", "supervisor")] if "supervisor" != "agent" else []


@console.route("/recovery")
@page
def recovery_page():
    return render("console/placeholder.html", title="recovery")
