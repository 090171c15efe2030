"""E-mail through real servers: replies out over SMTP (aiosmtpd), customers' mail in over IMAP
(dovecot) and the signed webhook. The worker's rounds (``send_queued_mail``, ``fetch_mailbox``) are
the ones its periodic jobs run; the tests call them directly instead of waiting for the interval."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select

from services.tickets import mail
from services.tickets.app import create_app
from services.tickets.models import Mail, MailAttachment, Ticket
from services.tickets.worker import fetch_mailbox, send_queued_mail
from shared.unit_of_work import UnitOfWork
from shared.webhooks import SIGNATURE_HEADER, sign_json
from tests.support.auth import signed_client
from tests.support.mailservers import SmtpSink, self_signed_certificate
from tests.tickets.support import AGENT, events

DESK = "support@desk.example"
WEBHOOK_SECRET = "mail-webhook-secret"


@pytest.fixture
def mail_app(settings_factory, smtp_server, mailbox, monkeypatch):
    monkeypatch.setenv("DEFAULT_PHONE_REGION", "DE")
    options = {
        "MAIL_SMTP_HOST": "127.0.0.1",
        "MAIL_SMTP_PORT": str(smtp_server.port),
        "MAIL_SMTP_SECURITY": "none",
        "MAIL_SMTP_USER": "desk",
        "MAIL_SMTP_PASSWORD": "desk-password",
        "MAIL_FROM": f"Service Desk <{DESK}>",
        "MAIL_IMAP_HOST": "127.0.0.1",
        "MAIL_IMAP_PORT": str(mailbox.port),
        "MAIL_IMAP_SECURITY": "none",
        "MAIL_IMAP_USER": mailbox.user,
        "MAIL_IMAP_PASSWORD": mailbox.password,
        "MAIL_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAIL_MAX_ATTACHMENT_BYTES": str(64 * 1024),
    }
    settings, _ = settings_factory("tickets", options=options)
    return create_app(settings)


@pytest.fixture
def desk(mail_app):
    return signed_client(mail_app)


def settings_of(app):
    return app.extensions["settings"]


def database_of(app):
    return app.extensions["database"]


def send(app) -> int:
    return send_queued_mail(database_of(app), settings_of(app))


def fetch(app) -> dict:
    return fetch_mailbox(database_of(app), settings_of(app))


def customer_mail(
    subject: str,
    body: str = "Hello, my kettle does not heat.",
    sender: str = "Ada Lovelace <ada@example.org>",
    **headers,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = DESK
    message["Subject"] = subject
    message["Date"] = "Thu, 03 Dec 2026 10:00:00 +0000"
    message["Message-ID"] = make_msgid(domain="example.org")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def open_ticket_for(desk, email: str = "ada@example.org") -> tuple[dict, dict]:
    customer = desk.post("/customers", json={"name": "Ada Lovelace", "email": email}, headers=AGENT).json
    ticket = desk.post(
        "/tickets",
        json={"subject": "Kettle broken", "category": "complaint", "customer_id": customer["id"]},
        headers=AGENT,
    ).json
    return customer, ticket


def mails_of(app, **where) -> list[Mail]:
    with database_of(app).sessions() as session:
        query = select(Mail).order_by(Mail.created_at, Mail.id)
        for name, value in where.items():
            query = query.where(getattr(Mail, name) == value)
        return list(session.scalars(query))


def ticket_row(app, ticket_id: str) -> Ticket:
    with database_of(app).sessions() as session:
        return session.get(Ticket, ticket_id)


def test_a_public_reply_is_mailed_to_the_customer_with_the_ticket_number_and_a_message_id(desk, mail_app, smtp_server):
    _, ticket = open_ticket_for(desk)
    reply = desk.post(
        f"/tickets/{ticket['id']}/comments", json={"body": "A new kettle is on its way.", "public": True}, headers=AGENT
    )
    assert reply.status_code == 201
    assert reply.json["mail"]["to"] == "ada@example.org" and reply.json["mail"]["status"] == "queued"
    note = desk.post(f"/tickets/{ticket['id']}/comments", json={"body": "internal only"}, headers=AGENT)
    assert note.json["mail"] is None  # an internal note is never mailed

    assert send(mail_app) == 1
    [received] = smtp_server.received
    message = received["message"]
    assert received["to"] == ["ada@example.org"]
    assert message["Subject"] == f"[#{ticket['number']}] Kettle broken"
    assert message["Message-ID"] == reply.json["mail"]["message_id"]
    assert message["From"] == f"Service Desk <{DESK}>"
    assert "A new kettle is on its way." in message.get_body(("plain",)).get_content()
    assert "A new kettle is on its way." in message.get_body(("html",)).get_content()
    assert send(mail_app) == 0  # sent once: a second round finds nothing to send
    assert len(smtp_server.received) == 1
    assert [row.status for row in mails_of(mail_app, direction="out")] == ["sent"]


def test_the_customers_answer_threads_onto_the_ticket_reopens_it_and_the_next_reply_continues_the_chain(
    desk, mail_app, smtp_server, mailbox
):
    _, ticket = open_ticket_for(desk)
    desk.post(f"/tickets/{ticket['id']}/comments", json={"body": "Which model is it?", "public": True}, headers=AGENT)
    desk.patch(f"/tickets/{ticket['id']}", json={"status": "pending"}, headers=AGENT)
    send(mail_app)
    ours = smtp_server.messages()[0]
    paused = ticket_row(mail_app, ticket["id"])
    assert paused.status == "pending" and paused.pending_since is not None

    answer = customer_mail("Re: something else entirely", body="It is the KX-200.")  # no number: the headers thread it
    answer["In-Reply-To"] = ours["Message-ID"]
    answer["References"] = ours["Message-ID"]
    mailbox.deliver(answer.as_bytes())
    assert fetch(mail_app) == {"threaded": 1}

    reopened = ticket_row(mail_app, ticket["id"])
    assert reopened.status == "open"
    assert reopened.pending_since is None and reopened.paused_seconds > 0  # the SLA clock runs again
    comments = desk.get(f"/tickets/{ticket['id']}/comments", headers=AGENT).json["items"]
    assert comments[-1]["body"] == "It is the KX-200." and comments[-1]["public"] is True
    assert comments[-1]["author_id"] is None  # the customer's own words, not an agent's
    assert [event["data"]["new_status"] for event in events(database_of(mail_app), "ticket.status_changed")][
        -1
    ] == "open"

    desk.post(f"/tickets/{ticket['id']}/comments", json={"body": "Thanks, sending one.", "public": True}, headers=AGENT)
    send(mail_app)
    second = smtp_server.messages()[1]
    assert second["In-Reply-To"] == answer["Message-ID"]
    assert second["References"].split() == [ours["Message-ID"], answer["Message-ID"]]
    assert second["Subject"] == f"Re: [#{ticket['number']}] Kettle broken"
    thread = desk.get(f"/tickets/{ticket['id']}/mails", headers=AGENT).json["items"]
    assert [(item["direction"], item["status"]) for item in thread] == [
        ("out", "sent"),
        ("in", "threaded"),
        ("out", "sent"),
    ]


def test_the_ticket_number_in_the_subject_threads_a_mail_without_headers(desk, mail_app, mailbox):
    _, ticket = open_ticket_for(desk)
    mailbox.deliver(customer_mail(f"Re: [#{ticket['number']}] Kettle broken", body="Any news?").as_bytes())
    assert fetch(mail_app) == {"threaded": 1}
    assert desk.get(f"/tickets/{ticket['id']}/comments", headers=AGENT).json["items"][-1]["body"] == "Any news?"


def test_mail_from_an_unknown_sender_opens_a_ticket_for_a_new_customer(desk, mail_app, mailbox):
    mailbox.deliver(customer_mail("My order never came", sender="Grace Hopper <Grace@Example.COM>").as_bytes())
    assert fetch(mail_app) == {"opened": 1}
    [row] = mails_of(mail_app, direction="in")
    assert row.created_customer is True
    ticket = desk.get(f"/tickets/{row.ticket_id}", headers=AGENT).json
    assert ticket["channel"] == "email" and ticket["subject"] == "My order never came"
    assert "new-customer" in ticket["tags"]  # the duplicate finder's hint: a customer made from an address
    customer = desk.get(f"/customers/{ticket['customer_id']}", headers=AGENT).json
    assert customer["name"] == "Grace Hopper" and customer["email"] == "grace@example.com"

    mailbox.deliver(customer_mail("Another thing", sender="grace@example.com").as_bytes())
    fetch(mail_app)
    second = mails_of(mail_app, direction="in")[-1]
    assert second.customer_id == ticket["customer_id"] and second.created_customer is False  # matched by address


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto_Submitted": "auto-replied"},
        {"Precedence": "bulk"},
        {"X_Autoreply": "yes"},
    ],
)
def test_auto_replies_and_bulk_mail_are_recorded_but_never_answered(desk, mail_app, mailbox, smtp_server, headers):
    mailbox.deliver(customer_mail("Out of office", **headers).as_bytes())
    assert fetch(mail_app) == {"ignored": 1}
    [row] = mails_of(mail_app, direction="in")
    assert row.status == "ignored" and row.ticket_id is None and row.reason
    assert desk.get("/tickets", headers=AGENT).json["total"] == 0
    assert send(mail_app) == 0 and smtp_server.received == []


def test_our_own_mail_coming_back_is_a_loop_and_ignored(desk, mail_app, mailbox):
    _, ticket = open_ticket_for(desk)
    desk.post(f"/tickets/{ticket['id']}/comments", json={"body": "Hi", "public": True}, headers=AGENT)
    [ours] = mails_of(mail_app, direction="out")
    looped = customer_mail(f"[#{ticket['number']}] Kettle broken", sender=f"Service Desk <{DESK}>")
    mailbox.deliver(looped.as_bytes())
    assert fetch(mail_app) == {"ignored": 1}
    assert "loop" in mails_of(mail_app, direction="in")[0].reason
    assert ours.message_id.endswith("@desk.example>")


def test_a_mail_delivered_twice_and_a_mailbox_read_twice_make_one_ticket(desk, mail_app, mailbox):
    message = customer_mail("Duplicate delivery").as_bytes()
    mailbox.deliver(message)
    mailbox.deliver(message)  # the provider delivered it twice
    assert fetch(mail_app) == {"opened": 1, "duplicate": 1}
    # the same mail again, unseen (a crash before the \\Seen flag was stored), and via the webhook
    mailbox.deliver(message)
    assert fetch(mail_app) == {"duplicate": 1}
    assert post_webhook(desk, message).json["status"] == "duplicate"
    assert desk.get("/tickets", headers=AGENT).json["total"] == 1


def test_a_malformed_mail_is_parked_with_the_reason_and_the_mail_behind_it_still_arrives(desk, mail_app, mailbox):
    mailbox.deliver(b"this is not a mail at all\r\n")
    mailbox.deliver(customer_mail("Behind the broken one").as_bytes())
    assert fetch(mail_app) == {"parked": 1, "opened": 1}
    assert mailbox.count("UNSEEN") == 0  # neither is read again
    parked = desk.get("/mail/parked", headers=signed_as_supervisor()).json["items"]
    assert len(parked) == 1 and "sender" in parked[0]["reason"]
    assert fetch(mail_app) == {}


def test_an_oversize_attachment_is_refused_with_a_note_and_an_accepted_one_is_listed(desk, mail_app, mailbox):
    message = customer_mail("Photos of the damage")
    message.add_attachment(b"\x89PNG small", maintype="image", subtype="png", filename="small.png")
    message.add_attachment(b"x" * (200 * 1024), maintype="image", subtype="png", filename="huge.png")
    message.add_attachment(b"MZ", maintype="application", subtype="x-msdownload", filename="tool.exe")
    mailbox.deliver(message.as_bytes())
    assert fetch(mail_app) == {"opened": 1}
    [row] = mails_of(mail_app, direction="in")
    [thread] = desk.get(f"/tickets/{row.ticket_id}/mails", headers=AGENT).json["items"]
    assert [(item["filename"], item["size"]) for item in thread["attachments"]] == [("small.png", 10)]
    download = desk.get(f"/tickets/{row.ticket_id}/attachments/{thread['attachments'][0]['id']}", headers=AGENT)
    assert download.data == b"\x89PNG small" and download.mimetype == "image/png"
    [note] = [c for c in desk.get(f"/tickets/{row.ticket_id}/comments", headers=AGENT).json["items"] if not c["public"]]
    assert "huge.png: larger than the limit of 64 KiB" in note["body"]
    assert "tool.exe: its type application/x-msdownload is not accepted" in note["body"]
    with database_of(mail_app).sessions() as session:
        assert [a.filename for a in session.scalars(select(MailAttachment))] == ["small.png"]


def test_a_mail_server_that_is_down_loses_nothing_and_sends_nothing_twice(desk, mail_app, smtp_server):
    _, ticket = open_ticket_for(desk)
    smtp_server.stop()
    for text in ("first", "second", "third"):
        desk.post(f"/tickets/{ticket['id']}/comments", json={"body": text, "public": True}, headers=AGENT)
    assert send(mail_app) == 0
    waiting = mails_of(mail_app, direction="out")
    assert [row.status for row in waiting] == ["queued"] * 3
    assert all(row.attempts == 1 and "unavailable" in row.reason for row in waiting)
    assert send(mail_app) == 0  # backing off: not due yet

    smtp_server.start()
    with UnitOfWork(database_of(mail_app), source="tickets") as uow:
        mail.retry_now(uow)  # instead of waiting out the backoff
    assert send(mail_app) == 3
    assert send(mail_app) == 0
    ids = [message["Message-ID"] for message in smtp_server.messages()]
    assert sorted(ids) == sorted(row.message_id for row in waiting) and len(set(ids)) == 3


def test_the_sender_logs_in_and_refuses_to_go_on_with_a_wrong_password(desk, mail_app, smtp_server):
    _, ticket = open_ticket_for(desk)
    desk.post(f"/tickets/{ticket['id']}/comments", json={"body": "hi", "public": True}, headers=AGENT)
    wrong = replace(settings_of(mail_app), options={**settings_of(mail_app).options, "MAIL_SMTP_PASSWORD": "nope"})
    assert send_queued_mail(database_of(mail_app), wrong) == 0
    assert smtp_server.received == []
    assert mails_of(mail_app, direction="out")[0].status == "queued"


def post_webhook(desk, raw: bytes, secret: str = WEBHOOK_SECRET):
    body = json.dumps({"raw": base64.b64encode(raw).decode()}).encode()
    return desk.post(
        "/webhooks/mail/inbound",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_json(secret, body)},
    )


def test_the_signed_webhook_takes_mail_in_and_refuses_unsigned_or_bad_bodies(mail_app):
    anonymous = mail_app.test_client()  # no signed-in user: the signature is the credential
    raw = customer_mail("Pushed by the provider").as_bytes()
    assert post_webhook(anonymous, raw, secret="wrong").status_code == 403
    answer = post_webhook(anonymous, raw)
    assert answer.status_code == 200 and answer.json["status"] == "opened"
    body = json.dumps({"raw": "%%%"}).encode()
    bad = anonymous.post(
        "/webhooks/mail/inbound",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign_json(WEBHOOK_SECRET, body)},
    )
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "raw"


def test_without_a_mail_server_replies_wait_queued_and_the_status_says_so(client, app):
    customer = client.post("/customers", json={"name": "Ada", "email": "ada@example.org"}, headers=AGENT).json
    ticket = client.post(
        "/tickets", json={"subject": "x", "category": "question", "customer_id": customer["id"]}, headers=AGENT
    ).json
    reply = client.post(f"/tickets/{ticket['id']}/comments", json={"body": "hi", "public": True}, headers=AGENT).json
    assert reply["mail"] == {
        "to": "ada@example.org",
        "status": "queued",
        "message_id": reply["mail"]["message_id"],
        "sending": False,
    }
    assert send_queued_mail(app.extensions["database"], app.extensions["settings"]) == 0
    status = client.get("/mail/status", headers=AGENT).json
    assert status["sending"] is False and status["queued"] == 1
    overview = client.get(f"/customers/{customer['id']}/overview", headers=AGENT).json
    assert [item["status"] for item in overview["mails"]] == ["queued"]


def test_erasing_a_customers_mail_removes_every_mail_and_attachment(desk, mail_app, mailbox):
    message = customer_mail("With a file")
    message.add_attachment(b"data", maintype="text", subtype="plain", filename="a.txt")
    mailbox.deliver(message.as_bytes())
    fetch(mail_app)
    [row] = mails_of(mail_app, direction="in")
    with UnitOfWork(database_of(mail_app), source="tickets") as uow:
        assert mail.erase_customer_mail(uow, row.customer_id) == 1
        uow.commit()
    assert mails_of(mail_app) == []
    with database_of(mail_app).sessions() as session:
        assert list(session.scalars(select(MailAttachment))) == []


def signed_as_supervisor():
    from tests.support.auth import signed_as

    return signed_as("sup-1", "supervisor")


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_replies_go_out_over_starttls_or_implicit_tls_with_authentication(
    security, settings_factory, tmp_path, monkeypatch
):
    certificate = self_signed_certificate(tmp_path)
    server = SmtpSink(auth=("desk", "desk-password"), tls=security, certificate=certificate)
    server.start()
    try:
        options = {
            "MAIL_SMTP_HOST": "127.0.0.1",
            "MAIL_SMTP_PORT": str(server.port),
            "MAIL_SMTP_SECURITY": security,
            "MAIL_SMTP_USER": "desk",
            "MAIL_SMTP_PASSWORD": "desk-password",
            "MAIL_CA_FILE": certificate[0],  # the server's own certificate, trusted as its CA
            "MAIL_FROM": DESK,
        }
        settings, _ = settings_factory("tickets", options=options)
        app = create_app(settings)
        desk = signed_client(app)
        _, ticket = open_ticket_for(desk)
        desk.post(f"/tickets/{ticket['id']}/comments", json={"body": "Over TLS", "public": True}, headers=AGENT)
        assert send(app) == 1
        assert server.messages()[0]["Subject"] == f"[#{ticket['number']}] Kettle broken"

        untrusted = replace(settings, options={**options, "MAIL_CA_FILE": ""})  # the system's CAs: refused
        desk.post(f"/tickets/{ticket['id']}/comments", json={"body": "again", "public": True}, headers=AGENT)
        assert send_queued_mail(app.extensions["database"], untrusted) == 0
        assert len(server.received) == 1
        assert "certificate" in mails_of(app, status="queued")[0].reason.lower()
    finally:
        server.stop()


def test_a_customer_mails_support_gets_a_ticket_the_reply_reaches_them_and_their_answer_lands_on_it(
    desk, mail_app, smtp_server, mailbox
):
    first = customer_mail("My kettle leaks", body="It leaks at the bottom.", sender="Marie Curie <marie@example.fr>")
    mailbox.deliver(first.as_bytes())
    assert fetch(mail_app) == {"opened": 1}
    [ticket] = desk.get("/tickets", headers=AGENT).json["items"]
    assert ticket["description"] == "It leaks at the bottom."

    reply = desk.post(
        f"/tickets/{ticket['id']}/comments", json={"body": "Sorry! A new one is coming.", "public": True}, headers=AGENT
    )
    assert reply.json["mail"]["to"] == "marie@example.fr"
    assert send(mail_app) == 1
    ours = smtp_server.messages()[0]
    assert ours["To"] == "Marie Curie <marie@example.fr>"
    assert ours["In-Reply-To"] == first["Message-ID"] and ours["References"] == first["Message-ID"]
    assert ours["Subject"] == f"Re: [#{ticket['number']}] My kettle leaks"

    answer = customer_mail(ours["Subject"], body="Thank you!", sender="marie@example.fr")
    answer["In-Reply-To"], answer["References"] = ours["Message-ID"], f"{first['Message-ID']} {ours['Message-ID']}"
    mailbox.deliver(answer.as_bytes())
    assert fetch(mail_app) == {"threaded": 1}
    assert desk.get("/tickets", headers=AGENT).json["total"] == 1
    assert desk.get(f"/tickets/{ticket['id']}/comments", headers=AGENT).json["items"][-1]["body"] == "Thank you!"


def test_a_customer_made_from_an_unknown_sender_is_listed_by_the_duplicate_finder_beside_a_namesake(
    desk, mail_app, mailbox
):
    known = desk.post("/customers", json={"name": "Grace Hopper", "phone": "+4930123456"}, headers=AGENT).json
    mailbox.deliver(customer_mail("Hello", sender="GRACE HOPPER <grace@new.example>").as_bytes())
    mailbox.deliver(customer_mail("Hi", sender="Alan Turing <alan@example.org>").as_bytes())  # nobody shares the name
    assert fetch(mail_app) == {"opened": 2}
    made = mails_of(mail_app, direction="in")[0].customer_id
    groups = desk.get("/customers/duplicates", headers=signed_as_supervisor()).json["items"]
    assert [group for group in groups if group["by"] == "name"] == [
        {"by": "name", "value": "GRACE HOPPER", "customer_ids": [known["id"], made]}
    ]


def test_a_mailbox_that_is_down_loses_nothing_the_next_round_takes_the_mail_in(desk, mail_app, mailbox):
    mailbox.deliver(customer_mail("While the mailbox was down").as_bytes())
    mailbox.stop(remove=False)  # the same maildir, the server unreachable
    try:
        with pytest.raises(OSError):  # the round fails (the worker logs it and tries at the next interval)
            fetch(mail_app)
        assert mails_of(mail_app) == []
    finally:
        mailbox.start()
    assert fetch(mail_app) == {"opened": 1}
    assert fetch(mail_app) == {}
