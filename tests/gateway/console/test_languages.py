"""The console in six languages, in a real browser: the sign-in page follows the browser's
Accept-Language, a user's profile language wins over it, every screen passes axe-core in every
language, and each screen is photographed in Traditional Chinese at 1366x768 and on a phone
(test-artifacts/screenshots/zh-Hant-*.png). Times carry their zone and UTC on hover."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.gateway.console.conftest import PASSWORD
from tests.gateway.console.test_accessibility import serious_violations

# Playwright's locale sets the browser's Accept-Language; the catalog each one reaches.
LOCALES = {"en-US": "en", "zh-CN": "zh-Hans", "zh-TW": "zh-Hant", "fil-PH": "tl", "de-DE": "de", "fr-FR": "fr"}
SIGN_IN_BUTTON = {"en": "Sign in", "zh-Hans": "登录", "zh-Hant": "登入", "tl": "Mag-sign in", "de": "Anmelden",
                  "fr": "Se connecter"}  # fmt: skip
DESK_SCREEN = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}


def signed_in(console, user_id: str, role: str, locale: str, viewport=DESK_SCREEN):
    console.user(user_id, role)
    context = console.browser.new_context(viewport=viewport, base_url=console.url, locale=locale, bypass_csp=True)
    console.contexts.append(context)
    page = context.new_page()
    page.goto("/sign-in")
    tag = LOCALES[locale]
    expect(page.locator("html")).to_have_attribute("lang", tag)
    page.locator("#user_id").fill(user_id)
    page.locator("#password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name=SIGN_IN_BUTTON[tag]).click()
    return page


def screen_name(url: str) -> str:
    """'/tickets/8eef…' -> 'tickets-id': the screenshot's file name."""
    path = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "id", url.split("?")[0])
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "start"


def screens(console) -> dict[str, list[str]]:
    admin = console.api()
    customer = admin.post(
        "/api/tickets/customers", json={"name": "陳美玲", "phones": ["+886223456789"], "email": "mei@example.tw"}
    ).json()
    admin.post(
        f"/api/tickets/customers/{customer['id']}/purchases",
        json={"sku": "K-1", "product": "電熱水壺", "amount": "1290", "currency": "TWD",
              "purchased_at": "2026-11-20T10:00:00Z", "source": "web", "order_ref": "TW-1"},
    )  # fmt: skip
    ticket = admin.post(
        "/api/tickets/tickets", json={"subject": "壺蓋漏水", "category": "quality_issue", "customer_id": customer["id"]}
    ).json()
    campaign = admin.post("/api/callrouting/campaigns", json={"name": "售後回訪"}).json()
    console.user("lang-agent", "agent")
    return {
        "agent": ["/desk", "/tickets", f"/tickets/{ticket['id']}", "/tickets/new", "/customers?q=%E9%99%B3",
                  f"/customers/{customer['id']}/timeline", "/customers/new?phone=%2B886223456789", "/profile"],
        "admin": ["/dashboard", "/wall", "/campaigns", f"/campaigns/{campaign['id']}", "/campaigns/new",
                  "/agents", "/agents/lang-agent", "/agents/new", "/recovery", "/settings"],
    }  # fmt: skip


def test_the_sign_in_page_follows_the_browser_and_the_profile_language_wins(console):
    for locale, tag in LOCALES.items():
        context = console.browser.new_context(base_url=console.url, locale=locale)
        console.contexts.append(context)
        page = context.new_page()
        page.goto("/sign-in")
        expect(page.locator("html")).to_have_attribute("lang", tag)
        expect(page.get_by_role("button", name=SIGN_IN_BUTTON[tag])).to_be_visible()
    page = signed_in(console, "lang-pref", "agent", "zh-TW")
    expect(page.get_by_role("heading", name="我的工作台")).to_be_visible()
    page.goto("/profile")
    page.get_by_label("控制台語言").select_option("fr")
    page.get_by_label("我的時區").select_option("Asia/Taipei")
    with page.expect_navigation():
        page.get_by_role("button", name="儲存").click()  # the page comes back in the language chosen
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    page.goto("/desk")
    expect(page.get_by_role("heading", name="Mon poste")).to_be_visible()  # the browser still asks for zh-TW
    expect(page.locator(".topbar .zone")).to_have_text("Asia/Taipei")


def test_every_screen_passes_axe_in_every_language_and_is_photographed_in_traditional_chinese(console):
    paths = screens(console)
    found = {}
    for locale, tag in LOCALES.items():
        for role, urls in paths.items():
            page = signed_in(console, f"lang-{role}-{tag.lower()}", role, locale)
            for url in urls:
                page.goto(url)
                page.locator("body[data-live='ready']").wait_for(state="attached")
                expect(page.locator("html")).to_have_attribute("lang", tag)
                if violations := serious_violations(page):
                    found[f"{tag} {url}"] = violations
                if tag == "zh-Hant":
                    console.screenshot(page, f"zh-Hant-{screen_name(url)}")
            page.context.close()  # its live stream too: the gateway holds one open stream per page
    for role, urls in paths.items():
        phone = signed_in(console, f"lang-{role}-phone", role, "zh-TW", viewport=PHONE)
        for url in urls:
            phone.goto(url)
            phone.locator("body[data-live='ready']").wait_for(state="attached")
            width = phone.evaluate("document.documentElement.scrollWidth")
            console.screenshot(phone, f"zh-Hant-phone-{screen_name(url)}")
            assert width <= PHONE["width"] + 1, f"{url} scrolls sideways on a phone ({width} px)"
        phone.context.close()
    assert not found, "\n".join(
        f"{where}: {v['id']} ({v['impact']}) {v['help']}: {v['nodes']}" for where, vs in found.items() for v in vs
    )
