"""The console's e-mail parts: a ticket's mail thread, the reply box's note on who gets the mail, and
a customer's mails on their timeline. Each is a fragment the ticket and timeline pages load with htmx
(their templates include ``_mail_*.html`` partials with one line), so those pages stay as they are.

- ``GET /tickets/<id>/mail-thread``: mails in and out, their state, attachments (downloadable);
- ``GET /tickets/<id>/attachments/<attachment_id>``: one attachment, passed through;
- ``GET /mail/note``: whether mail is configured (else replies wait queued);
- ``GET /customers/<id>/mails``: the customer's latest mails.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Response

from ..upstream import UpstreamUnavailable, upstreams
from .base import ServiceDown, ask, console, page, refused, render
from .tickets import shown_time

ACCESS: list = []


def _ticket_path(ticket_id: str) -> str:
    return f"/tickets/{quote(ticket_id, safe='')}"


@console.route("/tickets/<ticket_id>/mail-thread")
@page
def ticket_mail_thread(ticket_id: str):
    thread = ask("tickets", "GET", _ticket_path(ticket_id) + "/mails", params={"limit": 1000}, missing_ok=True)
    mails = thread["items"] if thread else []
    return render("console/tickets/_mail_thread_items.html", mails=mails, ticket_id=ticket_id, shown_time=shown_time)


@console.route("/tickets/<ticket_id>/attachments/<attachment_id>")
@page
def ticket_attachment(ticket_id: str, attachment_id: str):
    path = f"{_ticket_path(ticket_id)}/attachments/{quote(attachment_id, safe='')}"
    try:
        answer = upstreams().call("tickets", "GET", path)
    except UpstreamUnavailable as error:
        raise ServiceDown("tickets", error.reason) from None
    if answer.status_code >= 400:
        raise refused(answer)
    headers = {"Content-Disposition": answer.headers.get("Content-Disposition", "attachment")}
    # Served as a download, never rendered in the console's origin.
    headers["X-Content-Type-Options"] = "nosniff"
    return Response(answer.content, mimetype=answer.headers.get("Content-Type"), headers=headers)


@console.route("/mail/note")
@page
def mail_note():
    status = ask("tickets", "GET", "/mail/status")
    return render("console/tickets/_mail_status_note.html", status=status)


@console.route("/customers/<customer_id>/mails")
@page
def customer_mails(customer_id: str):
    latest = ask("tickets", "GET", f"/customers/{quote(customer_id, safe='')}/mails", missing_ok=True)
    mails = latest["items"] if latest else []
    return render("console/customers/_mail_items.html", mails=mails, shown_time=shown_time)
