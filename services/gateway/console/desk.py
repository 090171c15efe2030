"""(to be written: the desk screen)"""

from __future__ import annotations

from shared.auth import rule

from .base import console, page, render

ACCESS: list = [rule("/desk*", "agent")] if "agent" != "agent" else []


@console.route("/desk")
@page
def desk_page():
    return render("console/placeholder.html", title="desk")
