"""(to be written: the campaigns screen)"""

from __future__ import annotations

from shared.auth import rule

from .base import console, page, render

ACCESS: list = [rule("/campaigns*", "supervisor")] if "supervisor" != "agent" else []


@console.route("/campaigns")
@page
def campaigns_page():
    return render("console/placeholder.html", title="campaigns")
