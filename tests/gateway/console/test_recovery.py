"""The service-recovery queue in a real browser: a low survey score opens a case, the open queue
shows it by itself (the live stream's recovery-opened), with its SLA, and the supervisor assigns it."""

from __future__ import annotations

import random
import re

from playwright.sync_api import expect

from tests.support.services import wait_for

LOW_ANSWERS = {"product": 3, "service": 2, "purchase": 7, "recommend_product": 4, "recommend_store": 8}


def test_a_low_score_opens_a_case_the_queue_shows_with_its_sla_and_the_supervisor_assigns_it(console):
    api = console.api()
    console.user("rec-agent", "agent", name="Rita Recovery")
    made = api.post(
        "/api/tickets/customers",
        json={"name": "Edsger Dijkstra", "phone": f"030 {random.randrange(10**7, 10**8)}", "region": "DE"},
    )
    customer_id = made.json()["id"]
    page = console.signed_in("rec-lead", "supervisor")
    page.goto("/recovery")
    page.locator("body[data-live='ready']").wait_for(state="attached")
    expect(page.get_by_text("No open service-recovery cases")).to_be_visible()

    agent_api = console.api("rec-agent", "agent")
    response = agent_api.post(
        "/api/surveys/responses",
        json={"customer_id": customer_id, "channel": "agent", "agent_id": "rec-agent", "answers": LOW_ANSWERS},
    )
    assert response.status_code == 201, response.text
    response_id = response.json()["id"]
    case = wait_for(
        lambda: next(
            iter(api.get("/api/tickets/tickets", params={"category": "service_recovery"}).json()["items"]), None
        ),
        timeout=20,
        what="the service-recovery ticket",
    )
    assert case["survey_response_id"] == response_id

    # No reload: the live stream's recovery.opened brings the case onto the open page.
    row = page.locator(f"tr[data-ticket-id='{case['id']}']")
    expect(row).to_be_visible(timeout=15_000)
    expect(row.get_by_role("link", name=f"#{case['number']}")).to_have_attribute("href", f"/tickets/{case['id']}")
    customer_link = row.get_by_role("link", name=re.compile("Edsger Dijkstra|" + customer_id))
    expect(customer_link).to_have_attribute("href", f"/customers/{customer_id}/timeline")
    expect(row.locator(".badge").first).to_have_text("service 2")  # the lowest score leads
    due = case["first_response_due_at"][:16].replace("T", " ")
    # shown in the viewer's zone (UTC here), labelled, with the UTC time on hover
    expect(row.get_by_role("cell").nth(4).locator("time")).to_have_attribute("title", f"{due} UTC")
    expect(row.get_by_role("cell").nth(4)).to_contain_text("(UTC)")
    expect(row.get_by_role("cell").nth(4)).to_contain_text("first response in")
    expect(row).to_contain_text("unassigned")
    console.screenshot(page, "recovery-queue")
    page.set_viewport_size({"width": 768, "height": 1000})  # a tablet: the row's actions stay within reach
    expect(row.get_by_role("button", name=f"Take case #{case['number']}")).to_be_in_viewport()
    console.screenshot(page, "recovery-queue-tablet")

    console.settled(page, "#recovery-queue")  # the reload that brought the case is wired up
    row.get_by_label(f"Assign case #{case['number']} to").select_option("rec-agent")
    row.get_by_role("button", name=f"Assign case #{case['number']}", exact=True).click()
    expect(page.locator(f"tr[data-ticket-id='{case['id']}'] .assignee")).to_have_text("rec-agent")
    stored = api.get(f"/api/tickets/tickets/{case['id']}").json()
    assert stored["assignee_id"] == "rec-agent" and stored["status"] == "open"
