"""Staffing and erasure scenarios (issue 17).

``staffing``: call routing's ``GET /reports/staffing?date=`` over 1,000,000 stored calls spread over
90 days (``inbound_calls.load``, about 11,000 a day) and an agents' state history (200 agents, a
shift a day each with a change every ~12 minutes: about 700,000 rows), a random day of the last 60
each request (so every request also reads six weeks of history for the forecast and four more for
its MAPE), one connection (a manager asking; wrk -t1 -c1 -d10s) under gunicorn. Beside it the bare
endpoint of the same run, one connection too. Target: p99 < 500 ms.

``erasure``: the time from an erasure request's commit in tickets until call routing, surveys and the
gateway have all applied ``customer.erased`` (their ``privacy_erasures`` rows), with the workers
running as in production (``pipeline.start_workers``), 40 erasures one after another over 2,000
replicated customers. Beside it, measured the same way in the same run, a plain ``customer.created``
reaching the same three consumers: the ratio is what an erasure costs over an ordinary event.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import httpload, inbound_calls, pipeline
from bench.procs import BenchError, say
from bench.report import Row
from shared.db import Database, migrate

AGENTS = 200
HISTORY_DAYS = inbound_calls.DAYS
ASKED_DAYS = 60
STAFFING_P99_MS = 500
ERASURES = 40
CUSTOMERS = 2_000


def load_state_history(database_file: Path) -> int:
    rng = random.Random(17)
    connection = sqlite3.connect(database_file, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")
    rows = []
    for day in range(HISTORY_DAYS):
        start = inbound_calls.FIRST_DAY + timedelta(days=day)
        for n in range(AGENTS):
            at = start + timedelta(hours=7, minutes=rng.uniform(0, 120))
            end = at + timedelta(hours=8)
            state = "offline"
            while at < end:
                new = rng.choice(("on_call", "wrap_up", "available", "on_break")) if state != "offline" else "available"
                rows.append((f"agent-{n:03d}", state, new, inbound_calls._text(at), "bench"))
                state, at = new, at + timedelta(minutes=rng.expovariate(1 / 12))
            rows.append((f"agent-{n:03d}", state, "offline", inbound_calls._text(end), "bench"))
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO agent_state_history (agent_id, old_state, new_state, at, reason) VALUES (?, ?, ?, ?, ?)", rows
    )
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.close()
    return len(rows)


def write_script(directory: Path) -> Path:
    first = HISTORY_DAYS - ASKED_DAYS
    days = [(inbound_calls.FIRST_DAY + timedelta(days=n)).date().isoformat() for n in range(first, HISTORY_DAYS)]
    script = directory / "staffing.lua"
    script.write_text(
        "-- wrk: the staffing report of a random day\n"
        f"local days = {{{', '.join(json.dumps(day) for day in days)}}}\n"
        "function request()\n"
        '  return wrk.format("GET", "/reports/staffing?date=" .. days[math.random(#days)])\n'
        "end\n"
    )
    return script


def run(processes, env: dict[str, str], var_dir: Path) -> dict:
    bench_var = var_dir / "staffing-bench"
    bench_var.mkdir(parents=True, exist_ok=True)
    metrics_dir = var_dir / "metrics" / "staffing-bench"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    database_file = bench_var / "callrouting.db"
    database = Database(f"sqlite:///{database_file}")
    from services.callrouting.models import MIGRATIONS

    migrate(database, MIGRATIONS)
    database.dispose()
    say(f"staffing: loading {inbound_calls.CALLS:,} calls over {HISTORY_DAYS} days and the agents' state history")
    timing = inbound_calls.load(database_file)
    changes = load_state_history(database_file)
    say(f"staffing: loaded in {timing['total_s']:.1f} s, {changes:,} state changes")
    script = write_script(bench_var)
    bare = httpload.measure_bare(processes, env, "bare GET / (staffing)")
    server_env = dict(
        env,
        SERVICE="callrouting",
        VAR_DIR=str(bench_var),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        LOG_LEVEL="WARNING",
    )
    server, url = httpload.start_server(
        processes, "staffing-bench", "services.callrouting.app:create_app()", server_env, "/healthz"
    )
    try:
        inbound_calls.single_client(f"{url}/reports/staffing", script, duration_s=2)  # warm the page cache
        report = inbound_calls.single_client(f"{url}/reports/staffing", script)
        if report.non_2xx:
            raise BenchError(f"staffing: {report.non_2xx} of {report.requests} answers were not 2xx")
        say(f"staffing GET /reports/staffing: p50 {report.p50_ms:.1f} ms, p99 {report.p99_ms:.1f} ms")
    finally:
        processes.stop(server)
    name = f"callrouting GET /reports/staffing (1M calls, {changes // 1000}k state changes, 1 client)"
    rows = [
        Row(name, "latency p50", report.p50_ms, "ms", bare.p50_ms, "bare"),
        Row(
            name,
            "latency p99",
            report.p99_ms,
            "ms",
            bare.p99_ms,
            "bare",
            f"< {STAFFING_P99_MS}",
            report.p99_ms < STAFFING_P99_MS,
        ),
        Row(name, "requests/s", report.requests_per_s, "req/s"),
    ]
    return {"rows": rows, "report": report, "bare": bare, "state_changes": changes, "load": timing}


# --- erasure ----------------------------------------------------------------------------------------


def _applied(databases: dict, table: str, key: str, value: str) -> bool:
    from sqlalchemy import text

    for database in databases.values():
        with database.engine.connect() as connection:
            if connection.execute(text(f"SELECT 1 FROM {table} WHERE {key} = :v"), {"v": value}).first() is None:
                return False
    return True


def _wait(databases, table, key, value, started, limit_s=30.0) -> float:
    while not _applied(databases, table, key, value):
        if time.perf_counter() - started > limit_s:
            raise BenchError(f"erasure: {table} {value} not applied everywhere within {limit_s} s")
        time.sleep(0.002)
    return (time.perf_counter() - started) * 1000


def run_erasure(processes, env: dict[str, str], var_dir: Path) -> dict:
    from services.tickets import customers as tickets_customers
    from services.tickets import privacy
    from shared.config import database_url_for
    from shared.privacy import hash_secret
    from shared.unit_of_work import UnitOfWork

    tickets = Database(database_url_for("tickets"))
    consumers = {service: Database(database_url_for(service)) for service in pipeline.CONSUMERS}
    workers = pipeline.start_workers(processes, env, var_dir)
    try:
        ids = []
        plain, erasing = [], []
        rng = random.Random(5)
        for n in range(CUSTOMERS):
            with UnitOfWork(tickets, source="tickets") as uow:
                customer = tickets_customers.create_customer(uow, name=f"Erasable {n}", phone=f"+1206{5550000 + n}")
                ids.append(str(customer.id))
            if n < ERASURES:  # the plain event's latency, measured like the erasure's
                plain.append(_wait(consumers, "customer_replicas", "customer_id", ids[-1], time.perf_counter()))
        # everything replicated before the erasures start
        _wait(consumers, "customer_replicas", "customer_id", ids[-1], time.perf_counter(), limit_s=120)
        for customer_id in rng.sample(ids, ERASURES):
            started = time.perf_counter()
            with UnitOfWork(tickets, source="tickets") as uow:
                request, _new = privacy.request_erasure(uow, customer_id, "bench", hash_secret(), timedelta(hours=1))
            erasing.append(_wait(consumers, "privacy_erasures", "request_id", request["request_id"], started))
        for name, process in workers.items():
            processes.check_alive(name, process)
    finally:
        for process in workers.values():
            processes.stop(process)
        tickets.dispose()
        for database in consumers.values():
            database.dispose()
    p50, p99 = pipeline.percentile(erasing, 50), pipeline.percentile(erasing, 99)
    ref50, ref99 = pipeline.percentile(plain, 50), pipeline.percentile(plain, 99)
    say(f"erasure applied in all services: p50 {p50:.0f} ms, p99 {p99:.0f} ms (customer.created: p50 {ref50:.0f} ms)")
    name = f"erasure applied in callrouting, surveys, gateway ({ERASURES} one by one)"
    rows = [
        Row(name, "latency p50", p50, "ms", ref50, "customer.created"),
        Row(name, "latency p99", p99, "ms", ref99, "customer.created"),
        Row(name, "slowest", max(erasing), "ms"),
    ]
    return {"rows": rows, "erasure_ms": erasing, "plain_ms": plain, "at": datetime.now(UTC).isoformat()}
