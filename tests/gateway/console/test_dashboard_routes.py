"""The dashboard's routes through the Flask test client, in front of the real services: the page
shows the figures of ``/api/reports/daily`` for the same day, names a stopped service's part,
refuses a bad query with an alert naming the field, and is for supervisors only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from tests.gateway.test_reports import day_of_work, phone_env  # noqa: F401 - fixtures: a day of real work

VOID_TAGS = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """Every element of a page with its attributes and its text (its children's included)."""

    def __init__(self, markup: str):
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": []}
        self.elements.append(element)
        if tag not in VOID_TAGS:
            self._open.append(element)

    def handle_endtag(self, tag):
        while self._open and self._open.pop()["tag"] != tag:
            pass

    def handle_data(self, data):
        for element in self._open:
            element["text"].append(data)

    def all(self, attribute: str, value: str | None = None) -> list[dict]:
        return [
            element
            for element in self.elements
            if attribute in element["attrs"] and (value is None or element["attrs"][attribute] == value)
        ]

    def one(self, attribute: str, value: str | None = None) -> dict:
        found = self.all(attribute, value)
        assert len(found) == 1, f"{len(found)} elements with {attribute}={value!r}"
        return found[0]

    def text(self, attribute: str, value: str | None = None) -> str:
        return " ".join(" ".join(self.one(attribute, value)["text"]).split())


def page_of(answer) -> Page:
    assert answer.headers["Content-Type"].startswith("text/html"), answer.headers["Content-Type"]
    return Page(answer.get_data(as_text=True))


def test_the_dashboard_shows_the_figures_of_the_daily_report_api_for_the_same_day(day_of_work):  # noqa: F811
    stack, day, supervisor = day_of_work
    report = stack.client.get(f"/api/reports/daily?date={day}&min_n=1", headers=supervisor).get_json()
    answer = stack.client.get(f"/dashboard?date={day}&min_n=1", headers=supervisor)
    assert answer.status_code == 200
    page = page_of(answer)

    totals = report["calls"]["totals"]
    assert (totals["offered"], totals["answered"], totals["abandoned"]) == (2, 1, 1)  # the seeded day
    for key in ("offered", "answered", "abandoned"):
        assert page.one("data-kpi", key)["attrs"]["data-value"] == str(totals[key])
        assert page.text("data-kpi", key).split()[1] == str(totals[key])
    assert float(page.one("data-kpi", "abandon_rate")["attrs"]["data-value"]) == totals["abandon_rate"] == 0.5
    assert "50.0%" in page.text("data-kpi", "abandon_rate")  # Babel's English percent
    assert float(page.one("data-kpi", "asa_seconds")["attrs"]["data-value"]) == totals["asa_seconds"]
    assert f"{totals['asa_seconds']:.1f} s" in page.text("data-kpi", "asa_seconds")
    assert float(page.one("data-kpi", "service_level")["attrs"]["data-value"]) == totals["service_level"]
    assert float(page.one("data-kpi", "aht_seconds")["attrs"]["data-value"]) == totals["aht_seconds"]

    # Ann (registered by that name) took the most calls; the reasons and ticket categories as reported.
    assert page.one("id", "top-agent")["attrs"]["data-top-agent"] == report["calls"]["top_agent"] == "ann"
    assert page.text("data-agent", "ann").startswith("1 Ann (ann) most calls 1")
    assert page.text("data-reason", "refund") == f"Refund {report['calls']['reasons']['refund']}" == "Refund 1"
    categories = report["tickets"]["opened"]["by_category"]
    assert page.text("data-category", "replacement") == f"Replacement {categories['replacement']}"
    assert page.one("data-kpi", "tickets-refunds")["attrs"]["data-value"] == str(report["tickets"]["refunds"])

    nps = {q["key"]: q for q in report["surveys"]["questions"]}["recommend_product"]["nps"]
    assert [float(e["attrs"]["data-value"]) for e in page.all("data-figure", "nps")] == [
        {q["key"]: q for q in report["surveys"]["questions"]}[key]["nps"]["value"]
        for key in ("recommend_product", "recommend_store")
    ]
    interval = page.all("data-figure", "nps-interval")[0]
    assert float(interval["attrs"]["data-moe"]) == nps["moe"]
    assert f"{nps['centre']:.1f} ± {nps['moe']:.1f} = [{nps['low']:.1f}, {nps['high']:.1f}]" in "".join(
        interval["text"]
    )
    assert "1\N{EN DASH}10 NPS" in answer.get_data(as_text=True)
    assert report["partial"] is False and not page.all("id", "report-missing")


def test_with_the_surveys_service_stopped_the_page_names_the_missing_part_and_shows_the_rest(day_of_work):  # noqa: F811
    stack, day, supervisor = day_of_work
    stack.servers["surveys"].stop()
    answer = stack.client.get(f"/dashboard?date={day}", headers=supervisor)
    assert answer.status_code == 200
    page = page_of(answer)
    assert "This report is partial" in page.text("id", "report-missing")
    assert page.text("data-missing", "surveys") == "Surveys: the surveys service did not answer (unreachable)."
    assert "unreachable" in page.text("data-missing-part", "surveys")
    assert page.one("data-kpi", "answered")["attrs"]["data-value"] == "1"  # the other parts are there
    assert page.one("data-kpi", "tickets-refunds")["attrs"]["data-value"] == "1"
    assert not page.all("id", "chart-trend")


def test_a_bad_date_or_minimum_is_a_422_alert_naming_the_field(stack):
    supervisor = stack.bearer("sue", "supervisor")
    for query, field in (
        ("date=20-11-2026", "date"),
        ("date=2026-02-30", "date"),
        ("date=20261120", "date"),
        ("date=0001-01-01", "date"),
        ("date=9999-12-31", "date"),
        ("date=2026-11-20&min_n=0", "min_n"),
        ("date=2026-11-20&min_n=ten", "min_n"),
    ):
        answer = stack.client.get(f"/dashboard?{query}", headers=supervisor)
        assert answer.status_code == 422, query
        page = page_of(answer)
        assert page.one("data-status", "422")
        assert [e for e in page.elements if e["tag"] == "code" and "".join(e["text"]) == field], query
    htmx = stack.client.get("/dashboard?date=yesterday", headers={**supervisor, "HX-Request": "true"})
    assert htmx.status_code == 422 and htmx.headers["HX-Retarget"] == "#flash"


def test_an_empty_day_shows_dashes_and_the_day_links_and_csv_export_for_that_day(stack):
    supervisor = stack.bearer("sue", "supervisor")
    past = stack.client.get("/dashboard?date=2026-11-20", headers=supervisor)
    assert past.status_code == 200
    page = page_of(past)
    assert page.one("data-kpi", "offered")["attrs"]["data-value"] == "0"
    assert page.text("data-kpi", "abandon_rate").startswith("Abandon rate \N{EN DASH}")  # nothing to divide by
    assert page.one("rel", "prev")["attrs"]["href"] == "/dashboard?date=2026-11-19"
    assert page.one("rel", "next")["attrs"]["href"] == "/dashboard?date=2026-11-21"
    csv_link = [e for e in page.elements if e["tag"] == "a" and "download" in e["attrs"]]
    assert [e["attrs"]["href"] for e in csv_link] == ["/api/reports/daily?date=2026-11-20&format=csv"]
    assert page.one("id", "dashboard-date")["attrs"]["value"] == "2026-11-20"

    today = datetime.now(UTC).date()
    current = page_of(stack.client.get("/dashboard", headers=supervisor))
    assert current.one("id", "dashboard-date")["attrs"]["value"] == today.isoformat()  # UTC today by default
    assert current.one("rel", "prev")["attrs"]["href"] == f"/dashboard?date={today - timedelta(days=1)}"
    assert not current.all("rel", "next")  # no day after today


def test_the_dashboard_and_the_wall_are_for_supervisors_not_agents(stack):
    agent = stack.bearer("agent-7", "agent")
    for path in ("/dashboard", "/dashboard?date=2026-11-20", "/wall", "/wall/board"):
        answer = stack.client.get(path, headers=agent)
        assert answer.status_code == 403, path
        assert page_of(answer).one("data-status", "403")
    assert stack.client.get("/dashboard").status_code == 303  # no session: to the sign-in form


def test_in_a_center_east_of_utc_the_dashboard_says_where_its_utc_day_starts_and_ends(stack):
    from services.gateway.models import CenterSetting

    supervisor = stack.bearer("sue", "supervisor")
    utc = page_of(stack.client.get("/dashboard?date=2026-12-03", headers=supervisor))
    assert not utc.all("class", "muted day-span")  # a center on UTC: nothing to explain
    with stack.gateway_database.sessions() as session:
        session.merge(CenterSetting(key="time_zone", value="Asia/Manila"))
        session.commit()
    manila = page_of(stack.client.get("/dashboard?date=2026-12-03", headers=supervisor))
    span = " ".join(manila.text("class", "muted day-span").split())
    # Babel's short English times, "8:00 AM" (its narrow space is whitespace to split())
    expected = "A UTC day: from 12/3/26, 8:00 AM to 12/4/26, 8:00 AM in Asia/Manila; hours are shown in Asia/Manila."
    assert span == expected
