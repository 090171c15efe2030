"""The console in a real browser: Debian's chromium driven by Playwright, no browser download.

``console`` serves the gateway of the ``stack`` fixture (real services over HTTP, real broker)
over real HTTP too, and gives signed-in browser pages:

    page = console.signed_in("agent-7", "agent")   # a new browser context, signed in through the form
    page.goto(console.url + "/desk")
    console.screenshot(page, "desk")                # test-artifacts/screenshots/desk.png

Users are created through the gateway's admin API, so an agent is registered in call routing
too. ``console.api(user_id, role)`` is a bearer-signed ``requests`` session through the same
gateway for setting up data and for comparing screens with the API.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.gateway.conftest import ServiceServer

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# As root in a container, and with nothing reaching out to Google's hosts (the network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"
VIEWPORT = {"width": 1280, "height": 900}


def pytest_collection_modifyitems(items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.console)
        if "console" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@dataclass
class Console:
    stack: object
    browser: object
    server: ServiceServer
    contexts: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def user(self, user_id: str, role: str = "agent", name: str | None = None) -> str:
        """Create ``user_id`` (if new) with the test password, through the admin API; returns the id."""
        admin = self.stack.bearer("console-admin", "admin")
        answer = requests.post(
            f"{self.url}/users",
            json={"id": user_id, "name": name or user_id.replace("-", " ").title(), "role": role, "password": PASSWORD},
            headers=admin,
            timeout=10,
        )
        assert answer.status_code in (201, 409), answer.text
        return user_id

    def api(self, user_id: str = "console-admin", role: str = "admin") -> requests.Session:
        """A requests session through the gateway with ``user_id``'s bearer token; paths are relative."""
        session = _BaseUrlSession(self.url)
        session.headers.update(self.stack.bearer(user_id, role))
        return session

    def new_page(self, viewport: dict | None = None):
        context = self.browser.new_context(viewport=viewport or VIEWPORT, base_url=self.url)
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        return context.new_page()

    def signed_in(self, user_id: str, role: str = "agent", *, viewport: dict | None = None, wait_live: bool = True):
        """A fresh browser context signed in as ``user_id`` through the sign-in form; the live stream open."""
        self.user(user_id, role)
        page = self.new_page(viewport)
        page.goto("/sign-in")
        page.get_by_label("User id").fill(user_id)
        page.get_by_label("Password").fill(PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        assert "/sign-in" not in page.url, f"{user_id} could not sign in"
        if wait_live:
            page.locator("body[data-live='ready']").wait_for(state="attached")
        return page

    @staticmethod
    def settled(page, selector: str) -> None:
        """Wait until htmx has finished loading and settling ``selector``: content it swapped in is
        wired up only after the settle delay (20 ms), and a change made before that is not sent."""
        page.locator(f"{selector}:not(.htmx-request):not(.htmx-settling)").wait_for(state="attached")
        page.locator(f"{selector} .htmx-added").first.wait_for(state="detached")

    def screenshot(self, page, name: str) -> Path:
        """Save a full-page screenshot under test-artifacts/screenshots/ (never committed)."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.server.stop()


class _BaseUrlSession(requests.Session):
    def __init__(self, base_url: str):
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 10)
        return super().request(method, self.base_url + url, *args, **kwargs)


@pytest.fixture
def console(stack, browser):
    served = Console(stack, browser, ServiceServer(stack.gateway))
    yield served
    served.close()
