"""Signing in and out of the console in a real browser, and what a page may not do."""

from __future__ import annotations

from tests.gateway.console.conftest import PASSWORD


def test_a_page_without_a_session_leads_to_the_sign_in_form_and_back_after_signing_in(console):
    console.user("sign-in-agent", "agent")
    page = console.new_page()
    page.goto("/tickets?status=open")
    assert "/sign-in" in page.url
    page.get_by_label("User id").fill("sign-in-agent")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "Wrong user id or password."
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.url.endswith("/tickets?status=open"), page.url
    me = page.request.get("/auth/me").json()
    assert me["user"]["id"] == "sign-in-agent" and me["via"] == "cookie"
    console.screenshot(page, "sign-in-then-tickets")


def test_sign_out_ends_the_session_for_good(console):
    page = console.signed_in("sign-out-agent", "agent")
    cookie = next(c for c in page.context.cookies() if c["name"] == "cc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert page.url.endswith("/sign-in")
    page.goto("/desk")
    assert "/sign-in?next=/desk" in page.url
    # The old cookie is revoked on the server, not just forgotten by the browser.
    replay = console.new_page()
    replay.context.add_cookies([cookie])
    assert replay.request.get("/auth/me").status == 401


def test_each_role_lands_on_its_own_screen_and_sees_only_its_menu(console):
    agent = console.signed_in("landing-agent", "agent")
    assert agent.url.endswith("/desk")
    menu = agent.get_by_role("navigation", name="Main")
    assert menu.get_by_role("link", name="Tickets").is_visible()
    assert menu.get_by_role("link", name="Dashboard").count() == 0
    supervisor = console.signed_in("landing-supervisor", "supervisor")
    assert supervisor.url.endswith("/dashboard")
    assert supervisor.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").is_visible()


def test_console_pages_forbid_inline_script_and_framing(console):
    page = console.signed_in("headers-agent", "agent")
    answer = page.request.get("/desk")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["cache-control"] == "no-store"


def test_a_sign_in_form_posted_from_another_site_is_refused(console):
    console.user("csrf-agent", "agent")
    page = console.new_page()
    answer = page.request.post(
        "/sign-in",
        form={"user_id": "csrf-agent", "password": PASSWORD, "next": "/"},
        headers={"Origin": "https://evil.example"},
        max_redirects=0,
    )
    assert answer.status == 403 and "cc_session" not in answer.headers.get("set-cookie", "")


def test_the_sign_in_page_never_redirects_off_site(console):
    console.user("redirect-agent", "agent")
    page = console.new_page()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        page.goto("/sign-in?next=" + target)
        page.get_by_label("User id").fill("redirect-agent")
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        assert page.url.startswith(console.url + "/"), page.url
