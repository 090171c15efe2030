"""(to be written: the customers screen)"""

from __future__ import annotations

from shared.auth import rule

from .base import console, page, render

ACCESS: list = [rule("/customers*", "agent")] if "agent" != "agent" else []


@console.route("/customers")
@page
def customers_page():
    return render("console/placeholder.html", title="customers")
