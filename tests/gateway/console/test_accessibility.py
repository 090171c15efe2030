"""Every main screen passes axe-core's WCAG 2 A and AA rules (axe-core from npm, package-lock.json).

axe runs inside each page; the test's browser context lets its script in past the console's
Content-Security-Policy (``bypass_csp``): this test is about the markup, the CSP has its own tests.
A violation of impact "moderate" or worse fails, with the rule, the elements and axe's help.
"""

from __future__ import annotations

from tests.gateway.console.conftest import NODE_MODULES, PASSWORD, VIEWPORT

AXE = NODE_MODULES / "axe-core" / "axe.min.js"
RUN_AXE = """async () => {
  const rules = {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}};
  const result = await axe.run(document, rules);
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
}"""


def signed_in_for_axe(console, user_id: str, role: str):
    console.user(user_id, role)
    context = console.browser.new_context(viewport=VIEWPORT, base_url=console.url, bypass_csp=True)
    console.contexts.append(context)
    page = context.new_page()
    page.goto("/sign-in")
    assert not serious_violations(page), "the sign-in page"
    page.get_by_label("User id").fill(user_id)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    return page


def serious_violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    return [v for v in page.evaluate(RUN_AXE) if v["impact"] in ("moderate", "serious", "critical")]


def test_every_main_screen_passes_axe_wcag_a_and_aa(console):
    admin = console.api()
    customer = admin.post(
        "/api/tickets/customers", json={"name": "Ada Axe", "phones": ["+14155550199"], "region": "US"}
    ).json()
    ticket = admin.post(
        "/api/tickets/tickets",
        json={"subject": "Kettle leaks", "category": "quality_issue", "customer_id": customer["id"]},
    ).json()
    screens = {
        ("axe-agent", "agent"): ["/desk", "/tickets", f"/tickets/{ticket['id']}", "/tickets/new", "/customers?q=Ada"],
        ("axe-sup", "supervisor"): ["/dashboard", "/wall", "/campaigns", "/campaigns/new", "/agents", "/recovery"],
    }
    found = {}
    for (user_id, role), paths in screens.items():
        page = signed_in_for_axe(console, user_id, role)
        for path in [*paths, f"/customers/{customer['id']}/timeline"]:
            page.goto(path)
            page.locator("body[data-live='ready']").wait_for(state="attached")
            if violations := serious_violations(page):
                found[path] = violations
    assert not found, "\n".join(
        f"{path}: {v['id']} ({v['impact']}) {v['help']}: {v['nodes']}" for path, vs in found.items() for v in vs
    )
