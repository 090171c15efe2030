"""Console scenario (``BENCH_ONLY=console``): the agent console's customer page, and the screen-pop
of a ringing call in a real browser.

Set-up: tickets, call routing, surveys and the gateway under gunicorn (``deploy/gunicorn.conf.py``,
2 workers each) on fresh SQLite databases filled with the demo month of ``make seed``
(``services.seed``: 300 customers, ~2,800 calls, ~700 tickets, ~1,300 survey responses), call
routing's outbox relay (``python -m services.callrouting.worker relay``: the ringing call's
``call.started`` and the agent's ``agent.state_changed`` reach the gateway's live hub through the
broker), and call routing verifying Twilio's signatures (``TWILIO_AUTH_TOKEN``, one proxy hop: the
gateway's).

1. ``GET /customers/<id>/timeline`` (the console's customer page: the customer view of every
   service, rendered as HTML) for the demo customer with the longest history, as the demo agent
   ``agent-1`` with an API token (bench/console.lua). Two gateways side by side on the same
   services: one with its view cache off (``VIEW_CACHE_SECONDS=0``: each page assembles the view
   from the three services) and one with the default cache (the page renders a cached view).
   wrk -t2 -c32: requests/s as a ratio of the bare endpoint measured in the same run, and p99;
   wrk -t2 -c2 (one request in flight per gateway worker: the page's own latency): p50 and p99.
2. The screen-pop: Debian's chromium (Playwright, headless, the test suite's flags) signs in as
   ``agent-1`` through the sign-in form, opens ``/desk``, sets "My state" to available and waits
   for the live stream. Then CALLS times: a Twilio voice webhook (``CallStatus=ringing``, signed
   for the gateway's URL) from a demo customer's number is POSTed to the gateway; the clock runs
   from just before the POST until ``#screen-pop`` for that call is visible in the page (the
   wait is Playwright's; ``data-popped-at``, stamped by console.js when the card is in, gives the
   same figure from the browser's clock, shown beside it). Between calls the pop is dismissed
   (Escape), the caller hangs up (the number's status callback), and the agent is available again.
   Median and max over the calls (target: < 1 s).
3. Sign-in to the first screen: SIGN_INS times in a fresh browser context (no cookies, cold
   cache), the clock runs from the click on "Sign in" until the desk is on screen with its
   agent state and status strip filled in (the fragments htmx loads at once). Median and max
   (target: < 1 s); the server's own share (the POST's argon2 check, the desk's render) is in
   the browser's navigation timing, printed beside it.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import httpload
from bench.procs import BenchError, say, wait_for_log_message
from bench.report import Row
from bench.tickets import bare_figures, unqueued
from shared.config import Settings
from shared.db import Database, migrate

PAGE_LUA = Path(__file__).parent / "console.lua"
SERVICES = ("tickets", "callrouting", "surveys")
AGENT = "agent-1"
CALLS = 10
POP_TARGET_MS = 1000.0
SIGN_INS = 5
SIGN_IN_TARGET_MS = 1000.0
TWILIO_TOKEN = "bench-console-twilio-token"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [  # as tests/gateway/console/conftest.py: root in a container, no calls home
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def load(home: Path) -> dict:
    """Fresh migrated databases under ``home`` with the demo month; the page's customer, the
    callers' numbers, the agent's password (for the browser) and an API token (for wrk)."""
    import importlib
    import io

    from services.gateway import users
    from services.seed import seed_all

    databases, settings = {}, {}
    for service in (*SERVICES, "gateway"):
        url = f"sqlite:///{home / f'{service}.db'}"
        database = Database(url)
        migrate(database, importlib.import_module(f"services.{service}.models").MIGRATIONS)
        databases[service] = database
        settings[service] = Settings(service=service, database_url=url, amqp_url="", port=0)
    try:
        out = io.StringIO()
        world, _written, staff = seed_all(settings, out=out)
        say("console: " + out.getvalue().strip().splitlines()[-1])
        password = next(password for user_id, _name, _role, password in staff if user_id == AGENT)
        with databases["gateway"].sessions() as session:
            token = users.issue_token(session, AGENT, "api", timedelta(hours=2), label="bench console")
            session.commit()
    finally:
        for database in databases.values():
            database.dispose()
    history: dict[str, int] = {}
    for customer_id in [c.customer_id for c in world.calls] + [t.customer_id for t in world.tickets]:
        if customer_id:
            history[customer_id] = history.get(customer_id, 0) + 1
    for response in world.responses:
        history[response.customer_id] = history.get(response.customer_id, 0) + 1
    shown = max(history, key=lambda customer_id: (history[customer_id], customer_id))
    callers = [c.phone for c in world.customers if c.phone and not c.do_not_call][:CALLS]
    return {"customer_id": shown, "items": history[shown], "callers": callers, "password": password, "token": token}


def _get(url: str, token: str) -> tuple[int, str, str | None]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode(), response.headers.get("Content-Type")


def _twilio(gateway_url: str, path: str, params: dict) -> str:
    """The phone system calls the gateway's ``path``, signed for that URL; call routing's TwiML."""
    from twilio.request_validator import RequestValidator

    url = gateway_url + path
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(params).encode(), headers={"X-Twilio-Signature": signature}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def sign_ins(browser, gateway_url: str, password: str) -> list[dict]:
    """SIGN_INS sign-ins, each in a fresh context: ms from the click to the desk's first screen."""
    times = []
    for _ in range(SIGN_INS):
        context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=gateway_url)
        context.set_default_timeout(15_000)
        try:
            page = context.new_page()
            page.goto("/sign-in")
            page.get_by_label("User id").fill(AGENT)
            page.get_by_label("Password").fill(password)
            clicked = time.perf_counter()
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/desk")
            page.locator("#my-state").wait_for(state="attached")  # the state fragment is in
            page.locator("#agent-strip [data-strip='calls']").wait_for(state="attached")  # and the strip
            shown = time.perf_counter()
            navigation = page.evaluate(
                "() => { const [n] = performance.getEntriesByType('navigation');"
                " return {request_ms: n.responseStart - n.requestStart, dom_ms: n.domContentLoadedEventEnd} }"
            )
            times.append({"ms": (shown - clicked) * 1000, **navigation})
        finally:
            context.close()
    return times


