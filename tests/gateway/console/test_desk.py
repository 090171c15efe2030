"""The agent's desk in a real browser: a follow-up call taken and surveyed from the keyboard, a low
score's service-recovery ticket on screen, and an inbound call popping on its agent's screen (and
no other's) and wrapped up with a ticket. Real services, broker and gateway (``console`` fixture)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
import requests
from playwright.sync_api import expect
from twilio.request_validator import RequestValidator

from tests.gateway.console.test_desk_routes import SCRIPT, TALKING_POINT, api, due_follow_up, make_customer, supervisor
from tests.support.services import wait_for

TWILIO_TOKEN = "desk-test-twilio-token"
QUESTIONS = ("product", "service", "purchase", "recommend_product", "recommend_store")


@pytest.fixture(autouse=True)
def phone_env(monkeypatch):
    # Call routing verifies Twilio's signature of the public URL it was called at: the gateway's,
    # which it learns from X-Forwarded-* (one trusted proxy hop, docs/gateway.md).
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("PROXY_HOPS", "1")


def twilio(console, path: str, params: dict) -> str:
    """Twilio calls the gateway's ``path``, signed for that public URL; call routing's TwiML."""
    url = console.url + path
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    answer = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.text


def agent_leg(console, agent_id: str, call_id: str, status: str, sequence: int, **extra) -> None:
    now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    params = {
        "CallSid": f"CL-{call_id}",
        "ParentCallSid": call_id,
        "CallStatus": status,
        "SequenceNumber": str(sequence),
        "Timestamp": now,
        **extra,
    }
    twilio(console, f"/webhooks/twilio/status?agent={agent_id}&round=1", params)


def take_the_call_and_reach(console, page, name: str) -> tuple[str, dict]:
    """A due follow-up for a new customer ``name``, taken from the desk and marked reached."""
    stack = console.stack
    customer_id = make_customer(stack, name)
    _campaign, entry = due_follow_up(stack, customer_id)
    page.goto("/desk")
    page.get_by_role("button", name="Next follow-up call").click()
    expect(page.get_by_role("heading", name=f"Follow-up call: {name}")).to_be_visible()
    return customer_id, entry


def type_scores(page, keys: str) -> None:
    """The survey from the keyboard: focus starts on the first question; one key per question."""
    first = page.get_by_role("group", name=re.compile(r"^1\. ")).get_by_role("radio").first
    expect(first).to_be_focused()
    for key in keys:
        page.keyboard.press(key)


def test_an_agent_sets_available_takes_a_follow_up_and_enters_the_five_scores_from_the_keyboard(console):
    page = console.signed_in("desk-ann", "agent")
    page.goto("/desk")
    page.locator("body[data-live='ready']").wait_for(state="attached")
    console.settled(page, "#agent-state")  # the reloads of page load and stream start are in
    page.get_by_label("My state").select_option("available")
    expect(page.locator("#my-state")).to_have_attribute("data-state", "available")  # as call routing answered
    assert (
        api(console.stack, "GET", "/api/callrouting/agents/desk-ann", supervisor(console.stack))["state"] == "available"
    )
    console.screenshot(page, "desk")

    customer_id, entry = take_the_call_and_reach(console, page, "Nora Kettle")
    expect(page.locator(".script")).to_have_text(SCRIPT)
    expect(page.locator(".talking-point")).to_have_text(TALKING_POINT)
    expect(page.locator(".customer-view").get_by_role("heading", name="Nora Kettle")).to_be_visible()
    console.screenshot(page, "follow-up-call")
    page.get_by_role("button", name="Reached", exact=True).click()

    type_scores(page, "89079")  # 0 is 10
    expect(page.get_by_label("Comment")).to_be_focused()
    page.keyboard.type("Loves the kettle")
    checked = {key: page.locator(f"input[name='answer-{key}']:checked").get_attribute("value") for key in QUESTIONS}
    assert checked == dict(zip(QUESTIONS, ("8", "9", "10", "7", "9"), strict=True))
    console.screenshot(page, "survey")
    page.keyboard.press("Control+Enter")

    expect(page.get_by_role("heading", name="Answers saved")).to_be_visible()
    expect(page.get_by_text("No low score")).to_be_visible()
    page.get_by_role("button", name="End call").click()
    expect(page.get_by_role("button", name="Next follow-up call")).to_be_visible()
    [response] = api(
        console.stack, "GET", f"/api/surveys/responses?customer_id={customer_id}", supervisor(console.stack)
    )["items"]
    assert response["answers"] == {
        "product": 8,
        "service": 9,
        "purchase": 10,
        "recommend_product": 7,
        "recommend_store": 9,
    }
    assert (response["agent_id"], response["entry_id"], response["channel"], response["comment"]) == (
        "desk-ann",
        entry["id"],
        "agent",
        "Loves the kettle",
    )
    closed = api(console.stack, "GET", f"/api/callrouting/entries/{entry['id']}", supervisor(console.stack))
    assert (closed["state"], closed["history"][0]["outcome"]) == ("completed", "reached")


def test_a_low_score_shows_its_service_recovery_ticket_at_once_and_the_ticket_exists(console):
    page = console.signed_in("desk-bea", "agent", viewport={"width": 768, "height": 1024})  # on a tablet
    customer_id, entry = take_the_call_and_reach(console, page, "Lou Lowscore")
    # A slow settle: htmx binds the survey form's hx-post only once the swap has settled, and the
    # scores typed and sent before then must still go through htmx (not as a GET of /desk).
    page.evaluate("htmx.config.defaultSettleDelay = 400")
    page.get_by_role("button", name="Reached", exact=True).click()

    type_scores(page, "38858")  # product 3 (any answer at most 4), recommend_product 5 (a recommend at most 6)
    page.keyboard.press("Shift+Tab")  # back from the comment to the last question
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Answers saved")).to_be_visible()
    expect(page.locator(".recovery")).to_contain_text("Low score")
    link = page.locator("#recovery-ticket a")
    expect(link).to_be_visible(timeout=15_000)
    ticket_id = link.get_attribute("href").removeprefix("/tickets/")
    ticket = api(console.stack, "GET", f"/api/tickets/tickets/{ticket_id}", supervisor(console.stack))
    [response] = api(
        console.stack, "GET", f"/api/surveys/responses?customer_id={customer_id}", supervisor(console.stack)
    )["items"]
    assert (ticket["category"], ticket["customer_id"], ticket["survey_response_id"]) == (
        "service_recovery",
        customer_id,
        response["id"],
    )
    assert response["entry_id"] == entry["id"] and response["answers"]["product"] == 3
    console.screenshot(page, "survey-low-score-tablet")


def test_an_inbound_call_pops_on_its_agents_screen_only_and_is_wrapped_up_with_a_ticket(console):
    stack = console.stack
    customer_id = make_customer(stack, "Carla Caller", "+14155550188")
    other = console.signed_in("desk-dan", "agent")  # signed in, offline: not offered the call
    page = console.signed_in("desk-cat", "agent")
    page.goto("/desk")
    page.locator("body[data-live='ready']").wait_for(state="attached")
    console.settled(page, "#agent-state")  # the reloads of page load and stream start are in
    page.get_by_label("My state").select_option("available")
    expect(page.locator("#my-state")).to_have_attribute("data-state", "available")  # as call routing answered
    call_id = "CA" + uuid.uuid4().hex

    twiml = twilio(
        console,
        "/webhooks/twilio/voice",
        {"CallSid": call_id, "From": "+14155550188", "To": "+14155550199", "CallStatus": "ringing"},
    )

    assert ">desk-cat<" in twiml
    pop = page.locator("#screen-pop")
    expect(pop.get_by_role("heading", name="Incoming call")).to_be_focused()
    expect(pop).to_contain_text("+14155550188")
    expect(pop.get_by_role("heading", name="Carla Caller")).to_be_visible()
    expect(pop.get_by_role("link", name="Customer page")).to_have_attribute(
        "href", f"/customers/{customer_id}/timeline"
    )
    expect(page.locator("#my-state")).to_have_attribute("data-state", "reserved")
    console.screenshot(page, "screen-pop")
    expect(other.locator("#screen-pop")).to_be_hidden()

    agent_leg(console, "desk-cat", call_id, "in-progress", 1)
    agent_leg(console, "desk-cat", call_id, "completed", 2, CallDuration="95")
    expect(page.locator("#my-state")).to_have_attribute("data-state", "wrap_up")
    pop.get_by_role("link", name="Wrap up").click()
    expect(page.get_by_role("heading", name="Wrap up the call from Carla Caller")).to_be_visible()
    page.get_by_label("Reason").select_option("refund")
    page.get_by_label("Notes").fill("Kettle leaks; refund agreed.")
    page.get_by_label("Open a ticket for this call").check()
    expect(page.get_by_label("Subject")).to_have_value("Refund: phone call from Carla Caller")
    console.screenshot(page, "wrap-up")
    page.get_by_role("button", name="Finish wrap-up").click()

    expect(page.get_by_role("heading", name="Call wrapped up")).to_be_visible()
    ticket_id = page.locator(".wrap-up-done a[href^='/tickets/']").get_attribute("href").removeprefix("/tickets/")
    call = api(stack, "GET", f"/api/callrouting/calls/{call_id}", supervisor(stack))
    assert (call["state"], call["reason"], call["ticket_id"], call["notes"]) == (
        "completed",
        "refund",
        ticket_id,
        "Kettle leaks; refund agreed.",
    )
    ticket = api(stack, "GET", f"/api/tickets/tickets/{ticket_id}", supervisor(stack))
    assert (ticket["subject"], ticket["category"], ticket["customer_id"], ticket["call_id"], ticket["channel"]) == (
        "Refund: phone call from Carla Caller",
        "refund",
        customer_id,
        call_id,
        "phone",
    )
    expect(other.locator("#screen-pop")).to_be_hidden()
    expect(other.locator("#screen-pop")).to_be_empty()


def test_a_link_by_email_campaign_takes_no_survey_on_the_call_and_the_link_is_on_the_timeline(console, monkeypatch):
    # surveys' consumer (in this process) signs the link it mails after the call
    monkeypatch.setenv("SURVEY_LINK_SECRET", "desk-test-link-secret")
    stack = console.stack
    lead = console.signed_in("desk-lead", "supervisor")
    customer = api(
        stack,
        "POST",
        "/api/tickets/customers",
        supervisor(stack),
        {"name": "Mia Mailer", "phone": "+14155550177", "email": "mia@example.org", "marketing_consent": True},
    )
    replica = f"/api/callrouting/customers/{customer['id']}"
    wait_for(
        lambda: stack.client.get(replica, headers=supervisor(stack)).status_code == 200,
        what="the customer in call routing's replica",
    )
    campaign, entry = due_follow_up(stack, customer["id"])
    # the supervisor chooses it on the campaign's settings
    lead.goto(f"/campaigns/{campaign['id']}")
    lead.get_by_label("The survey").select_option("link_by_email")
    lead.get_by_role("button", name="Save settings").click()
    expect(lead.get_by_text("Saved.")).to_be_visible()
    stored = api(stack, "GET", f"/api/callrouting/campaigns/{campaign['id']}", supervisor(stack))
    assert stored["survey_delivery"] == "link_by_email"

    page = console.signed_in("desk-mia", "agent")
    page.goto("/desk")
    page.get_by_role("button", name="Next follow-up call").click()
    expect(page.get_by_role("heading", name="Follow-up call: Mia Mailer")).to_be_visible()
    expect(page.locator(".survey-by-mail")).to_contain_text("survey by e-mail")
    page.get_by_role("button", name="Reached", exact=True).click()

    expect(page.get_by_role("heading", name="Outcome recorded: reached")).to_be_visible()
    expect(page.locator("p.survey-by-mail")).to_contain_text("The survey link goes to the customer by e-mail")
    assert page.locator("input[name^='answer-']").count() == 0  # no survey form on the call
    closed = api(stack, "GET", f"/api/callrouting/entries/{entry['id']}", supervisor(stack))
    assert closed["state"] == "completed"

    def invited():
        view = api(stack, "GET", f"/api/customers/{customer['id']}/view", supervisor(stack))
        return [mail for mail in view["mails"] or [] if mail["kind"] == "survey_invitation"]

    wait_for(invited, timeout=20, what="the survey invitation queued by surveys")
    [invitation] = invited()
    assert invitation["to_address"].endswith("<mia@example.org>") and invitation["status"] == "queued"
    page.goto(f"/customers/{customer['id']}/timeline")
    mail = page.locator(".customer-timeline > li.entry-mail")
    expect(mail).to_have_count(1)
    expect(mail.locator(".what .badge")).to_have_text("survey link")
    expect(mail.locator(".what")).to_contain_text(invitation["subject"])
    console.screenshot(page, "customer-survey-link-mail")
