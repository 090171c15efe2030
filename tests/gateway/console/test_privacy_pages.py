"""The console's staffing panel and data protection actions in a real browser (console/privacy_pages.py).

A supervisor's dashboard draws required vs staffed agents and each agent's activity timeline from
the day's state history (made through the real agent-state API); an erasure that a service has not
applied by its due time shows as overdue. On a customer's page the privacy role (and admins) can
download the export and erase after confirming; an agent sees neither.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from playwright.sync_api import expect

from tests.support.services import wait_for

WIDEST = """[...document.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)"""
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def test_the_dashboard_shows_required_vs_staffed_and_each_agent_s_timeline(console):
    admin = console.api()
    assert admin.post("/api/callrouting/agents", json={"id": "agent-7", "name": "Grace Hopper"}).status_code in (
        200,
        201,
    )
    for state in ("available", "on_break", "available", "offline"):
        answer = admin.put("/api/callrouting/agents/agent-7/state", json={"state": state})
        assert answer.status_code == 200, answer.text
        time.sleep(0.3)
    day = datetime.now(UTC).date().isoformat()
    page = console.signed_in("sup-1", "supervisor", viewport=DESKTOP, wait_live=False)
    page.goto(f"/dashboard?date={day}")
    panel = page.locator("#staffing")
    expect(panel.get_by_role("heading", name="Staffing: agents required and staffed")).to_be_visible()
    expect(page.locator("#chart-staffing[data-chart='drawn']")).to_be_attached()
    timeline = panel.locator(".agent-timeline[data-timeline-agent='agent-7']")
    expect(timeline).to_contain_text("Grace Hopper")
    expect(timeline.locator(".seg.state-available")).to_have_count(2)
    expect(timeline.locator(".seg.state-on_break")).to_have_count(1)
    expect(panel.locator("#overdue-erasures-none")).to_be_visible()
    console.screenshot(page, "staffing-dashboard-desktop")
    small = console.signed_in("sup-1", "supervisor", viewport=PHONE, wait_live=False)
    small.goto(f"/dashboard?date={day}#staffing")
    expect(small.locator("#staffing .agent-timeline")).to_have_count(1)
    console.screenshot(small, "staffing-dashboard-phone")
    wide = small.evaluate(WIDEST)
    assert small.evaluate("document.querySelector('#staffing').scrollWidth") <= PHONE["width"], wide


def test_a_privacy_officer_exports_and_erases_from_the_customer_page_and_an_agent_cannot(console, monkeypatch):
    admin = console.api()
    customer = admin.post("/api/tickets/customers", json={"name": "Ada Lovelace", "phone": "+442079460958"}).json()
    wait_for(lambda: admin.get(f"/api/customers/{customer['id']}/view").status_code == 200)

    agent = console.signed_in("agent-9", "agent", viewport=DESKTOP, wait_live=False)
    agent.goto(f"/customers/{customer['id']}/timeline")
    expect(agent.locator("h1")).to_have_text("Ada Lovelace")
    expect(agent.locator("#privacy-actions")).to_have_count(0)

    page = console.signed_in("dpo-1", "privacy", viewport=DESKTOP, wait_live=False)
    page.goto(f"/customers/{customer['id']}/timeline")
    with page.expect_download() as download:
        page.locator("#privacy-export").click()
    exported = download.value.path().read_text()
    assert "Ada Lovelace" in exported and '"tickets"' in exported
    page.get_by_text("Erase this customer…").click()
    expect(page.locator("#erase-what")).to_contain_text("It cannot be undone")
    page.get_by_label("I have checked this is the customer who asked to be erased.").check()
    console.screenshot(page, "privacy-erase-confirmation")
    page.locator("#privacy-erase-button").click()
    expect(page.locator("#erasure-request")).to_contain_text("Erasure requested.")
    request_id = page.locator("#erasure-request").get_attribute("data-request")
    wait_for(lambda: admin.get(f"/api/privacy/requests/{request_id}").json()["state"] == "done")
    assert admin.get(f"/api/tickets/customers/{customer['id']}").json()["name"] == "Erased customer"

    # an erasure a service has not applied by its due time shows as overdue on the dashboard
    console.stack.servers["surveys"].stop()
    other = admin.post("/api/tickets/customers", json={"name": "Charles Babbage"}).json()
    monkeypatch.setenv("PRIVACY_ERASURE_DEADLINE_MINUTES", "0")  # due at once: overdue while surveys is down
    erased = admin.post(f"/api/customers/{other['id']}/erase")
    assert erased.status_code == 201, erased.text
    supervisor = console.signed_in("sup-2", "supervisor", viewport=DESKTOP, wait_live=False)
    supervisor.goto("/dashboard")
    expect(supervisor.locator("#staffing")).to_be_attached()
    overdue = supervisor.locator(f"#overdue-erasures li[data-request='{erased.json()['request_id']}']")
    expect(overdue).to_contain_text("surveys")
    console.screenshot(supervisor, "privacy-overdue-dashboard")
