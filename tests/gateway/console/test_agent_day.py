"""An agent's day in a real browser: the screen-pop's life from ringing to the wrap-up, the follow-up
card that names what it follows up with the outcome buttons on the first screen, the status strip,
the "Do not call" confirmation, toasts, and the figures of the closing note (screen-pop time, the
actions from "Next follow-up call" to "End call"). Real services, broker and gateway."""

from __future__ import annotations

import re
import statistics
import time
import uuid

from playwright.sync_api import expect

from tests.gateway.console.test_desk import agent_leg, phone_env, take_the_call_and_reach, twilio  # noqa: F401
from tests.gateway.console.test_desk_routes import ALWAYS, SCRIPT, api, make_customer, supervisor
from tests.support.services import wait_for

DESK_SCREEN = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def available(console, page) -> None:
    page.goto("/desk")
    page.locator("body[data-live='ready']").wait_for(state="attached")
    console.settled(page, "#agent-state")
    page.get_by_label("My state").select_option("available")
    expect(page.locator("#my-state")).to_have_attribute("data-state", "available")


def follow_up_of_a_purchase(console, page, name: str) -> tuple[str, dict, dict]:
    """A customer who bought a kettle, due for its follow-up call, taken from the desk."""
    stack = console.stack
    # The campaign first, then the purchase: its purchase.recorded makes the entry, as in production
    # (an entry added by hand would race with that event for the same purchase and get a 409).
    campaign = api(
        stack, "POST", "/api/callrouting/campaigns", supervisor(stack),
        {"name": f"Follow-up {uuid.uuid4().hex[:6]}", "calling_window": ALWAYS, "script": SCRIPT,
         "contact_frequency_days": 0, "delay_days": 0},
    )  # fmt: skip
    customer_id = make_customer(stack, name, "+14155550" + str(uuid.uuid4().int % 900 + 100))
    bought = api(
        stack,
        "POST",
        f"/api/tickets/customers/{customer_id}/purchases",
        supervisor(stack),
        {"sku": "KETTLE-2", "product": "Steel kettle", "amount": "89.90", "currency": "EUR",
         "purchased_at": "2026-11-20T10:00:00Z", "source": "webshop", "order_ref": "WEB-4711"},
    )  # fmt: skip
    entries = f"/api/callrouting/campaigns/{campaign['id']}/entries?customer_id={customer_id}"
    entry = wait_for(lambda: api(stack, "GET", entries, supervisor(stack))["items"])[0]
    assert entry["purchase_id"] == bought["id"]
    page.goto("/desk")
    page.get_by_role("button", name="Next follow-up call").click()
    expect(page.get_by_role("heading", name=f"Follow-up call: {name}")).to_be_visible()
    return customer_id, entry, bought


def ring(console, call_id: str, caller: str) -> None:
    twilio(
        console,
        "/webhooks/twilio/voice",
        {"CallSid": call_id, "From": caller, "To": "+14155550199", "CallStatus": "ringing"},
    )


