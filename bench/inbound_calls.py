"""Inbound calls scenario: the incoming-call webhook and the daily call report.

The callrouting service runs under gunicorn (``deploy/gunicorn.conf.py``) on a database of its
own, with 200 available agents and 100,000 replicated customers (each with one number), and
``PUBLIC_BASE_URL`` set so the signatures do not depend on the port.

- ``POST /webhooks/twilio/voice`` under wrk (--latency -t2 -c32 -d10s after a 2 s warm-up):
  Twilio's form post for a new call, each with its own CallSid and so its own
  ``X-Twilio-Signature``, computed beforehand with twilio's ``RequestValidator`` (wrk cycles
  through a file of signed requests, each thread its own half). Every request checks the
  signature, identifies the caller, decides the route and answers TwiML: the first 200 calls
  reserve an agent (``<Dial>``), the rest queue (``<Enqueue>``, after counting the line),
  as they would when every agent is busy. Ratio to the bare endpoint measured in the same run:
  target >= 0.40x, p99 < 50 ms.
- ``GET /reports/daily?date=`` over 1,000,000 call records spread over 90 days (about 11,000
  a day, bulk-loaded with direct SQL into the service's SQLite file), a random day each
  request, one connection (a manager asking; wrk -t1 -c1 -d10s): p99 < 200 ms.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from twilio.request_validator import RequestValidator

from bench import httpload
from bench.procs import BenchError, say, wrk_header_args
from bench.report import Row
from shared.db import Database, migrate

TOKEN = "bench-twilio-token"
PUBLIC = "http://bench.example"
AGENTS = 200
CUSTOMERS = 100_000
CALLS = 1_000_000
DAYS = 90
SIGNED_REQUESTS = 80_000
RATIO_TARGET, WEBHOOK_P99_MS, REPORT_P99_MS = 0.40, 50, 200
REASONS = ("complaint", "quality_issue", "replacement", "refund", "question", "technical_support", "registration")
FIRST_DAY = datetime(2026, 6, 1, tzinfo=UTC)


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")  # how UtcDateTime stores a time on SQLite


def customer_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def load(database_file: Path) -> dict:
    """Agents, customers and 1,000,000 finished calls, with direct batched inserts."""
    started = time.perf_counter()
    rng = random.Random(11)
    now = _text(datetime.now(UTC))
    connection = sqlite3.connect(database_file, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO agents (agent_id, name, skills, state, state_changed_at, created_at)"
        " VALUES (?, ?, '[]', 'available', ?, ?)",
        ((f"agent-{n:03d}", f"Agent {n}", now, now) for n in range(AGENTS)),
    )
    connection.executemany(
        "INSERT INTO customer_replicas (customer_id, name, phone, time_zone, do_not_call, marketing_consent,"
        " updated_at) VALUES (?, ?, ?, 'America/Los_Angeles', 0, 0, ?)",
        ((customer_id(n), f"Customer {n}", f"+1415{2000000 + n}", now) for n in range(CUSTOMERS)),
    )
    connection.executemany(
        "INSERT INTO customer_replica_phones (phone, customer_id) VALUES (?, ?)",
        ((f"+1415{2000000 + n}", customer_id(n)) for n in range(CUSTOMERS)),
    )
    connection.execute("COMMIT")
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='calls' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        connection.execute(f"DROP INDEX {name}")
    columns = (
        "call_id, source, from_number, to_number, customer_id, queue, state, offered_to, agent_id, enqueued_at,"
        " received_at, answered_at, ended_at, wrap_up_started_at, wrapped_up_at, result, wait_seconds,"
        " talk_seconds, wrap_up_seconds, reason, notes, ticket_id, last_sequence, offer_round, day, hour"
    )
    insert = f"INSERT INTO calls ({columns}) VALUES ({', '.join('?' * 26)})"
    per_day = CALLS // DAYS
    batch = []
    for n in range(CALLS):
        day = FIRST_DAY + timedelta(days=min(n // per_day, DAYS - 1))
        entered = day + timedelta(hours=8, seconds=rng.uniform(0, 10 * 3600))
        wait = rng.expovariate(1 / 25)
        roll = rng.random()
        answered = roll < 0.88
        result = "answered" if answered else ("short_abandon" if wait < 5 else "abandoned")
        talk = rng.uniform(60, 600) if answered else None
        wrap = rng.uniform(5, 60) if answered else None
        answered_at = entered + timedelta(seconds=wait) if answered else None
        ended_at = entered + timedelta(seconds=wait + (talk or 0))
        n_customer = rng.randrange(CUSTOMERS)
        batch.append(
            (
                f"CA{n:032x}",
                "twilio",
                f"+1415{2000000 + n_customer}",
                "+14155550199",
                customer_id(n_customer),
                "default",
                "completed" if answered else "abandoned",
                "[]",
                f"agent-{rng.randrange(AGENTS):03d}" if answered else None,
                _text(entered),
                _text(entered),
                _text(answered_at) if answered_at else None,
                _text(ended_at),
                _text(ended_at) if answered else None,
                _text(ended_at + timedelta(seconds=wrap)) if answered else None,
                result,
                wait,
                talk,
                wrap,
                rng.choice(REASONS) if answered else None,
                None,
                None,
                3,
                1 if answered else 0,
                entered.date().isoformat(),
                entered.hour,
            )
        )
        if len(batch) == 50_000:
            connection.execute("BEGIN")
            connection.executemany(insert, batch)
            connection.execute("COMMIT")
            batch.clear()
    if batch:
        connection.execute("BEGIN")
        connection.executemany(insert, batch)
        connection.execute("COMMIT")
    loaded = time.perf_counter() - started
    for _, sql in indexes:
        connection.execute(sql)
    connection.execute("ANALYZE")
    connection.close()
    return {"load_s": loaded, "total_s": time.perf_counter() - started}


def write_signed_requests(directory: Path, prefix: str, count: int) -> Path:
    """A wrk script cycling through ``count`` signed incoming-call posts (thread n takes every nth)."""
    validator = RequestValidator(TOKEN)
    rng = random.Random(prefix)
    entries = []
    for n in range(count):
        params = {
            "AccountSid": "ACbench",
            "CallSid": f"{prefix}{n:030d}",
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": f"+1415{2000000 + rng.randrange(CUSTOMERS * 2)}",  # half of them known customers
            "To": "+14155550199",
        }
        signature = validator.compute_signature(f"{PUBLIC}/webhooks/twilio/voice", params)
        body = "&".join(f"{key}={value.replace('+', '%2B')}" for key, value in params.items())
        entries.append(f"{signature}\t{body}")
    data = directory / f"{prefix}-requests.txt"
    data.write_text("\n".join(entries) + "\n")
    script = directory / f"{prefix}-voice.lua"
    script.write_text(
        f"""-- wrk: Twilio's incoming-call webhook, each request a new call with its own signature.
