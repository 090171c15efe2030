"""The agents screen in a real browser: a supervisor onboards an agent who then signs in, and
changes that agent's skills and state."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_a_supervisor_onboards_an_agent_who_signs_in_then_changes_their_skills_and_state(console):
    api = console.api()
    page = console.signed_in("team-lead", "supervisor")
    page.goto("/agents")
    page.get_by_role("link", name="New agent").click()
    expect(page.get_by_label("Role")).to_have_count(0)  # a supervisor onboards agents only
    page.get_by_label("User id").fill("new-hire")
    page.get_by_label("Name").fill("Nora Newhire")
    page.get_by_label("Skills").fill("de, returns")
    page.get_by_role("button", name="Create agent").click()
    expect(page.get_by_role("heading", name="Nora Newhire (new-hire) can sign in now")).to_be_visible()
    password = page.get_by_label("Initial password").inner_text()
    assert len(password) >= 12
    registered = api.get("/api/callrouting/agents/new-hire").json()
    assert registered["skills"] == ["de", "returns"] and registered["name"] == "Nora Newhire"

    # The new agent signs in with the password they were handed, and lands on the desk.
    agent = console.new_page()
    agent.goto("/sign-in")
    agent.get_by_label("User id").fill("new-hire")
    agent.get_by_label("Password").fill(password)
    with agent.expect_navigation():
        agent.get_by_role("button", name="Sign in").click()
    assert agent.url.endswith("/desk"), agent.url

    page.goto("/agents")
    row = page.get_by_role("row", name=re.compile("Nora Newhire"))
    expect(row).to_contain_text("returns")
    row.get_by_role("link", name="Nora Newhire").click()
    page.get_by_label("Skills (comma-separated)").fill("de, returns, vip")
    page.get_by_role("button", name="Save skills").click()
    expect(page.get_by_text("Skills saved.")).to_be_visible()
    assert api.get("/api/callrouting/agents/new-hire").json()["skills"] == ["de", "returns", "vip"]
    page.get_by_label("New state").select_option("available")
    page.get_by_role("button", name="Set state").click()
    expect(page.locator("#agent-state-card [data-state]")).to_have_text("available")
    assert api.get("/api/callrouting/agents/new-hire").json()["state"] == "available"

    # From the list: force them offline.
    page.goto("/agents")
    row = page.get_by_role("row", name=re.compile("Nora Newhire"))
    expect(row.get_by_role("cell").nth(1)).to_have_text("available")
    row.get_by_label("New state for Nora Newhire").select_option("offline")
    row.get_by_role("button", name="Set state of Nora Newhire").click()
    expect(page.get_by_role("row", name=re.compile("Nora Newhire")).get_by_role("cell").nth(1)).to_have_text("offline")
    assert api.get("/api/callrouting/agents/new-hire").json()["state"] == "offline"
    console.screenshot(page, "agents")
