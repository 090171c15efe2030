"""The console's e-mail parts of the ticket page: its mail thread and the reply box's note on who gets
the mail. Each is a fragment the page loads with htmx (its template includes ``_mail_*.html`` partials
with one line). A customer's mails are on their timeline, from the customer view (``view.py``).

- ``GET /tickets/<id>/mail-thread``: mails in and out, their state, attachments (downloadable);
- ``GET /tickets/<id>/attachments/<attachment_id>``: one attachment, passed through;
- ``GET /mail/note``: whether mail is configured (else replies wait queued).
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
