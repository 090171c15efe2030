"""The supervisor's dashboard in a real browser: a day of work put through the real services
(calls through Twilio's signed webhooks via the gateway, agents' wrap-ups, tickets, surveys), and
the page shows the very figures of ``/api/reports/daily`` for that day, draws its charts, moves
to another day and downloads the CSV."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ElementTree
import zlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from playwright.sync_api import expect
from twilio.request_validator import RequestValidator

from tests.gateway.test_front import ANSWERS
from tests.support.services import wait_for

TWILIO_TOKEN = "console-dashboard-twilio-token"


@pytest.fixture(autouse=True)
def phone_env(monkeypatch):
    # Before the services start (autouse fixtures come first): call routing checks Twilio's
    # signature against the URL the gateway was called at (one proxy hop).
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("PROXY_HOPS", "1")


class Twilio:
    """Twilio calling the gateway's webhooks as it would: form posts signed for the URL it calls."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.validator = RequestValidator(TWILIO_TOKEN)
        self.sequences: dict[str, int] = {}

    def post(self, path: str, params: dict) -> str:
        signature = self.validator.compute_signature(self.base_url + path, params)
        answer = requests.post(self.base_url + path, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.text

    def status(self, sid: str, status: str, at: datetime, path: str = "/webhooks/twilio/status", **extra) -> None:
        sequence = self.sequences.get(sid, 0)
        self.sequences[sid] = sequence + 1
        params = {"CallSid": sid, "CallStatus": status, "SequenceNumber": str(sequence), "Timestamp": rfc2822(at)}
        self.post(path, params | {key: str(value) for key, value in extra.items()})

    def ring(self, sid: str, caller: str, at: datetime) -> ElementTree.Element:
        params = {
            "CallSid": sid,
            "From": caller,
            "To": "+14155550199",
            "CallStatus": "ringing",
            "Timestamp": rfc2822(at),
        }
        return ElementTree.fromstring(self.post("/webhooks/twilio/voice", params))

    def answered_call(self, sid: str, at: datetime, wait: int, talk: int) -> str:
        """A call dialled to a free agent, answered after ``wait`` s, talked ``talk`` s; the agent's id."""
        dial = self.ring(sid, f"+1415555{sid[-4:]}", at).find("Dial")
        assert dial is not None, "no agent was free"
        callback = urlparse(dial[0].get("statusCallback"))
        agent = parse_qs(callback.query)["agent"][0]
        leg, leg_path = f"{sid}-leg", f"/webhooks/twilio/status?{callback.query}"
        self.status(leg, "ringing", at, leg_path, ParentCallSid=sid)
        self.status(leg, "in-progress", at + timedelta(seconds=wait), leg_path, ParentCallSid=sid)
        ended = at + timedelta(seconds=wait + talk)
        self.status(leg, "completed", ended, leg_path, ParentCallSid=sid, CallDuration=talk)
        self.status(sid, "completed", ended, CallDuration=wait + talk)
        return agent

    def abandoned_call(self, sid: str, at: datetime, waited: int) -> None:
        """Nobody free: the caller waits in the queue and hangs up after ``waited`` s."""
        assert self.ring(sid, f"+1415555{sid[-4:]}", at).find("Enqueue") is not None
        self.post("/webhooks/twilio/queue", {"CallSid": sid, "QueueResult": "hangup", "QueueTime": str(waited)})
        self.status(sid, "completed", at + timedelta(seconds=waited), CallDuration=waited)


def rfc2822(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def set_state(console, agent_id: str, state: str) -> None:
    answer = console.api(agent_id, "agent").put(f"/api/callrouting/agents/{agent_id}/state", json={"state": state})
    assert answer.status_code == 200, answer.text


def seed_today(console) -> datetime:
    """Today's work through the real services: five calls (three answered by two agents and
    wrapped up with reasons, one abandoned, one short abandon), four tickets, four surveys (one
    low, which opens a fifth ticket)."""
    twilio = Twilio(console.url)
    for agent_id, name in (("dash-ann", "Ann Dash"), ("dash-bob", "Bob Dash")):
        console.user(agent_id, "agent", name=name)  # also registered in call routing, by name
        set_state(console, agent_id, "available")
    now = datetime.now(UTC).replace(microsecond=0)
    start = max(now - timedelta(minutes=30), now.replace(hour=0, minute=0, second=0))
    reasons = iter(("complaint", "refund", "quality_issue"))
    for n, (wait, talk) in enumerate(((6, 120), (12, 300), (30, 90))):
        sid = f"CAdash{n:04d}"
        agent = twilio.answered_call(sid, start + timedelta(minutes=3 * n), wait, talk)
        wrapped = console.api(agent, "agent").post(
            f"/api/callrouting/calls/{sid}/wrap-up", json={"reason": next(reasons)}
        )
        assert wrapped.status_code == 200, wrapped.text
    for agent_id in ("dash-ann", "dash-bob"):
        set_state(console, agent_id, "on_break")
    twilio.abandoned_call("CAdash0100", start + timedelta(minutes=12), waited=40)
    twilio.abandoned_call("CAdash0101", start + timedelta(minutes=13), waited=2)  # within t_s: not offered

    agent = console.api("dash-ann", "agent")
    for category in ("replacement", "refund", "refund", "complaint"):
        ticket = agent.post("/api/tickets/tickets", json={"subject": f"A {category}", "category": category})
        assert ticket.status_code == 201, ticket.text
    for recommend in (10, 9, 7, 4):
        answers = ANSWERS | {"recommend_product": recommend}
        survey = {"customer_id": f"00000000-0000-4000-8000-00000000000{recommend % 10}", "agent_id": "dash-ann"}
        answer = agent.post("/api/surveys/responses", json=survey | {"answers": answers})
        assert answer.status_code == 201, answer.text

    def recovery_opened():  # the closed loop: the score of 4 opens a service-recovery ticket, by event
        found = agent.get("/api/tickets/tickets?category=service_recovery").json()
        return found["total"] == 1

    wait_for(recovery_opened, what="the service-recovery ticket of the low score")
    return start


def percent(share: float) -> str:
    return f"{share * 100:.1f}%"  # Babel's English pattern


def png_colours(png: bytes, enough: int = 16) -> int:
    """How many distinct colours a PNG screenshot holds (up to ``enough``): 1 for a blank canvas."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, data, header = 8, b"", None
    while offset < len(png):
        (length,), kind = struct.unpack(">I", png[offset : offset + 4]), png[offset + 4 : offset + 8]
        chunk = png[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            data += chunk
        offset += 12 + length
    width, height, depth, colour_type = header[:4]
    assert depth == 8 and colour_type in (2, 6), header
    size = 4 if colour_type == 6 else 3
    raw, stride, previous, colours = zlib.decompress(data), width * size, bytearray(width * size), set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):  # undo the row's filter (PNG spec, section 9)
            left = line[i - size] if i >= size else 0
            up, corner = previous[i], previous[i - size] if i >= size else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        colours.update(bytes(line[i : i + size]) for i in range(0, stride, size))
        if len(colours) >= enough:
            return len(colours)
        previous = line
    return len(colours)


def test_a_supervisors_dashboard_shows_the_days_figures_of_the_api_draws_them_and_exports_them(console, tmp_path):
    page = console.signed_in("dash-sup", "supervisor")  # first: the console's password, not the API fixture's
    start = seed_today(console)
    day = start.date()
    report = console.api("dash-sup", "supervisor").get(f"/api/reports/daily?date={day}&min_n=1").json()
    totals = report["calls"]["totals"]
    # The day as seeded, so that the comparisons below compare real figures.
    assert (totals["entered"], totals["offered"], totals["answered"], totals["abandoned"]) == (5, 4, 3, 1)
    assert report["partial"] is False and report["calls"]["top_agent"] in ("dash-ann", "dash-bob")

    page.goto(f"/dashboard?date={day}&min_n=1")
    tile = lambda key: page.locator(f"[data-kpi='{key}'] .value")  # noqa: E731
    for key in ("offered", "answered", "abandoned"):
        expect(tile(key)).to_have_text(str(totals[key]))
    expect(tile("abandon_rate")).to_have_text(percent(totals["abandon_rate"]))
    expect(tile("asa_seconds")).to_have_text(f"{totals['asa_seconds']:.1f} s")  # (6 + 12 + 30) / 3 = 16.0 s
    expect(tile("service_level")).to_have_text(percent(totals["service_level"]))

    top = report["calls"]["agents"][0]
    expect(page.locator("#top-agent")).to_have_attribute("data-top-agent", report["calls"]["top_agent"])
    first_row = page.locator("#agents-table tbody tr").first
    expect(first_row.get_by_role("rowheader")).to_contain_text(
        {"dash-ann": "Ann Dash", "dash-bob": "Bob Dash"}[top["agent_id"]]
    )
    expect(first_row.locator("td").nth(1)).to_have_text(str(top["calls"]))
    for reason, calls in report["calls"]["reasons"].items():
        expect(page.locator(f"#reasons-table tr[data-reason='{reason}'] td")).to_have_text(str(calls))
    assert report["calls"]["reasons"]["refund"] == 1 and report["calls"]["reasons"]["complaint"] == 1
    for category, opened in report["tickets"]["opened"]["by_category"].items():
        expect(page.locator(f"#categories-table tr[data-category='{category}'] td")).to_have_text(str(opened))
    assert (report["tickets"]["replacements"], report["tickets"]["refunds"]) == (1, 2)
    expect(page.locator("[data-kpi='tickets-refunds'] .value")).to_have_text("2")

    nps = {q["key"]: q for q in report["surveys"]["questions"]}["recommend_product"]["nps"]
    row = page.locator("#questions-table tr[data-question='recommend_product']")
    expect(row.locator("[data-figure='nps']")).to_have_text(f"{nps['value']:.1f}")  # (2 - 1) / 4 -> 25.0
    expect(row.locator("[data-figure='nps-interval']")).to_have_text(
        f"{nps['centre']:.1f} ± {nps['moe']:.1f} = [{nps['low']:.1f}, {nps['high']:.1f}]"
    )
    expect(page.get_by_role("columnheader", name="1\N{EN DASH}10 NPS")).to_be_visible()

    for chart in ("chart-hours", "chart-reasons", "chart-tickets", "chart-trend-0", "chart-trend-1"):
        canvas = page.locator(f"#{chart}")
        expect(canvas).to_have_attribute("data-chart", "drawn")
        assert int(canvas.get_attribute("data-points")) > 0, chart
        assert png_colours(canvas.screenshot()) > 2, f"{chart} is blank"
    console.screenshot(page, "dashboard")
    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet: the tiles and tables reflow
    expect(page.locator("#chart-hours")).to_be_visible()
    console.screenshot(page, "dashboard-tablet")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The CSV of the same day, from the page's link.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == f"daily-report-{day}.csv"
    saved = tmp_path / "report.csv"
    download.value.save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0] == "section,item,measure,value" and f"calls,day,offered,{totals['offered']}" in lines

    # Another day, through the date picker: nothing happened the day before.
    before = day - timedelta(days=1)
    page.get_by_label("Date", exact=True).fill(before.isoformat())
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert f"date={before}" in page.url
    expect(page.get_by_role("heading", level=1)).to_contain_text(before.strftime("%B %-d, %Y"))  # Babel, English
    expect(tile("offered")).to_have_text("0")
    with page.expect_navigation():
        page.get_by_role("link", name="Next day →").click()
    expect(tile("offered")).to_have_text(str(totals["offered"]))
