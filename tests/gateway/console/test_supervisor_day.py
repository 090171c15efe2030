"""A supervisor's screens in a real browser: the Agents page shows each agent's real state in its
select, the wallboard's figures and thresholds and full-screen mode, the dashboard that stops at
now with small-multiple trends, the center's time zone (UTC on hover), withheld figures that say
how many answers are missing; the ticket list's customer column, queue counts and the filters
that fold away on a phone; a ticket's customer side panel; customer search by national number
and without accents."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.sync_api import expect

from tests.gateway.console.test_desk_routes import api, make_customer, supervisor

PHONE = {"width": 390, "height": 844}


def test_the_agents_page_selects_each_agents_real_state(console):
    page = console.signed_in("sup-ada", "supervisor")
    console.user("sup-avail", "agent")
    api(
        console.stack,
        "PUT",
        "/api/callrouting/agents/sup-avail/state",
        supervisor(console.stack),
        {"state": "available"},
    )
    page.goto("/agents")
    row = page.locator("tr[data-agent-id='sup-avail']")
    expect(row.get_by_role("combobox")).to_have_value("available")
    row.get_by_role("button", name=re.compile("Set state")).click()  # one click changes nothing
    console.settled(page, "#agents-table")
    assert api(console.stack, "GET", "/api/callrouting/agents/sup-avail", supervisor(console.stack))["state"] == (
        "available"
    )


def test_the_wallboard_shows_service_level_abandon_rate_every_queue_thresholds_and_goes_full_screen(console):
    stack = console.stack
    api(stack, "PUT", "/api/callrouting/queues/returns", supervisor(stack), {"required_skills": []})
    page = console.signed_in("sup-wally", "admin")
    page.goto("/settings")
    page.get_by_label(re.compile("Longest wait, seconds")).fill("1")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    page.goto("/wall")
    board = page.locator("#wall-board")
    expect(board.locator("[data-figure='service-level']")).to_be_visible()
    expect(board.locator("[data-figure='abandon-rate']")).to_be_visible()
    expect(board.locator("[data-figure='answered-offered']")).to_be_visible()
    queue = board.locator("tr[data-queue='returns']")
    expect(queue).to_have_attribute("data-waiting", "0")  # a queue with nobody waiting keeps its row
    expect(board.locator("[data-figure='longest-wait']")).to_have_attribute("title", "red from 1 s")
    button = page.get_by_role("button", name="Full screen")
    button.click()
    expect(page.locator("#wall")).to_have_class(re.compile("wall-fullscreen"))
    console.screenshot(page, "wall-full-screen")


def test_the_dashboard_of_today_ends_at_now_in_the_centers_zone_with_utc_on_hover(console):
    page = console.signed_in("sup-dash", "admin")
    page.goto("/settings")
    page.get_by_label(re.compile("The center's time zone")).select_option("Asia/Manila")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    page.goto("/dashboard")
    now = datetime.now(UTC)
    rows = page.locator("#hours-table tbody tr[data-hour]")
    hours = [int(value) for value in rows.evaluate_all("rows => rows.map(r => r.dataset.hour)")]
    assert all(hour <= now.hour for hour in hours), f"hours after now drawn: {hours}"
    expect(page.locator("#hours-table thead")).to_contain_text("Hour (Asia/Manila)")
    first = page.locator("#hours-table tbody th[title]").first
    if first.count():
        assert first.get_attribute("title").endswith("UTC")
    charts = page.evaluate("JSON.parse(document.getElementById('dashboard-charts').textContent)")
    assert len(charts["hours"]["labels"]) == now.hour + 1  # the chart stops at this hour too
    expect(page.locator(".topbar .zone")).to_have_text("Asia/Manila")  # every time on the page, labelled
    console.screenshot(page, "dashboard-manila")


def test_tickets_list_the_customer_count_queues_fold_filters_and_show_the_customer_beside(console):
    stack = console.stack
    customer_id = make_customer(stack, "Cleo Column", "+14155550145")
    console.user("sup-tia", "agent")
    agent = console.api("sup-tia", "agent")
    ticket = agent.post(
        "/api/tickets/tickets",
        json={"subject": "Lid cracked", "category": "complaint", "customer_id": customer_id, "assignee_id": "sup-tia"},
    ).json()
    page = console.signed_in("sup-tia", "agent")
    page.goto("/tickets")
    expect(page.locator(f"tr[data-ticket-id='{ticket['id']}'] .ticket-customer-cell")).to_have_text("Cleo Column")
    expect(page.locator("nav.queues a[data-queue='mine'] .count")).to_have_text("1")
    page.goto(f"/tickets/{ticket['id']}")
    panel = page.locator("[data-customer-panel]")
    expect(panel.get_by_role("heading", name="Cleo Column")).to_be_visible()
    for section in ("Scores", "Open tickets", "Recent calls"):
        expect(panel.get_by_role("heading", name=section)).to_be_visible()
    console.screenshot(page, "ticket-with-customer")

    phone = console.signed_in("sup-tia", "agent", viewport=PHONE)
    phone.goto("/tickets")
    fold = phone.locator("details.filters-fold")
    expect(fold).not_to_have_attribute("open", "")
    expect(phone.get_by_label("Priority")).to_be_hidden()
    phone.get_by_text("Filters", exact=True).click()
    expect(phone.get_by_label("Priority")).to_be_visible()
    console.screenshot(phone, "tickets-phone")


def test_customer_search_reads_national_numbers_in_the_centers_region_and_ignores_accents(console):
    stack = console.stack
    api(stack, "POST", "/api/tickets/customers", supervisor(stack), {"name": "Inès Dupont", "phones": ["+33612345678"]})
    make_customer(stack, "Marisol Reyes", "+639171234567")
    page = console.signed_in("sup-sam", "admin")
    page.goto("/settings")
    page.get_by_label(re.compile("Country of a phone number")).fill("PH")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    page.goto("/customers?q=Ines")
    expect(page.locator("table.customers")).to_contain_text("Inès Dupont")
    page.goto("/customers?q=0917+123+4567")  # a national number of the center's country
    expect(page.locator("table.customers")).to_contain_text("Marisol Reyes")
    page.goto("/customers?q=12345")
    expect(page.locator(".alert")).to_contain_text("is not a phone number of Philippines")
