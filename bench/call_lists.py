"""Call lists scenario: the next-call hand-out over a big list, and scheduling from purchase events.

The callrouting service runs under gunicorn (``deploy/gunicorn.conf.py``, 2 workers by
default) on a SQLite database of its own, bulk-loaded with direct SQL: one campaign callable
around the clock, 100,000 entries due now (their customers spread over 8 time zones), 100,000
replicated customers, and the agents below.

- ``POST /agents/<id>/next-call`` under wrk (--latency -t2 -c32 -d10s after a 2 s warm-up;
  bench/call_lists_next_call.lua): 32 agents asking at once. Each request names an agent who
  holds no lease yet (a fresh id from a registered pool, the warm-up using other ids than the
  measurement), so every answer is a real hand-out: the expired-lease sweep, the calling-window
  filter, the uniform random pick (slices of the shuffle-key index, domain.pick_uniformly) and
  the lease, in one write transaction. No outcome is posted, so the leased entries pile up
  (about 1 in 10 of the pool by the end) as they would if agents were on the phone. Requests/s
  as a ratio to the bare endpoint measured the same way in the same run (target >= 0.30x), p99.
- entries scheduled per second from ``purchase.recorded``: 20,000 purchase events of known
  customers are published into callrouting's work queue (confirmed, before the consumer
  starts), then the real consumer (``python -m services.callrouting.worker consume``) drains
  them: one entry per purchase on the post-purchase campaign after the do-not-call and
  contact-frequency checks. Rate = entries / (last entry's created_at - first's), i.e. the
  consumer at work, its start-up left out.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika

from bench import httpload, pipeline
from bench.procs import BenchError, say, wrk_header_args
from bench.rawbroker import WindowedPublisher
from bench.report import Row
from shared import topology
from shared.db import Database, migrate
from shared.events import Envelope

ENTRIES = 100_000
CUSTOMERS = 100_000
AGENTS_PER_THREAD = 60_000  # per wrk thread and round: far more than 12 s of requests can use
PURCHASES = 20_000
NEXT_CALL_LUA = Path(__file__).parent / "call_lists_next_call.lua"
ZONES = (
    "Europe/Berlin",
    "Europe/London",
    "Europe/Madrid",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Australia/Sydney",
)
CAMPAIGN_ID = "00000000-0000-4000-8000-00000000ca11"
ALWAYS = '{"mon": ["00:00", "24:00"], "tue": ["00:00", "24:00"], "wed": ["00:00", "24:00"], "thu": ["00:00", "24:00"],'
ALWAYS += ' "fri": ["00:00", "24:00"], "sat": ["00:00", "24:00"], "sun": ["00:00", "24:00"]}'
POLICY = '{"no_answer": {"delay_minutes": 240, "max_attempts": 3}, "busy": {"delay_minutes": 30, "max_attempts": 5}}'


def customer_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")  # what UtcDateTime stores on SQLite


def load(database_file: Path) -> float:
    started = time.perf_counter()
    now = datetime.now(UTC)
    connection = sqlite3.connect(database_file, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    connection.execute(
        "INSERT INTO campaigns (campaign_id, name, purpose, delay_days, script, talking_point, retry_policy,"
        " calling_window, contact_frequency_days, required_skill, active, created_at, updated_at)"
        " VALUES (?, 'Kettle follow-up', 'post_purchase', 30, 'Hello ...', 'The descaler, 20% off', ?, ?, 30,"
        " NULL, 1, ?, ?)",
        (CAMPAIGN_ID, POLICY, ALWAYS, _text(now), _text(now)),
    )
    connection.executemany(
        "INSERT INTO customer_replicas (customer_id, name, phone, time_zone, do_not_call, marketing_consent,"
        " as_of, updated_at) VALUES (?, ?, ?, ?, 0, 0, ?, ?)",
        (
            (
                customer_id(n),
                f"Customer {n}",
                f"+4930{n:08d}",
                ZONES[n % len(ZONES)],
                "2026-01-01T00:00:00Z",
                _text(now),
            )
            for n in range(CUSTOMERS)
        ),
    )
    connection.executemany(
        "INSERT INTO customer_replica_phones (phone, customer_id) VALUES (?, ?)",
        ((f"+4930{n:08d}", customer_id(n)) for n in range(CUSTOMERS)),
    )
    connection.executemany("INSERT INTO call_time_zones (time_zone) VALUES (?)", ((zone,) for zone in ZONES))
    due = _text(now - timedelta(hours=1))
    connection.executemany(
        "INSERT INTO call_entries (entry_id, campaign_id, customer_id, purchase_id, followup_request_id,"
        " schedule_key, origin, state, due_at, time_zone, shuffle_key, attempts, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, NULL, ?, 'purchase', 'pending', ?, ?, ?, 0, ?, ?)",
        (
            (
                str(uuid.UUID(int=n + 1)),
                CAMPAIGN_ID,
                customer_id(n % CUSTOMERS),
                str(uuid.UUID(int=(1 << 64) + n)),
                f"purchase:{uuid.UUID(int=(1 << 64) + n)}",
                due,
                ZONES[n % CUSTOMERS % len(ZONES)],
                random.random(),
                _text(now),
                _text(now),
            )
            for n in range(ENTRIES)
        ),
    )
    connection.executemany(
        "INSERT INTO agents (agent_id, name, skills, state, created_at) VALUES (?, ?, '[]', 'available', ?)",
        (
            (f"bench-{round_}-{thread}-{n}", f"Agent {n}", _text(now))
            for round_ in ("warmup", "measure")
            for thread in (0, 1)
            for n in range(AGENTS_PER_THREAD)
        ),
    )
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.close()
    return time.perf_counter() - started


def wrk_round(name: str, url: str, round_: str, duration_s: int) -> httpload.WrkResult:
    argv = [
        "wrk",
        *httpload.WRK_ARGS,
        *wrk_header_args(),
        f"-d{duration_s}s",
        "-s",
        str(NEXT_CALL_LUA),
        url,
        "--",
        round_,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    measured = httpload.parse_wrk(result.stdout)
    say(f"{name}: {measured.requests_per_s:,.0f} req/s, p50 {measured.p50_ms:.1f} ms, p99 {measured.p99_ms:.1f} ms")
    if measured.non_2xx > 0.01 * measured.requests:
        raise BenchError(f"{name}: {measured.non_2xx} of {measured.requests} responses were not 2xx")
    return measured


def leased(database_file: Path) -> tuple[int, int]:
    connection = sqlite3.connect(database_file)
    try:
        rows = connection.execute(
            "SELECT count(*), count(DISTINCT leased_by) FROM call_entries WHERE state = 'leased'"
        ).fetchone()
        return rows[0], rows[1]
    finally:
        connection.close()


class PurchasePublisher(WindowedPublisher):
    """The raw broker's windowed publisher, sending purchase.recorded envelopes to one queue."""

    def __init__(self, url: str, queue: str, bodies: list[bytes], window: int = 500):
        super().__init__(url, queue, len(bodies), window)
        self.bodies = bodies

    def _publish_window(self) -> None:
        for _ in range(min(self.window, self.total - self.sent)):
            properties = pika.BasicProperties(
                delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json", type="purchase.recorded"
            )
            self.channel.basic_publish("", self.queue, self.bodies[self.sent], properties, mandatory=True)
            self.unconfirmed.add(self.next_tag)
            self.next_tag += 1
            self.sent += 1