local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
  thread:set("stride", 2)
end
local data, i
function init(args)
  data = {{}}
  for line in io.lines("{data}") do
    local tab = line:find("\t", 1, true)
    data[#data + 1] = {{line:sub(1, tab - 1), line:sub(tab + 1)}}
  end
  i = offset + 1
end
function request()
  local item = data[i]
  i = i + stride
  if i > #data then i = offset + 1 end
  return wrk.format("POST", "/webhooks/twilio/voice",
    {{["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = item[1]}}, item[2])
end
"""
    )
    return script


def write_report_script(directory: Path) -> Path:
    days = [(FIRST_DAY + timedelta(days=n)).date().isoformat() for n in range(DAYS)]
    script = directory / "daily-report.lua"
    script.write_text(
        "-- wrk: the daily report of a random day\n"
        f"local days = {{{', '.join(json.dumps(day) for day in days)}}}\n"
        "function request()\n"
        '  return wrk.format("GET", "/reports/daily?date=" .. days[math.random(#days)])\n'
        "end\n"
    )
    return script


def single_client(url: str, script: Path, duration_s: int = 10) -> httpload.WrkResult:
    argv = ["wrk", "--latency", "-t1", "-c1", *wrk_header_args(), f"-d{duration_s}s", "-s", str(script), url]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    return httpload.parse_wrk(result.stdout)


def run(processes, env: dict[str, str], var_dir: Path) -> dict:
    bench_var = var_dir / "inbound-bench"
    bench_var.mkdir(parents=True, exist_ok=True)
    metrics_dir = var_dir / "metrics" / "inbound-bench"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    database_file = bench_var / "callrouting.db"
    database = Database(f"sqlite:///{database_file}")
    from services.callrouting.models import MIGRATIONS

    migrate(database, MIGRATIONS)
    database.dispose()
    say(f"inbound calls: loading {AGENTS} agents, {CUSTOMERS:,} customers, {CALLS:,} calls over {DAYS} days")
    timing = load(database_file)
    say(f"inbound calls: loaded in {timing['load_s']:.1f} s, indexed after {timing['total_s']:.1f} s")
    warm_script = write_signed_requests(bench_var, "CAwarm", 6_000)
    voice_script = write_signed_requests(bench_var, "CAbench", SIGNED_REQUESTS)
    report_script = write_report_script(bench_var)

    bare = httpload.measure_bare(processes, env, "bare GET / (inbound calls)")
    server_env = dict(
        env,
        SERVICE="callrouting",
        VAR_DIR=str(bench_var),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        TWILIO_AUTH_TOKEN=TOKEN,
        PUBLIC_BASE_URL=PUBLIC,
        DEFAULT_PHONE_REGION="US",
        LOG_LEVEL="WARNING",
    )
    server, url = httpload.start_server(
        processes, "inbound-bench", "services.callrouting.app:create_app()", server_env, "/healthz"
    )
    try:
        single_client(f"{url}/reports/daily", report_script, duration_s=2)  # warm the page cache
        report = single_client(f"{url}/reports/daily", report_script)
        say(f"inbound GET /reports/daily: p50 {report.p50_ms:.1f} ms, p99 {report.p99_ms:.1f} ms")
        httpload.wrk(f"{url}/webhooks/twilio/voice", warm_script, duration_s=httpload.WARMUP_S)
        voice = httpload.wrk(f"{url}/webhooks/twilio/voice", voice_script)
        say(f"inbound POST /webhooks/twilio/voice: {voice.requests_per_s:,.0f} req/s, p99 {voice.p99_ms:.1f} ms")
        if voice.non_2xx > 0.01 * voice.requests:
            raise BenchError(f"voice webhook: {voice.non_2xx} of {voice.requests} responses were not 2xx")
        if voice.requests > SIGNED_REQUESTS:
            say("inbound calls: wrk went round the signed requests; repeated calls take the shorter path")
        with sqlite3.connect(database_file) as connection:
            dialled = connection.execute("SELECT count(*) FROM calls WHERE state = 'ringing'").fetchone()[0]
            queued = connection.execute("SELECT count(*) FROM calls WHERE state = 'queued'").fetchone()[0]
    finally:
        processes.stop(server)

    ratio = voice.requests_per_s / bare.requests_per_s
    webhook = "inbound POST /webhooks/twilio/voice (signed, routed, TwiML)"
    daily = f"inbound GET /reports/daily ({CALLS // 1_000_000}M calls, {DAYS} days, 1 client)"
    rows = [
        Row(
            webhook,
            "requests/s",
            voice.requests_per_s,
            "req/s",
            bare.requests_per_s,
            "bare",
            f">= {RATIO_TARGET:.2f}x bare",
            ratio >= RATIO_TARGET,
        ),
        Row(webhook, "latency p50", voice.p50_ms, "ms", bare.p50_ms, "bare"),
        Row(
            webhook,
            "latency p99",
            voice.p99_ms,
            "ms",
            bare.p99_ms,
            "bare",
            f"< {WEBHOOK_P99_MS}",
            voice.p99_ms < WEBHOOK_P99_MS,
        ),
        Row(webhook, "calls dialled / queued", dialled, "rows", target=f"queued: {queued:,}"),
        Row(daily, "latency p50", report.p50_ms, "ms"),
        Row(daily, "latency p99", report.p99_ms, "ms", target=f"< {REPORT_P99_MS}", met=report.p99_ms < REPORT_P99_MS),
        Row(daily, "bulk load + index", timing["total_s"], "s"),
    ]
    return {
        "rows": rows,
        "voice": voice,
        "report": report,
        "bare": bare,
        "dialled": dialled,
        "queued": queued,
        "load": timing,
    }
