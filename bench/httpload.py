"""HTTP scenarios: wrk against a bare Flask endpoint and against the tickets service.

Both run under gunicorn with the same ``deploy/gunicorn.conf.py``, so the ratio of a
service endpoint to the bare one is what the service's own code costs (request context,
JSON logs, metrics, validation, the database) on top of Flask + gunicorn.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import profile
from bench.procs import VENV_BIN, BenchError, Processes, free_port, say, wait_for_http, wrk_header_args

WRK_ARGS = ["--latency", "-t2", "-c32"]
DURATION_S = 10
WARMUP_S = 2
GUNICORN_CONF = "deploy/gunicorn.conf.py"
POST_CUSTOMER_LUA = Path(__file__).parent / "post_customer.lua"

_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict:
        return asdict(self)


def _seconds(text: str) -> float:
    """'812.00us', '1.23ms', '2.01s', '1.00m' -> seconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    def find(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.MULTILINE)
        if not match:
            raise BenchError(f"cannot read wrk's output (no match for {pattern!r}):\n{output}")
        return match

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return WrkResult(
        requests_per_s=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_seconds(find(r"^\s+50(?:\.0+)?%\s+(\S+)").group(1)) * 1000,
        p99_ms=_seconds(find(r"^\s+99(?:\.0+)?%\s+(\S+)").group(1)) * 1000,
        requests=int(find(r"^\s+(\d+) requests in ").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def wrk(url: str, script: Path | None = None, duration_s: int = DURATION_S) -> WrkResult:
    argv = ["wrk", *WRK_ARGS, *wrk_header_args(), f"-d{duration_s}s", *(["-s", str(script)] if script else []), url]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    return parse_wrk(result.stdout)


def measure(name: str, url: str, script: Path | None = None) -> WrkResult:
    wrk(url, script, duration_s=WARMUP_S)  # every gunicorn worker loaded and warm
    with profile.sampled(name, DURATION_S) as sampling:
        result = wrk(url, script)
        sampling.requests = result.requests
    say(f"{name}: {result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms")
    if result.non_2xx > 0.01 * result.requests:
        raise BenchError(f"{name}: {result.non_2xx} of {result.requests} responses were not 2xx")
    return result


def start_server(processes: Processes, name: str, app: str, env: dict[str, str], health_path: str) -> tuple:
    """gunicorn with our config; the port goes in BIND, or in <SERVICE>_PORT for a service."""
    port = free_port()
    if env["SERVICE"] == "bare":
        env = dict(env, BIND=f"127.0.0.1:{port}")
    else:
        env = dict(env, **{f"{env['SERVICE'].upper()}_PORT": str(port)})
    server = processes.start(name, [str(VENV_BIN / "gunicorn"), "-c", GUNICORN_CONF, app], env)
    wait_for_http(processes, name, server, f"http://127.0.0.1:{port}{health_path}")
    time.sleep(1)  # let the other gunicorn worker finish loading too
    return server, f"http://127.0.0.1:{port}"


def run(processes: Processes, env: dict[str, str], var_dir: Path) -> dict[str, WrkResult]:
    """bare GET /, tickets GET /healthz and POST /customers, bare GET / again.

    The bare endpoint is measured before and after the service, and the better of the two
    runs is the ceiling: on a noisy machine that keeps a slow moment from flattering the
    service.
    """
    bare, bare_url = start_server(processes, "http-bare", "bench.bare_app:app", dict(env, SERVICE="bare"), "/")
    # The tickets service gets databases of its own (VAR_DIR=<tmp>/http): the customers
    # POSTed here announce events nobody relays, and must not reach the event scenarios.
    metrics_dir = var_dir / "metrics" / "http-tickets"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    tickets_env = dict(env, SERVICE="tickets", VAR_DIR=str(var_dir / "http"), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    try:
        before = measure("bare GET /", f"{bare_url}/")
        tickets, tickets_url = start_server(
            processes, "http-tickets", "services.tickets.app:create_app()", tickets_env, "/healthz"
        )
        try:
            healthz = measure("tickets GET /healthz", f"{tickets_url}/healthz")
            post = measure("tickets POST /customers", f"{tickets_url}/customers", POST_CUSTOMER_LUA)
        finally:
            processes.stop(tickets)
        after = measure("bare GET / (again)", f"{bare_url}/")
    finally:
        processes.stop(bare)
    best = max(before, after, key=lambda result: result.requests_per_s)
    return {"bare": best, "bare_runs": [before, after], "healthz": healthz, "post_customers": post}


def measure_bare(processes: Processes, env: dict[str, str], label: str = "bare GET /") -> WrkResult:
    """The HTTP ceiling, measured now: a service scenario calls it in its own run."""
    name = f"bare-{free_port()}"
    bare, bare_url = start_server(processes, name, "bench.bare_app:app", dict(env, SERVICE="bare"), "/")
    try:
        return measure(label, f"{bare_url}/")
    finally:
        processes.stop(bare)