def test_the_pop_goes_ringing_connected_ended_with_a_timer_and_clears_when_the_caller_hangs_up(console):
    make_customer(console.stack, "Pia Popper", "+14155550177")
    console.user("day-pia", "agent")
    started = time.monotonic()  # sign-in to a usable desk: the form, the desk page, its live stream open
    page = console.signed_in("day-pia", "agent", viewport=DESK_SCREEN)
    expect(page.get_by_role("heading", name="My desk")).to_be_visible()
    print(f"\nsign-in to desk: {time.monotonic() - started:.2f} s")
    available(console, page)
    pop = page.locator("#screen-pop")
    timings = []

    call_id = "CA" + uuid.uuid4().hex
    started = time.monotonic()
    ring(console, call_id, "+14155550177")
    expect(pop.get_by_role("heading", name=re.compile("Incoming call"))).to_be_visible()
    timings.append(time.monotonic() - started)
    expect(pop.locator(".pop")).to_have_attribute("data-state", "ringing")
    expect(pop.get_by_role("link", name="Wrap up")).to_be_hidden()  # not before the call is connected
    expect(pop.locator(".pop-timer")).to_have_text(re.compile(r"0:0[1-9]"), timeout=4000)  # it runs

    agent_leg(console, "day-pia", call_id, "in-progress", 1)
    expect(pop.locator(".pop")).to_have_attribute("data-state", "connected")
    expect(pop.get_by_role("heading", name=re.compile("Connected"))).to_be_visible()
    expect(pop.get_by_role("link", name="Wrap up")).to_be_visible()
    console.screenshot(page, "screen-pop-connected")
    agent_leg(console, "day-pia", call_id, "completed", 2, CallDuration="40")
    expect(pop.locator(".pop")).to_have_attribute("data-state", "ended")
    expect(pop.get_by_role("heading", name=re.compile("Call ended"))).to_be_visible()
    expect(pop.get_by_role("link", name="Wrap up")).to_be_focused()  # what is left to do
    frozen = pop.locator(".pop-timer").inner_text()
    page.wait_for_timeout(1500)
    assert pop.locator(".pop-timer").inner_text() == frozen  # the timer stops with the call
    pop.get_by_role("link", name="Wrap up").click()
    page.get_by_label("Reason").select_option("question")
    page.get_by_role("button", name="Finish wrap-up").click()
    expect(page.get_by_role("heading", name="Call wrapped up")).to_be_visible()

    # An unknown caller who hangs up while it rings: the pop offers to create them, then is gone.
    page.goto("/desk")
    page.locator("body[data-live='ready']").wait_for(state="attached")
    expect(page.locator("#my-state")).to_have_attribute("data-state", "available", timeout=15_000)
    gone = "CA" + uuid.uuid4().hex
    started = time.monotonic()
    ring(console, gone, "+14155550166")
    expect(pop.get_by_role("heading", name=re.compile("Incoming call"))).to_be_visible()
    timings.append(time.monotonic() - started)
    create = pop.get_by_role("link", name="Create customer")
    expect(create).to_have_attribute("href", "/customers/new?phone=%2B14155550166")
    console.screenshot(page, "screen-pop-unknown-caller")
    agent_leg(console, "day-pia", gone, "canceled", 1)  # the caller hung up while it rang
    expect(pop).to_be_hidden()
    expect(pop).to_be_empty()  # never left saying "Incoming call" after the call is gone
    print(f"\nscreen-pop: median {statistics.median(timings):.2f} s, max {max(timings):.2f} s over {len(timings)}")


def test_the_follow_up_card_names_the_purchase_keeps_the_outcome_on_the_first_screen_and_confirms_do_not_call(
    console,
):
    stack = console.stack
    page = console.signed_in("day-flo", "agent", viewport=DESK_SCREEN)
    expect(page.locator("#agent-strip [data-strip='calls']")).to_contain_text("My calls today")
    expect(page.locator("#agent-strip [data-strip='due-soon']")).to_be_visible()
    _customer_id, entry, _bought = follow_up_of_a_purchase(console, page, "Flo Follow")
    card = page.locator(".follow-up-head")
    expect(card.locator(".followed-purchase")).to_contain_text("Steel kettle")
    expect(card.locator(".followed-purchase")).to_contain_text("WEB-4711")
    expect(card.locator(".followed-purchase")).to_contain_text("€89.90")
    expect(card.locator(".followed-purchase")).to_contain_text("Nov 20, 2026")
    expect(card.locator(".customer-local-time")).to_contain_text("their time now")
    reached = page.get_by_role("button", name="Reached", exact=True)
    box = reached.bounding_box()
    assert box and box["y"] + box["height"] <= DESK_SCREEN["height"], "the outcome buttons are below the fold"
    dnc = page.get_by_role("button", name="Do not call", exact=True)
    assert dnc.bounding_box()["y"] + dnc.bounding_box()["height"] <= DESK_SCREEN["height"]
    console.screenshot(page, "follow-up-call-1366")

    page.once("dialog", lambda dialog: dialog.dismiss())  # "Put Flo Follow on the do-not-call list?" - no
    dnc.click()
    page.wait_for_timeout(500)
    held = api(stack, "GET", f"/api/callrouting/entries/{entry['id']}", supervisor(stack))
    assert held["state"] == "leased" and not held["history"], "a dismissed confirmation changed the entry"
    expect(reached).to_be_visible()

    # Reached, five scores: the customer's name and number stay in sight while typing.
    actions = 1  # "Next follow-up call" (take_the_call_and_reach)
    reached.click()
    actions += 1
    who = page.locator(".survey-who")
    expect(who).to_contain_text("Flo Follow")
    for key in "99989":
        page.keyboard.press(key)
        actions += 1
    assert who.bounding_box()["y"] >= 0 and who.is_visible()
    page.keyboard.press("Control+Enter")
    actions += 1
    expect(page.get_by_role("heading", name="Answers saved")).to_be_visible()
    page.get_by_role("button", name="End call").click()
    actions += 1
    expect(page.get_by_role("button", name="Next follow-up call")).to_be_visible()
    print(f"\nactions from 'Next follow-up call' to 'End call', reached, five answers: {actions}")
    assert actions == 9


