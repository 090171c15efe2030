"""E-mail in the console, in a real browser against the real services with no mail server (as
`make run` without one): the reply box says who the reply is mailed to and that mail is not
configured, the ticket shows its mail thread with attachments, the customer timeline its mails."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage

from playwright.sync_api import expect

from services.tickets import mail
from shared.mail import MailSettings
from shared.unit_of_work import UnitOfWork


def test_the_ticket_shows_its_mail_thread_and_the_reply_box_says_who_gets_the_mail(console):
    agent = console.user("mail-agent-1")
    api = console.api(agent)
    customer = api.post("/api/tickets/customers", json={"name": "Ada Lovelace", "email": "ada@example.org"}).json()
    ticket = api.post(
        "/api/tickets/tickets",
        json={"subject": "Kettle broken", "category": "complaint", "customer_id": customer["id"], "assignee_id": agent},
    ).json()
    answer = EmailMessage()
    answer["From"], answer["To"] = "Ada Lovelace <ada@example.org>", "support@localhost"
    answer["Subject"], answer["Date"] = f"Re: [#{ticket['number']}] Kettle broken", "Thu, 03 Dec 2026 10:00:00 +0000"
    answer["Message-ID"] = "<answer-1@example.org>"
    answer.set_content("Here is a photo <b>of it</b>.")
    answer.add_attachment(b"\x89PNG photo", maintype="image", subtype="png", filename="kettle.png")
    with UnitOfWork(console.stack.databases["tickets"], source="tickets") as uow:
        assert mail.receive(uow, answer.as_bytes(), MailSettings())["status"] == "threaded"

    page = console.signed_in(agent)
    page.goto(f"/tickets/{ticket['id']}")
    note = page.locator(".mail-reply-note")
    expect(note).to_contain_text("A public reply is also mailed to: ada@example.org")
    expect(note.locator(".mail-not-configured")).to_contain_text("Mail is not configured")
    mailed_in = page.locator("li.comment", has_text="Here is a photo")
    expect(mailed_in.locator(".when")).to_contain_text("by e-mail from")  # its sender, not "system"
    expect(mailed_in.locator(".when")).to_contain_text("ada@example.org")
    thread = page.locator(".mail-thread ol.mails > li")
    expect(thread).to_have_count(1)
    expect(thread.first).to_contain_text("from Ada Lovelace <ada@example.org>")
    expect(thread.first.locator("a[download]")).to_have_text("kettle.png")
    with page.expect_download() as download:
        thread.first.locator("a[download]").click()
    assert open(download.value.path(), "rb").read() == b"\x89PNG photo"

    page.get_by_label("Message").fill("A new kettle is on its way.")
    page.get_by_label("Public reply (the customer sees it)").check()
    page.get_by_role("button", name="Add").click()
    expect(page.locator(".mail-thread ol.mails > li")).to_have_count(2)
    expect(page.locator(".mail-thread ol.mails > li").last).to_contain_text("to Ada Lovelace <ada@example.org>")
    expect(page.locator(".mail-thread ol.mails > li").last.locator(".badge")).to_have_text("queued")
    console.screenshot(page, "ticket-mail")

    page.goto(f"/customers/{customer['id']}/timeline")
    # one timeline, newest first: the mails among the ticket, the reply (out) the newest of all
    entries = page.locator(".customer-timeline > li")
    expect(entries).to_have_count(3)
    kinds = [entries.nth(n).get_attribute("data-kind") for n in range(3)]
    moments = [datetime.fromisoformat(entries.nth(n).get_attribute("data-at")) for n in range(3)]
    assert sorted(kinds) == ["mail", "mail", "ticket"] and kinds[0] == "mail"
    assert moments == sorted(moments, reverse=True)
    mails = page.locator(".customer-timeline > li.entry-mail")
    expect(mails.first.locator(".what .badge")).to_have_text("out")
    expect(mails.first.locator(".what")).to_contain_text("queued")
    expect(mails.first.locator(".what")).to_contain_text("ada@example.org")
    expect(mails.last.locator(".what")).to_contain_text("received")
    expect(mails.last.locator("a")).to_have_attribute("href", f"/tickets/{ticket['id']}")
    console.screenshot(page, "customer-mails")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the mails are still there
    expect(mails.first).to_be_visible()
