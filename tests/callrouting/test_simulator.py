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
    argv = ["--base-url", base_url, "--token", token, "--calls", "12", "--agents", "2", "--speed", "20000"]
    argv += ["--date", "2026-11-20", "--seed", "5", "--no-answer-rate", "0.2"]
    assert simulate.main(argv, out=out) == 0
    client = signed_client(services.servers["callrouting"].app)
    report = client.get("/reports/daily?date=2026-11-20").get_json()
    totals = report["totals"]
    assert totals["entered"] == 12
    assert totals["answered"] + totals["abandoned"] + totals["short_abandoned"] + totals["timed_out"] == 12
    assert totals["answered"] > 0 and totals["handled"] == totals["answered"]  # every answered call wrapped up
    assert sum(report["reasons"].values()) == totals["handled"]
    assert {agent["agent_id"] for agent in report["agents"]} <= {"sim-agent-1", "sim-agent-2"}
    live = client.get("/live").get_json()
    assert live["calls_waiting"] == 0 and live["agents_by_state"]["available"] == 2
    assert "done:" in out.getvalue() and base_url in out.getvalue()


def test_the_simulator_refuses_to_run_without_an_api_token(monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.delenv("CALLCENTER_TOKEN", raising=False)
    assert simulate.main(["--calls", "1"], out=io.StringIO()) == 2


def test_the_simulator_goes_to_the_gateway_by_default(monkeypatch):
    monkeypatch.delenv("GATEWAY_URL", raising=False)
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