def purchase_events(count: int) -> list[bytes]:
    bought = datetime.now(UTC) - timedelta(days=1)
    bodies = []
    for n in range(count):
        data = {
            "purchase_id": str(uuid.uuid4()),
            "customer_id": customer_id(random.randrange(CUSTOMERS)),
            "sku": "KT-100",
            "product": "Kettle",
            "amount": "49.90",
            "currency": "EUR",
            "purchased_at": (bought + timedelta(seconds=n)).isoformat(),
            "source": "bench",
            "order_ref": f"B-{n}",
        }
        bodies.append(Envelope(type="purchase.recorded", data=data, source="tickets").validate().to_json())
    return bodies


def scheduled(database_file: Path) -> tuple[int, float, float]:
    connection = sqlite3.connect(database_file)
    try:
        count, first, last = connection.execute(
            "SELECT count(*), min(created_at), max(created_at) FROM call_entries WHERE origin = 'purchase'"
            " AND due_at > ?",
            (_text(datetime.now(UTC)),),
        ).fetchone()
    finally:
        connection.close()

    def seconds(text):
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp() if text else 0.0

    return count, seconds(first), seconds(last)


def measure_scheduling(processes, env: dict[str, str], var_dir: Path, database_file: Path) -> dict:
    queue = topology.work_queue("callrouting")
    pipeline.check_queues_idle(env["AMQP_URL"])
    bodies = purchase_events(PURCHASES)
    say(f"call lists: publishing {PURCHASES:,} purchase.recorded into {queue}")
    PurchasePublisher(env["AMQP_URL"], queue, bodies).run()
    metrics_dir = var_dir / "metrics" / "call-lists-consumer"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    consumer_env = dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), LOG_LEVEL="WARNING")
    name = "call-lists-consume"
    consumer = processes.start(name, [sys.executable, "-m", "services.callrouting.worker", "consume"], consumer_env)
    try:
        deadline = time.monotonic() + 180
        while True:
            processes.check_alive(name, consumer)
            count, first, last = scheduled(database_file)
            if count >= PURCHASES:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"call lists: only {count} of {PURCHASES} purchases scheduled after 180 s")
            time.sleep(0.25)
        cpu = pipeline.cpu_seconds(consumer.pid)
    finally:
        processes.stop(consumer)
    rate = (count - 1) / (last - first) if last > first else 0.0
    say(f"call lists: {count:,} entries scheduled at {rate:,.0f}/s (consumer CPU {cpu / count * 1000:.2f} ms each)")
    return {"entries": count, "per_s": rate, "cpu_ms_per_entry": cpu / count * 1000}


