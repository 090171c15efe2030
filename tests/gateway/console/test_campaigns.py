"""The campaigns screen in a real browser, as a supervisor uses it: create a call list, change its
retry policy, pause and resume it, import entries from a CSV file, read its report."""

from __future__ import annotations

import random
import re

from playwright.sync_api import expect

from tests.support.services import wait_for


def new_customer(api, name: str) -> str:
    """A customer made in tickets and known to call routing (an import checks its own replica)."""
    phone = f"030 {random.randrange(10**7, 10**8)}"
    made = api.post("/api/tickets/customers", json={"name": name, "phone": phone, "region": "DE"})
    assert made.status_code == 201, made.text
    customer_id = made.json()["id"]
    wait_for(
        lambda: api.get(f"/api/callrouting/customers/{customer_id}").status_code == 200,
        timeout=20,
        what="call routing's replica of the customer",
    )
    return customer_id


def test_a_supervisor_sets_up_a_campaign_edits_pauses_imports_and_reads_its_report(console):
    api = console.api()
    first, second = new_customer(api, "Grace Hopper"), new_customer(api, "Alan Turing")
    page = console.signed_in("camp-lead", "supervisor")

    page.goto("/campaigns")
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name").fill("Care kit follow-up")
    page.get_by_label("Delay (days after the purchase)").fill("14")
    page.get_by_label("Script").fill("Hello, this is the store: how is your new kettle?")
    page.get_by_label("Cross-sell talking point").fill("The descaling kit, 20 % off this week")
    with page.expect_navigation(url=re.compile(r"/campaigns/[0-9a-f-]{36}$")):
        page.get_by_role("button", name="Create campaign").click()
    campaign_id = page.url.rsplit("/", 1)[1]
    stored = api.get(f"/api/callrouting/campaigns/{campaign_id}").json()
    assert stored["delay_days"] == 14 and stored["talking_point"] == "The descaling kit, 20 % off this week"
    assert stored["script"].startswith("Hello, this is the store")

    # A window call routing refuses: its field errors, in the alert region brought into view.
    page.get_by_label("Sunday from").fill("25:00")
    page.get_by_label("Sunday until").fill("26:00")
    page.get_by_role("button", name="Save settings").click()
    alert = page.locator("#flash .alert")
    expect(alert).to_contain_text("calling_window")
    assert "sun" not in api.get(f"/api/callrouting/campaigns/{campaign_id}").json()["calling_window"]
    page.get_by_label("Sunday from").fill("")
    page.get_by_label("Sunday until").fill("")

    # The retry policy: no answer tried again after 90 minutes, at most 4 times.
    page.get_by_label("No answer: retry after minutes").fill("90")
    page.get_by_label("No answer: at most").fill("4")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    stored = api.get(f"/api/callrouting/campaigns/{campaign_id}").json()
    assert stored["retry_policy"]["no_answer"] == {"delay_minutes": 90, "max_attempts": 4}

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#campaign-status .badge")).to_have_text("paused")
    assert api.get(f"/api/callrouting/campaigns/{campaign_id}").json()["active"] is False
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#campaign-status .badge")).to_have_text("active")
    assert api.get(f"/api/callrouting/campaigns/{campaign_id}").json()["active"] is True

    # A file without the customer_id column: refused whole, the alert scrolled into view from down here.
    bad_header = b"customer,due_at\nsomebody,\n"
    file_field = page.get_by_label("CSV file", exact=True)
    file_field.set_input_files(files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad_header}])
    page.get_by_role("button", name="Import").click()
    expect(alert).to_contain_text("no customer_id column")
    expect(alert).to_be_in_viewport()

    csv_file = f"customer_id,due_at\n{first},\nnot-a-customer,\n{second},\n".encode()
    file_field.set_input_files(files=[{"name": "list.csv", "mimeType": "text/csv", "buffer": csv_file}])
    page.get_by_role("button", name="Import").click()
    result = page.locator("#import-result")
    expect(result).to_contain_text("list.csv: 2 entries added, 1 row refused.")
    refused = result.get_by_role("table", name="Rows not imported").get_by_role("row").nth(1)
    expect(refused.get_by_role("cell").first).to_have_text("3")
    expect(refused.get_by_role("cell").nth(1)).to_contain_text("customer_id is not a UUID")
    entries = api.get(f"/api/callrouting/campaigns/{campaign_id}/entries").json()
    assert sorted(entry["customer_id"] for entry in entries["items"]) == sorted([first, second])
    expect(page.locator("#campaign-entries")).to_contain_text(first)  # the list below was swapped in too

    # The report: both entries are due today.
    page.reload()
    report = page.get_by_role("table", name=re.compile("By day"))
    total = report.locator("tfoot tr")
    expect(total.get_by_role("cell").first).to_have_text("2")
    expect(page.locator(".report-kpis .kpi").first).to_contain_text("2")
    console.screenshot(page, "campaign-edit")

    page.goto("/campaigns")
    row = page.get_by_role("row", name=re.compile("Care kit follow-up"))
    expect(row).to_contain_text("active")
    expect(row.get_by_role("cell").nth(5)).to_have_text("2")  # pending
    console.screenshot(page, "campaigns")
