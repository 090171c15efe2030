"""The tickets and customers screens in a real browser, against the real services: what a user
typed stays text, an agent works a ticket from their queue to pending, and a customer found by a
number written another way shows their call, ticket and survey in one timeline."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect
from sqlalchemy import update

from services.tickets.models import Ticket
from tests.gateway.test_view import (
    Service,
    _has,
    answers,
    closed_hub,  # noqa: F401 - a fixture: the gateway's hub closed after each test
    known_everywhere,
    new_customer,
    phone_event,
)
from tests.support.services import wait_for

XSS_SUBJECT = "<script>alert(1)</script>"
XSS_COMMENT = '<img src=x onerror="alert(2)">'


def open_ticket(console, user: str, **fields) -> dict:
    body = {"subject": "Kettle leaks", "category": "quality_issue", **fields}
    answer = console.api(user, "agent").post("/api/tickets/tickets", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def breach_first_response(console, ticket_id: str) -> None:
    """Move the ticket's first-response due time an hour into the past (waiting for a real
    breach would take the policy's hour)."""
    with console.stack.databases["tickets"].sessions() as session:
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id)
            .values(first_response_due_at=datetime.now(UTC) - timedelta(hours=1))
        )
        session.commit()


def watch_dialogs(page) -> list[str]:
    """Every alert()/confirm() the page opens (none may open): their messages."""
    opened: list[str] = []

    def dismiss(dialog):
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return opened


def test_a_subject_and_a_comment_full_of_markup_are_shown_as_text_and_run_nothing(console):
    agent = console.user("xss-agent")
    ticket = open_ticket(console, agent, subject=XSS_SUBJECT, description=XSS_COMMENT, assignee_id=agent)
    comment = console.api(agent).post(
        f"/api/tickets/tickets/{ticket['id']}/comments", json={"body": XSS_COMMENT, "public": False}
    )
    assert comment.status_code == 201, comment.text
    page = console.signed_in(agent)
    dialogs = watch_dialogs(page)

    page.goto("/tickets")
    link = page.get_by_role("link", name=XSS_SUBJECT)
    expect(link).to_be_visible()
    link.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(XSS_SUBJECT)
    expect(page.locator(".comment-body")).to_have_text(XSS_COMMENT)
    expect(page.locator(".ticket-description")).to_have_text(XSS_COMMENT)
    assert page.locator("main img, main script").count() == 0  # no element was made of the text
    assert dialogs == []


def test_an_agent_works_a_ticket_from_their_queue_and_the_history_shows_it(console):
    agent = console.user("desk-agent-3")  # set up before signing in: no assignment notices over the page
    mine = open_ticket(console, agent, subject="Kettle lid cracked", assignee_id=agent)
    late = open_ticket(console, agent, subject="Toaster smokes", assignee_id=agent, priority="high")
    breach_first_response(console, late["id"])
    theirs = open_ticket(console, agent, subject="Somebody else's kettle", assignee_id="desk-agent-4")
    unassigned = open_ticket(console, agent, subject="Nobody's kettle")
    page = console.signed_in(agent)
    notice = page.locator("#ticket-detail [role='status']")

    page.goto("/tickets?queue=all")
    rows = page.locator("table.tickets tbody tr")
    expect(rows).to_have_count(4)
    # choosing the queue swaps the table (htmx) and puts the filters in the address
    page.get_by_label("Queue", exact=True).select_option("mine")
    expect(rows).to_have_count(2)
    page.wait_for_url(re.compile(r"queue=mine"))
    shown = {row.get_attribute("data-ticket-id") for row in rows.all()}
    assert shown == {mine["id"], late["id"]} and not shown & {theirs["id"], unassigned["id"]}
    late_row = page.locator(f"tr[data-ticket-id='{late['id']}']")
    expect(late_row.locator(".badge", has_text="SLA breached")).to_have_class(re.compile("badge-bad"))
    # the filters are in the URL: a reload (a bookmark) shows the same
    page.reload()
    expect(rows).to_have_count(2)
    console.screenshot(page, "tickets-list")

    page.get_by_role("link", name="Kettle lid cracked").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Kettle lid cracked")
    page.get_by_label("Message").fill("Asked the warehouse about a spare lid.\nWaiting for stock.")
    page.get_by_label("Internal note (agents only)").check()
    page.get_by_role("button", name="Add").click()
    expect(notice).to_have_text(re.compile("Note added."))
    page.get_by_label("Message").fill("A new lid is on its way to you.")
    page.get_by_label("Public reply (the customer sees it)").check()
    page.get_by_role("button", name="Add").click()
    expect(notice).to_have_text(re.compile("Reply sent."))
    page.get_by_label("Status").select_option("pending")
    page.get_by_role("button", name="Save changes").click()
    expect(notice).to_have_text(re.compile("Saved: Status."))
    expect(page.locator(".ticket-facts [data-field='status']")).to_have_text("pending")
    expect(page.locator(".comments li")).to_have_count(2)
    expect(page.locator("dl.sla")).to_contain_text("paused")

    api = console.api(agent)
    comments = api.get(f"/api/tickets/tickets/{mine['id']}/comments").json()["items"]
    assert [(c["public"], c["author_id"]) for c in comments] == [(False, agent), (True, agent)]
    assert comments[0]["body"] == "Asked the warehouse about a spare lid.\nWaiting for stock."
    expect(page.locator(".comment-internal .comment-body")).to_have_text(comments[0]["body"])
    history = api.get(f"/api/tickets/tickets/{mine['id']}/history").json()["items"]
    shown_history = page.locator("ol.history li")
    expect(shown_history).to_have_count(len(history))
    last_move = [h for h in history if h["field"] == "status"][-1]
    assert (last_move["new"], last_move["actor_id"]) == ("pending", agent)
    newest_move = page.locator("ol.history li[data-field='status']").first
    expect(newest_move).to_contain_text(f"{last_move['old']} → pending")
    expect(newest_move).to_contain_text(agent)
    console.screenshot(page, "ticket")
    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet: one column, nothing cut off
    expect(page.get_by_role("button", name="Save changes")).to_be_visible()
    console.screenshot(page, "ticket-tablet")