def run(processes, env: dict[str, str], var_dir: Path) -> dict:
    bench_var = var_dir / "call-lists-bench"
    bench_var.mkdir(parents=True, exist_ok=True)
    database_file = bench_var / "callrouting.db"
    database = Database(f"sqlite:///{database_file}")
    from services.callrouting.models import MIGRATIONS

    migrate(database, MIGRATIONS)
    database.dispose()
    say(f"call lists: loading {ENTRIES:,} due entries, {CUSTOMERS:,} customers, {4 * AGENTS_PER_THREAD:,} agents")
    load_s = load(database_file)
    say(f"call lists: loaded in {load_s:.1f} s")

    bare = httpload.measure_bare(processes, env)
    metrics_dir = var_dir / "metrics" / "call-lists-bench"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    server_env = dict(
        env,
        SERVICE="callrouting",
        VAR_DIR=str(bench_var),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        LOG_LEVEL="WARNING",
    )
    server, url = httpload.start_server(
        processes, "call-lists-bench", "services.callrouting.app:create_app()", server_env, "/healthz"
    )
    try:
        wrk_round("callrouting next-call (warm-up)", url, "warmup", httpload.WARMUP_S)
        next_call = wrk_round("callrouting POST next-call (100k due)", url, "measure", httpload.DURATION_S)
    finally:
        processes.stop(server)
    held, holders = leased(database_file)
    if held != holders:
        raise BenchError(f"call lists: {held} leased entries but {holders} agents hold them: an entry was shared")
    scheduling = measure_scheduling(processes, dict(env, VAR_DIR=str(bench_var)), var_dir, database_file)

    ratio = next_call.requests_per_s / bare.requests_per_s
    rows = [
        Row("call lists (100k due entries)", "bulk load", load_s, "s"),
        Row(
            "callrouting POST /agents/{id}/next-call, 32 agents",
            "hand-outs/s",
            next_call.requests_per_s,
            "req/s",
            bare.requests_per_s,
            "bare",
            ">= 0.30x bare",
            ratio >= 0.30,
        ),
        Row(
            "callrouting POST /agents/{id}/next-call, 32 agents",
            "latency p50",
            next_call.p50_ms,
            "ms",
            bare.p50_ms,
            "bare",
        ),
        Row(
            "callrouting POST /agents/{id}/next-call, 32 agents",
            "latency p99",
            next_call.p99_ms,
            "ms",
            bare.p99_ms,
            "bare",
        ),
        Row(
            "call lists: purchase.recorded -> entry (consumer)", "entries scheduled/s", scheduling["per_s"], "entries/s"
        ),
        Row(
            "call lists: purchase.recorded -> entry (consumer)",
            "consumer CPU per entry",
            scheduling["cpu_ms_per_entry"],
            "ms",
        ),
    ]
    return {"rows": rows, "next_call": next_call.as_dict(), "leases_held": held, "scheduling": scheduling}