def screen_pops(gateway_url: str, password: str, callers: list[str]) -> tuple[list[dict], list[dict]]:
    """Sign in SIGN_INS times, then ring the agent CALLS times; per call the ms from the webhook's POST to
    the visible pop."""
    from playwright.sync_api import sync_playwright

    pops = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            signed_in = sign_ins(browser, gateway_url, password)
            context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=gateway_url)
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.goto("/sign-in")
            page.get_by_label("User id").fill(AGENT)
            page.get_by_label("Password").fill(password)
            with page.expect_navigation():
                page.get_by_role("button", name="Sign in").click()
            if "/sign-in" in page.url:
                raise BenchError(f"console: {AGENT} could not sign in")
            page.goto("/desk")
            page.locator("body[data-live='ready']").wait_for(state="attached")
            for number in callers:
                page.locator("#my-state").wait_for(state="attached")
                if page.locator("#my-state").get_attribute("data-state") != "available":
                    page.locator("select#my-state").select_option("available")
                page.locator("#my-state[data-state='available']").wait_for(state="attached")
                call_id = "CA" + uuid.uuid4().hex
                pop = page.locator(f"#screen-pop[data-call-id='{call_id}']")
                sent = time.time()
                twiml = _twilio(
                    gateway_url,
                    "/webhooks/twilio/voice",
                    {"CallSid": call_id, "From": number, "To": "+12025550100", "CallStatus": "ringing"},
                )
                pop.wait_for(state="visible")
                seen = time.time()
                if f">{AGENT}<" not in twiml:
                    raise BenchError(f"console: the call was not offered to {AGENT}: {twiml}")
                popped_at = int(pop.get_attribute("data-popped-at"))
                pops.append(
                    {
                        "call_id": call_id,
                        "wall_ms": (seen - sent) * 1000,
                        "browser_ms": popped_at - sent * 1000,
                        "has_caller_view": page.locator("#screen-pop a[href$='/timeline']").count() > 0,
                    }
                )
                page.keyboard.press("Escape")  # the pop has the focus: Escape closes it
                page.locator("#screen-pop").wait_for(state="hidden")
                # The caller hangs up before the agent answers: the number's callback, then the agent's
                # leg reports itself canceled (as Twilio does), which ends the offer and frees the agent.
                now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
                _twilio(
                    gateway_url,
                    "/webhooks/twilio/status",
                    {"CallSid": call_id, "CallStatus": "completed", "SequenceNumber": "1", "Timestamp": now},
                )
                _twilio(
                    gateway_url,
                    f"/webhooks/twilio/status?agent={AGENT}&round=1",
                    {
                        "CallSid": f"CL-{call_id}",
                        "ParentCallSid": call_id,
                        "CallStatus": "canceled",
                        "SequenceNumber": "0",
                        "Timestamp": now,
                    },
                )
        finally:
            browser.close()
    return pops, signed_in


