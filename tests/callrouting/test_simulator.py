"""The phone simulator end to end: a few calls through the signed Twilio webhooks of a real
callrouting server over HTTP, then the daily report of the simulated day accounts for each."""

import io
import threading

import pytest
from werkzeug.serving import make_server

from services.callrouting import simulate
from tests.callrouting.inbound_support import TOKEN, inbound_app
from tests.support.auth import signed_client


@pytest.fixture
def server(settings_factory):
    app, _, _ = inbound_app(settings_factory)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}", signed_client(app)
    http.shutdown()
    thread.join(timeout=10)


def test_the_simulator_plays_calls_through_the_signed_webhooks_into_the_report(server, monkeypatch):
    base_url, client = server
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    out = io.StringIO()
    argv = ["--base-url", base_url, "--calls", "12", "--agents", "2", "--speed", "20000", "--date", "2026-11-20"]
    assert simulate.main([*argv, "--seed", "5", "--no-answer-rate", "0.2"], out=out) == 0
    report = client.get("/reports/daily?date=2026-11-20").get_json()
    totals = report["totals"]
    assert totals["entered"] == 12
    assert totals["answered"] + totals["abandoned"] + totals["short_abandoned"] + totals["timed_out"] == 12
    assert totals["answered"] > 0 and totals["handled"] == totals["answered"]  # every answered call wrapped up
    assert sum(report["reasons"].values()) == totals["handled"]
    assert {agent["agent_id"] for agent in report["agents"]} <= {"sim-agent-1", "sim-agent-2"}
    live = client.get("/live").get_json()
    assert live["calls_waiting"] == 0 and live["agents_by_state"]["available"] == 2
    assert "done:" in out.getvalue()


def test_the_simulator_refuses_to_run_without_the_twilio_token(monkeypatch, tmp_path):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    assert simulate.main(["--calls", "1"], out=io.StringIO()) == 2


def test_the_simulator_falls_back_to_the_token_make_run_generated(monkeypatch, tmp_path):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    (tmp_path / "dev-secrets.env").write_text("PHONE_WEBHOOK_SECRET=abc\nTWILIO_AUTH_TOKEN=generated\n")
    assert simulate.dev_secret("TWILIO_AUTH_TOKEN") == "generated"
