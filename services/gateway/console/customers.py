"""The customers screen: search by name or number, and one customer's page.

- ``GET /customers?q=``: the tickets service's customer directory. Text that reads as a phone
  number (digits with the usual ``+ ( ) - . /`` and spaces) is looked up as one, in any format
  (``region`` for numbers without a country code); anything else is part of a name or e-mail.
- ``GET /customers/<id>/timeline``: the profile, segment and purchases, and one timeline of calls
  in and out, tickets and surveys, newest first, from the gateway's customer view
  (``view.customer_view``: the three services asked at once, under the view's deadline). An
  unknown customer is a 404 page; a merged one is sent on to the customer it was merged into.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from flask import make_response, redirect, request

from .. import view as customer_views
from .base import Refused, ask, console, field_errors, is_htmx, page, render
from .i18n import _, country_name, phone_region
from .tickets import relative, shown_time, sla_of

# Which role these routes need beyond an agent: none.
ACCESS: list = []

PER_PAGE = 25
# A search that reads as a phone number: at least five digits, and nothing but what numbers are written with.
PHONE_LIKE = re.compile(r"^\+?[\d\s()./-]*$")
REGION = re.compile(r"^[A-Za-z]{2}$")


def looks_like_phone(text: str) -> bool:
    return bool(PHONE_LIKE.match(text)) and sum(char.isdigit() for char in text) >= 5


@console.route("/customers")
@page
def customers_page():
    """The search form, and with ``q`` the customers found (a page of them)."""
    query = request.args.get("q", "").strip()
    region = request.args.get("region", "").strip().upper()
    # A national number ("0917 123 4567") is read in the country asked for, else the user's or the center's.
    default_region = phone_region()
    context = {"q": query, "region": region, "default_region": default_region, "results": None, "by": None,
               "alert": None}  # fmt: skip
    if query:
        by = "phone" if looks_like_phone(query) else "q"
        try:  # the console's own page number is the tickets API's offset
            page_asked = max(int(request.args.get("page", "1")), 1)
        except ValueError:
            page_asked = 1
        params = {by: query, "limit": PER_PAGE, "offset": (page_asked - 1) * PER_PAGE}
        if by == "phone":
            params["region"] = region or default_region
        try:
            found = ask("tickets", "GET", "/customers", params=params)
        except Refused as refused:
            if is_htmx():
                raise
            # A full page keeps the form, with the problem beside it; a number that cannot be read says so plainly.
            problem = refused.problem
            if by == "phone" and refused.code == 422:
                context["alert"] = {
                    "status": 422,
                    "title": _("Not a phone number we can read"),
                    "detail": _(
                        "“%(number)s” is not a phone number of %(country)s. Type it with its country code "
                        "(+…), or choose the country of the number.",
                        number=query,
                        country=country_name(params["region"]),
                    ),
                    "errors": [],
                }
            else:
                context["alert"] = {
                    "status": refused.code,
                    "title": problem.get("title") or _("Refused"),
                    "detail": problem.get("detail") or "",
                    "errors": field_errors(problem.get("errors")),
                }
            return render("console/customers/search.html", refused.code, **context)
        page_number = found["offset"] // found["limit"] + 1
        last_page = max(1, -(-found["total"] // found["limit"]))
        context.update(
            by=by,
            results=found["items"],
            total=found["total"],
            page_number=page_number,
            last_page=last_page,
            previous_url=_search_url(query, region, page_number - 1) if page_number > 1 else None,
            next_url=_search_url(query, region, page_number + 1) if page_number < last_page else None,
        )
    return render("console/customers/search.html", **context)


def _search_url(query: str, region: str, page_number: int) -> str:
    return "/customers?" + urlencode({"q": query, **({"region": region} if region else {}), "page": page_number})


# --- one customer --------------------------------------------------------------------------------


def _moment(text: str | None) -> datetime:
    value = datetime.fromisoformat(text) if text else datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def timeline_of(view: dict) -> list[dict]:
    """Calls in and out, tickets, survey responses and mails of a customer view as one list, newest first.

    Each entry: ``kind`` (call_in, call_out, ticket, survey, mail), ``at`` (ISO), ``anchor`` (an id
    for links such as the ticket page's ``#call-<id>``), ``item`` (the part's own dict).
    """
    entries = []
    calls = view.get("calls") or {}
    for call in (calls.get("inbound") or {}).get("items", []):
        entries.append(
            {"kind": "call_in", "at": call.get("received_at"), "anchor": f"call-{call['call_id']}", "item": call}
        )
    for attempt in (calls.get("outbound") or {}).get("items", []):
        at = attempt.get("ended_at") or attempt.get("started_at")
        entries.append({"kind": "call_out", "at": at, "anchor": f"attempt-{attempt['attempt_id']}", "item": attempt})
    for ticket in (view.get("tickets") or {}).get("recent", []):
        entries.append(
            {"kind": "ticket", "at": ticket.get("created_at"), "anchor": f"ticket-{ticket['id']}", "item": ticket}
        )
    for response in (view.get("surveys") or {}).get("recent", []):
        at = response.get("completed_at") or response.get("started_at")
        anchor = f"survey-{response['id']}"
        entries.append({"kind": "survey", "at": at, "anchor": anchor, "item": response})
    for mail in view.get("mails") or []:
        at = mail.get("sent_at") or mail.get("created_at")
        entries.append({"kind": "mail", "at": at, "anchor": f"mail-{mail['id']}", "item": mail})
    return sorted(entries, key=lambda entry: _moment(entry["at"]), reverse=True)


@console.route("/customers/<customer_id>/timeline")
@page
def customer_timeline(customer_id: str):
    """One customer's page. ``customer_view`` raises its 404 (a NotFound) for an unknown id."""
    view = customer_views.customer_view(customer_id)
    if view["customer_id"] != customer_id:  # merged: this page belongs to the survivor
        return redirect(f"/customers/{quote(view['customer_id'], safe='')}/timeline", 308)
    counts = {
        "call_in": ((view.get("calls") or {}).get("inbound") or {}).get("total"),
        "call_out": ((view.get("calls") or {}).get("outbound") or {}).get("total"),
        "ticket": (view.get("tickets") or {}).get("total"),
        "survey": (view.get("surveys") or {}).get("total"),
        "mail": len(view["mails"]) if view.get("mails") is not None else None,
    }
    return render(
        "console/customers/timeline.html",
        view=view,
        profile=view.get("profile") or {},
        timeline=timeline_of(view),
        counts=counts,
        shown_time=shown_time,
        relative=relative,
        sla_of=sla_of,
    )


# --- a new customer (the screen-pop's "Create customer" for an unknown caller) --------------------


@console.route("/customers/new")
@page
def new_customer_page():
    return render(
        "console/customers/new.html",
        phone=request.args.get("phone", "")[:40],
        default_region=phone_region(),
    )


@console.route("/customers/new", methods=["POST"])
@page
def create_customer():
    """The tickets service validates (its 422 names the fields); the new customer's page follows."""
    form = request.form
    body = {"name": form.get("name", "").strip()}
    if form.get("phone", "").strip():
        body["phones"] = [form["phone"].strip()]
        body["region"] = (form.get("region", "").strip() or phone_region()).upper()
    if form.get("email", "").strip():
        body["email"] = form["email"].strip()
    if form.get("language", "").strip():
        body["language"] = form["language"].strip()
    created = ask("tickets", "POST", "/customers", json=body, idempotency_key=form.get("key"))
    target = f"/customers/{quote(created['id'], safe='')}/timeline"
    if is_htmx():
        answer = make_response("", 201)
        answer.headers["HX-Redirect"] = target
        return answer
    return redirect(target, 303)