def run(processes, env: dict[str, str], var_dir: Path) -> dict:
    home = var_dir / "console"
    home.mkdir(parents=True, exist_ok=True)
    say("console: migrating four databases and filling them with the demo month (services.seed)")
    loaded = load(home)
    token = loaded["token"]

    bare, bare_unqueued = bare_figures(processes, env, "console-bare")

    # Signatures checked against the URL the gateway (one proxy hop) was called at, rebuilt from its
    # X-Forwarded-* headers: development mode, since the gateway's port (the URL a production
    # PUBLIC_BASE_URL would pin) is only chosen below. Without either, every webhook is a 403.
    phone_env = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "PROXY_HOPS": "1", "CALLCENTER_ENV": "development"}
    relay = processes.start(
        "console-callrouting-relay",
        [sys.executable, "-m", "services.callrouting.worker", "relay"],
        dict(env, VAR_DIR=str(home), **phone_env),
    )
    wait_for_log_message(processes, "console-callrouting-relay", relay, "relay ready")
    servers, urls = {"relay": relay}, {}
    for name, service, cache_seconds in (
        *((s, s, None) for s in SERVICES),
        ("gateway-uncached", "gateway", "0"),
        ("gateway", "gateway", None),
    ):
        metrics_dir = var_dir / "metrics" / f"console-{name}"
        metrics_dir.mkdir(parents=True, exist_ok=True)
        server_env = dict(
            env,
            SERVICE=service,
            VAR_DIR=str(home),
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
            LOG_LEVEL="WARNING",
            **phone_env,
            **{f"{other.upper()}_URL": urls[other] for other in SERVICES if other in urls},
            **({"VIEW_CACHE_SECONDS": cache_seconds} if cache_seconds else {}),
        )
        servers[name], urls[name] = httpload.start_server(
            processes, f"console-{name}", f"services.{service}.app:create_app()", server_env, "/healthz"
        )
    page_path = f"/customers/{loaded['customer_id']}/timeline"
    os.environ["BENCH_CONSOLE_TOKEN"] = token  # for bench/console.lua (wrk inherits the environment)
    try:
        figures = {}
        for label, name in (("view cache off", "gateway-uncached"), ("view cache on", "gateway")):
            status, html, content_type = _get(urls[name] + page_path, token)
            if status != 200 or not (content_type or "").startswith("text/html") or "Timeline" not in html:
                raise BenchError(f"console page ({label}): {status} {content_type}: {html[:300]}")
            say(
                f"console page: {len(html):,} bytes of HTML for a customer with {loaded['items']} calls/tickets/surveys"
            )
            scenario = f"console GET /customers/<id>/timeline, {label}"
            figures[label] = {
                "c2": unqueued(scenario, urls[name] + page_path, PAGE_LUA),
                "c32": httpload.measure(scenario, urls[name] + page_path, PAGE_LUA),
                "bytes": len(html),
            }
        say(f"console: screen-pops in chromium, {CALLS} calls to {AGENT}")
        pops, signed_in = screen_pops(urls["gateway"], loaded["password"], loaded["callers"])
    finally:
        os.environ.pop("BENCH_CONSOLE_TOKEN", None)
        for server in servers.values():
            processes.stop(server)

    wall = [pop["wall_ms"] for pop in pops]
    browser = [pop["browser_ms"] for pop in pops]
    say(
        "console screen-pop: "
        + ", ".join(f"{ms:.0f}" for ms in wall)
        + f" ms (median {statistics.median(wall):.0f}, max {max(wall):.0f})"
    )
    sign_in_ms = [item["ms"] for item in signed_in]
    say(
        "console sign-in to the desk: "
        + ", ".join(f"{item['ms']:.0f} (server {item['request_ms']:.0f})" for item in signed_in)
        + f" ms (median {statistics.median(sign_in_ms):.0f}, max {max(sign_in_ms):.0f})"
    )
    rows = []
    for label, measured in figures.items():
        scenario = f"console GET /customers/{{id}}/timeline, {label}"
        c2, c32 = measured["c2"], measured["c32"]
        rows += [
            Row(f"{scenario}, -c32", "requests/s", c32.requests_per_s, "req/s", bare.requests_per_s, "bare"),
            Row(f"{scenario}, -c32", "latency p99", c32.p99_ms, "ms", bare.p99_ms, "bare"),
            Row(f"{scenario}, -c2", "latency p50", c2.p50_ms, "ms", bare_unqueued.p50_ms, "bare"),
            Row(f"{scenario}, -c2", "latency p99", c2.p99_ms, "ms", bare_unqueued.p99_ms, "bare"),
        ]
    pop_scenario = f"console screen-pop, ringing webhook -> #screen-pop visible in chromium ({len(pops)} calls)"
    rows += [
        Row(pop_scenario, "median", statistics.median(wall), "ms", target="< 1000", met=statistics.median(wall) < 1000),
        Row(pop_scenario, "max", max(wall), "ms", target=f"< {POP_TARGET_MS:.0f}", met=max(wall) < POP_TARGET_MS),
        Row(pop_scenario + ", browser's clock", "median", statistics.median(browser), "ms"),
    ]
    sign_in_scenario = f"console sign-in -> the desk with its state and strip, fresh browser ({len(signed_in)} times)"
    rows += [
        Row(
            sign_in_scenario,
            "median",
            statistics.median(sign_in_ms),
            "ms",
            target=f"< {SIGN_IN_TARGET_MS:.0f}",
            met=statistics.median(sign_in_ms) < SIGN_IN_TARGET_MS,
        ),
        Row(sign_in_scenario, "max", max(sign_in_ms), "ms"),
    ]
    problems = []
    if not all(pop["has_caller_view"] for pop in pops):
        problems.append("console: a screen-pop did not show the known caller's card (link to their page)")
    return {
        "rows": rows,
        "problems": problems,
        "bare": bare.as_dict(),
        "bare_c2": bare_unqueued.as_dict(),
        "page": {
            label: {"c2": m["c2"].as_dict(), "c32": m["c32"].as_dict(), "bytes": m["bytes"]}
            for label, m in figures.items()
        },
        "page_customer_items": loaded["items"],
        "screen_pops": pops,
        "sign_ins": signed_in,
    }
