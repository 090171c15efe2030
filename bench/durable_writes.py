"""Durable writes scenario (``BENCH_ONLY=durable_writes``): what an acknowledged write costs on
each database the services run on, and where the floor is.

Every write the services acknowledge survives a power cut: SQLite runs in WAL mode with
``synchronous=FULL`` (shared/db.py), so each commit waits for the write-ahead log to reach the
disk, and SQLite lets one writer commit at a time; PostgreSQL flushes its WAL at commit too, but
many transactions share one flush (group commit) and row locks let writers overlap.

- the disk: 4 KiB appended and ``fsync``-ed, 1,000 times, in the bench's temporary directory
  (where the SQLite files are): median and p99. One commit at a time, one flush each, makes
  1 / median the most commits per second SQLite can acknowledge on this disk, whatever the code
  does, shown as a ratio to the bare endpoint;
- ``POST /tickets`` (a ticket without a customer, as bench/replicas.py sends) and
  ``POST /customers`` (bench/post_customer.lua), wrk -t2 -c32 under gunicorn with
  ``deploy/gunicorn.conf.py``, on a fresh SQLite file and on a PostgreSQL server started here
  with its durable defaults (``fsync=on``, ``synchronous_commit=on``; the server of
  ``make test-postgres`` runs with ``fsync=off`` and would flatter it), beside the bare endpoint
  of the same run.

On a 2-core machine PostgreSQL shares the cores with the service and wrk, so its figure is what
the same code does on an engine that can overlap commits, not a sizing figure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench import httpload
from bench.procs import BenchError, free_port, say
from bench.replicas import POST_TICKET, _lua
from bench.report import Row
from bench.tickets import bare_figures
from tests.support.postgres import create_database

FSYNCS = 1_000
BLOCK = b"\0" * 4096


def disk_flush_ms(directory: Path) -> tuple[float, float]:
    """Median and p99 of one 4 KiB append + fsync, in ms."""
    samples = []
    fd = os.open(directory / "fsync-probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(FSYNCS):
            started = time.perf_counter()
            os.write(fd, BLOCK)
            os.fsync(fd)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        (directory / "fsync-probe").unlink()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


@contextlib.contextmanager
def durable_postgres():
    """A throwaway PostgreSQL server with its durable defaults; yields its admin URL."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not versions:
        raise BenchError("durable_writes: no PostgreSQL in /usr/lib/postgresql (scripts/ensure-system.sh postgresql)")
    bindir = versions[-1]
    home = Path(tempfile.mkdtemp(prefix="callcenter-bench-pg-"))  # not under the bench's 0700 directory
    as_owner: list[str] = []
    if os.getuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(home, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = home / "db"
    subprocess.run(
        [*as_owner, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=on -c synchronous_commit=on"
    subprocess.run(
        [
            *as_owner,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(home / "server.log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def _writes(processes, env: dict[str, str], name: str, database_url: str | None, var_dir: Path) -> dict:
    work = var_dir / name
    work.mkdir(parents=True, exist_ok=True)
    metrics_dir = var_dir / "metrics" / name
    metrics_dir.mkdir(parents=True, exist_ok=True)
    server_env = dict(
        env, SERVICE="tickets", VAR_DIR=str(work), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), LOG_LEVEL="WARNING"
    )
    if database_url:
        server_env["TICKETS_DATABASE_URL"] = database_url
    server, url = httpload.start_server(processes, name, "services.tickets.app:create_app()", server_env, "/healthz")
    try:
        ticket = httpload.measure(f"{name} POST /tickets", f"{url}/tickets", _lua(work, "post-ticket.lua", POST_TICKET))
        customer = httpload.measure(f"{name} POST /customers", f"{url}/customers", httpload.POST_CUSTOMER_LUA)
    finally:
        processes.stop(server)
    return {"POST /tickets": ticket, "POST /customers": customer}


def run(processes, env: dict[str, str], var_dir: Path) -> dict:
    var_dir.mkdir(parents=True, exist_ok=True)
    median_ms, p99_ms = disk_flush_ms(var_dir)
    say(f"disk: 4 KiB append + fsync: median {median_ms:.2f} ms, p99 {p99_ms:.2f} ms")
    bare, _unqueued = bare_figures(processes, env, "durable-bare")
    measured = {"SQLite (WAL, synchronous=FULL)": _writes(processes, env, "durable-sqlite", None, var_dir)}
    with durable_postgres() as server:
        database = create_database(server, "tickets_durable")
        measured["PostgreSQL (fsync=on, synchronous_commit=on)"] = _writes(
            processes, env, "durable-postgres", database, var_dir
        )

    ceiling = 1000 / median_ms
    rows = [
        Row("disk: 4 KiB append + fsync", "latency p50", median_ms, "ms"),
        Row("disk: 4 KiB append + fsync", "latency p99", p99_ms, "ms"),
        Row(
            "SQLite: one flushed commit at a time (1 / fsync p50)",
            "commits/s",
            ceiling,
            "req/s",
            bare.requests_per_s,
            "bare",
        ),
    ]
    for engine, figures in measured.items():
        for path, result in figures.items():
            scenario = f"tickets {path} on {engine}"
            ratio = result.requests_per_s / bare.requests_per_s
            target = ">= 0.40x bare" if path == "POST /tickets" else ""
            rows.append(
                Row(
                    scenario,
                    "requests/s",
                    result.requests_per_s,
                    "req/s",
                    bare.requests_per_s,
                    "bare",
                    target,
                    ratio >= 0.40 if target else None,
                )
            )
            rows.append(Row(scenario, "latency p99", result.p99_ms, "ms", bare.p99_ms, "bare"))
    return {"rows": rows}