def test_do_not_call_once_confirmed_is_recorded(console):
    stack = console.stack
    page = console.signed_in("day-dee", "agent", viewport=PHONE)
    _customer_id, entry = take_the_call_and_reach(console, page, "Dee Decline")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Do not call", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Outcome recorded"))).to_be_visible()
    closed = api(stack, "GET", f"/api/callrouting/entries/{entry['id']}", supervisor(stack))
    assert (closed["state"], closed["history"][0]["outcome"]) == ("cancelled", "do_not_call")
    console.screenshot(page, "do-not-call-phone")


def test_toasts_name_the_ticket_number_skip_my_own_actions_and_cover_no_button(console):
    page = console.signed_in("day-tom", "agent", viewport=DESK_SCREEN)
    page.goto("/tickets")
    page.locator("body[data-live='ready']").wait_for(state="attached")
    console.user("day-boss", "supervisor")
    boss = console.api("day-boss", "supervisor")
    ticket = boss.post(
        "/api/tickets/tickets", json={"subject": "Lid rattles", "category": "complaint", "assignee_id": "day-tom"}
    ).json()
    toast = page.locator("#toasts .toast")
    expect(toast).to_contain_text(f"#{ticket['number']}")
    expect(toast.get_by_role("link")).to_have_attribute("href", f"/tickets/{ticket['id']}")
    new_ticket = page.get_by_role("link", name="New ticket")
    toast_box, button_box = toast.bounding_box(), new_ticket.bounding_box()
    overlap = not (
        toast_box["x"] + toast_box["width"] <= button_box["x"]
        or button_box["x"] + button_box["width"] <= toast_box["x"]
        or toast_box["y"] + toast_box["height"] <= button_box["y"]
        or button_box["y"] + button_box["height"] <= toast_box["y"]
    )
    assert not overlap, "a toast covers a button"
    toast.get_by_role("button", name="Dismiss").click()
    expect(toast).to_have_count(0)
    # My own ticket, assigned to me by me: no toast.
    mine = console.api("day-tom", "agent")  # the user exists (signed in above)
    mine.post("/api/tickets/tickets", json={"subject": "My own", "category": "question", "assignee_id": "day-tom"})
    page.wait_for_timeout(2000)
    expect(toast).to_have_count(0)


def test_the_survey_is_read_in_the_customers_language_and_stored_with_it(console):
    stack = console.stack
    page = console.signed_in("day-lin", "agent", viewport=DESK_SCREEN)
    customer_id = make_customer(stack, "林美華", "+886223456701")  # a Taipei number: zh-Hant by default
    campaign = api(
        stack, "POST", "/api/callrouting/campaigns", supervisor(stack),
        {"name": f"回訪 {uuid.uuid4().hex[:6]}", "calling_window": ALWAYS, "contact_frequency_days": 0},
    )  # fmt: skip
    api(
        stack, "POST", f"/api/callrouting/campaigns/{campaign['id']}/entries", supervisor(stack),
        {"customer_id": customer_id, "due_at": "2026-01-01T00:00:00+00:00"},
    )  # fmt: skip
    page.goto("/desk")
    page.get_by_role("button", name="Next follow-up call").click()
    page.get_by_role("button", name="Reached", exact=True).click()
    expect(page.locator("[data-survey-language]")).to_have_attribute("data-survey-language", "zh-Hant")
    expect(page.locator("fieldset.question legend").first).to_contain_text("產品在多大程度上符合您的期望")
    expect(page.get_by_role("button", name="Submit answers")).to_be_visible()  # the console itself stays English
    for key in "88888":
        page.keyboard.press(key)
    page.keyboard.press("Control+Enter")
    expect(page.get_by_role("heading", name="Answers saved")).to_be_visible()
    [response] = api(stack, "GET", f"/api/surveys/responses?customer_id={customer_id}", supervisor(stack))["items"]
    assert response["language"] == "zh-Hant"