def test_a_customer_found_by_a_number_written_another_way_shows_call_ticket_and_survey_in_order(console):
    stack, agent = console.stack, console.user("timeline-agent")
    customer_id, e164, _ = new_customer(stack, "Grace Hopper")
    known_everywhere(stack, customer_id)
    surveys, calls = Service(stack, "surveys"), Service(stack, "callrouting")
    wait_for(lambda: _has(surveys, customer_id), timeout=20, what="the surveys' customer replica")

    # first a call in, wrapped up with a reason; then a ticket; then a survey answered
    calls("PUT", f"/agents/{agent}/state", json={"state": "available"})
    call_id = f"CA{uuid.uuid4().hex}"
    phone_event(stack, "call.ringing", call_id, 0, **{"from": e164, "to": "+4930999999"})
    phone_event(stack, "call.answered", call_id, 1, agent_id=agent)
    phone_event(stack, "call.ended", call_id, 2, agent_id=agent)
    calls("POST", f"/calls/{call_id}/wrap-up", json={"reason": "complaint", "notes": "kettle lid leaks"})
    ticket = open_ticket(console, agent, subject="Lid leaks after the call", customer_id=customer_id, call_id=call_id)
    survey = surveys("POST", "/responses", json={"customer_id": customer_id, "agent_id": agent, "answers": answers(8)})

    page = console.signed_in(agent)  # after the call: no screen-pop over the page
    page.goto("/customers")
    spaced = f"+49 ({e164[3:5]}) {e164[5:9]}-{e164[9:]}"
    page.get_by_label("Name, e-mail or phone number").fill(spaced)
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".results-count")).to_have_text("1 customer with that number")
    console.screenshot(page, "customer-search")
    page.get_by_role("link", name="Grace Hopper").click()
    page.wait_for_url(f"**/customers/{customer_id}/timeline")

    entries = page.locator(".customer-timeline > li")
    expect(entries).to_have_count(3)
    assert [entry.get_attribute("id") for entry in entries.all()] == [
        f"survey-{survey['id']}",
        f"ticket-{ticket['id']}",
        f"call-{call_id}",
    ]
    moments = [datetime.fromisoformat(entry.get_attribute("data-at")) for entry in entries.all()]
    assert moments == sorted(moments, reverse=True)
    expect(entries.nth(2)).to_contain_text("complaint")
    expect(entries.nth(2)).to_contain_text("kettle lid leaks")
    expect(entries.nth(2)).to_contain_text(agent)
    expect(entries.nth(1).get_by_role("link", name=re.compile("Lid leaks after the call"))).to_be_visible()
    expect(entries.nth(0)).to_contain_text("product 8")
    console.screenshot(page, "customer-timeline")
