"""The live wall in a real browser: a caller waiting (through Twilio's signed webhooks via the
gateway) and an agent's state change appear on the open wall by themselves, without a reload."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.sync_api import expect

from tests.gateway.console.test_dashboard import Twilio, phone_env, set_state  # noqa: F401 - the Twilio token

REFRESH_MS = 8_000  # the board is fetched every 5 s


def test_the_wall_shows_a_waiting_caller_and_follows_an_agents_state_by_itself(console):
    page = console.signed_in("wall-sup", "supervisor")
    console.user("wall-ann", "agent", name="Ann Wall")  # registered in call routing, offline
    twilio = Twilio(console.url)
    assert twilio.ring("CAwall0001", "+14155550161", datetime.now(UTC)).find("Enqueue") is not None  # nobody free

    page.goto("/wall")
    waiting = page.locator("[data-figure='calls-waiting'] .wall-number")
    expect(waiting).to_have_text("1")
    expect(page.locator("[data-figure='longest-wait'] .wall-number")).to_have_text(re.compile(r"^0:\d\d$"))
    offline, on_break = page.locator("[data-state='offline']"), page.locator("[data-state='on_break']")
    expect(offline.get_by_text("Ann Wall")).to_be_visible()
    expect(on_break.locator(".wall-count")).to_have_text("0")
    first_board = page.locator(".wall-now").get_attribute("data-updated")

    set_state(console, "wall-ann", "on_break")  # the agent, with their own token
    expect(on_break.get_by_text("Ann Wall")).to_be_visible(timeout=REFRESH_MS)
    expect(offline.get_by_text("Ann Wall")).to_have_count(0)
    expect(on_break.locator("[data-agent='wall-ann'] .wall-time")).to_have_text(re.compile(r"^0:0\d$"))  # just now
    assert page.locator(".wall-now").get_attribute("data-updated") != first_board  # a new board, same page
    console.screenshot(page, "wall")

    twilio.post("/webhooks/twilio/queue", {"CallSid": "CAwall0001", "QueueResult": "hangup", "QueueTime": "20"})
    expect(waiting).to_have_text("0", timeout=REFRESH_MS)
