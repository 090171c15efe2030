"""The phone simulator end to end through the gateway: a few calls through the signed Twilio
webhooks and the agents' side through the API, over HTTP to a real gateway in front of the real
services, then the daily report of the simulated day accounts for each."""

import io

import pytest

from services.callrouting import simulate
from tests.gateway.conftest import ServiceServer, stack  # noqa: F401 - the real services and the gateway
from tests.support.auth import signed_client

TOKEN = "simulator-test-twilio-token"


@pytest.fixture(autouse=True)
def phone_env(monkeypatch):
    # Set before the services start (autouse fixtures come first): call routing checks Twilio's signature
    # with this token, behind one proxy (the gateway).
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("PROXY_HOPS", "1")


@pytest.fixture
def served(stack):  # noqa: F811 - the fixture imported above
    """The gateway over real HTTP (the simulator talks to it as to ``make run``'s), and an admin's token."""
    server = ServiceServer(stack.gateway)
    yield stack, server.url, stack.user("sim-admin", "admin")
    server.stop()


def test_the_simulator_plays_calls_through_the_gateway_into_the_report(served):
    services, base_url, token = served
    out = io.StringIO()
    client = signed_client(services.servers["callrouting"].app)
    # A person signed in and available, serving every queue: the simulator's calls are not theirs.
    assert client.post("/agents", json={"id": "human-1", "name": "Human One"}).status_code in (200, 201)
    assert client.put("/agents/human-1/state", json={"state": "available"}).status_code == 200
    tickets = signed_client(services.servers["tickets"].app)
    known = tickets.post("/customers", json={"name": "Kim Known", "phones": ["+14155550123"]}).get_json()
    argv = ["--base-url", base_url, "--token", token, "--calls", "12", "--agents", "2", "--speed", "20000"]
    argv += ["--date", "2026-11-20", "--seed", "5", "--no-answer-rate", "0.2"]
    assert simulate.main(argv, out=out) == 0
    report = client.get("/reports/daily?date=2026-11-20").get_json()
    totals = report["totals"]
    assert totals["entered"] == 12
    assert totals["answered"] + totals["abandoned"] + totals["short_abandoned"] + totals["timed_out"] == 12
    assert totals["answered"] > 0 and totals["handled"] == totals["answered"]  # every answered call wrapped up
    assert sum(report["reasons"].values()) == totals["handled"]
    assert {agent["agent_id"] for agent in report["agents"]} <= {"sim-agent-1", "sim-agent-2"}
    live = client.get("/live").get_json()
    assert live["calls_waiting"] == 0 and live["agents_by_state"]["available"] == 3  # 2 simulated, 1 person
    assert "done:" in out.getvalue() and base_url in out.getvalue()
    human = client.get("/agents/human-1/routing").get_json()
    assert (human["state"], human["calls_today"], human["missed_offers"]) == ("available", 0, 0)
    calls = client.get("/calls?limit=50").get_json()["items"]
    assert any(call.get("customer_id") == known["id"] for call in calls), "no call from the customer on file"
    assert all(call["queue"] == "simulation" for call in calls)


def test_the_simulator_never_plays_into_the_future():
    import random
    from datetime import UTC, datetime

    now = datetime(2026, 12, 3, 11, 30, tzinfo=UTC)
    times = simulate.arrival_times(now.date(), 200, random.Random(3), until=now)
    assert times and max(times) <= now and len(times) < 200
    assert len(simulate.arrival_times(now.date(), 200, random.Random(3))) == 200  # another day: whole


def test_the_simulator_finds_a_gateway_on_another_port():
    assert simulate.gateway_url({"GATEWAY_PORT": "8123"}) == "http://127.0.0.1:8123"
    assert simulate.gateway_url({"GATEWAY_PORT": "8123", "GATEWAY_URL": "http://gw:9000"}) == "http://gw:9000"
    assert simulate.gateway_url({}) == "http://127.0.0.1:8000"


def test_the_simulator_refuses_to_run_without_an_api_token(monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.delenv("CALLCENTER_TOKEN", raising=False)
    assert simulate.main(["--calls", "1"], out=io.StringIO()) == 2


def test_the_simulator_goes_to_the_gateway_by_default(monkeypatch):
    monkeypatch.delenv("GATEWAY_URL", raising=False)
    monkeypatch.delenv("GATEWAY_PORT", raising=False)
    monkeypatch.setenv("CALLCENTER_TOKEN", "from-the-environment")
    args = simulate.parse_args([])
    assert (args.base_url, args.token) == ("http://127.0.0.1:8000", "from-the-environment")


def test_the_simulator_refuses_to_run_without_the_twilio_token(monkeypatch, tmp_path):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    assert simulate.main(["--calls", "1"], out=io.StringIO()) == 2


def test_the_simulator_falls_back_to_the_token_make_run_generated(monkeypatch, tmp_path):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    (tmp_path / "dev-secrets.env").write_text("PHONE_WEBHOOK_SECRET=abc\nTWILIO_AUTH_TOKEN=generated\n")
    assert simulate.dev_secret("TWILIO_AUTH_TOKEN") == "generated"
