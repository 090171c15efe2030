"""Replicas scenario: what running two of everything costs, on PostgreSQL and a 3-node cluster.

Needs PostgreSQL (``make bench`` runs under scripts/with-postgres.sh; the server of
``TEST_DATABASE_URL`` is used) and Debian's HAProxy. It starts a RabbitMQ cluster of three
nodes (scripts/rabbitmq-cluster.sh), databases of its own on the server, and two gunicorn
replicas (``WEB_CONCURRENCY`` workers each, as in production) of tickets and of callrouting.
HAProxy has two frontends per service: "one replica" (replica 1 only) and "two replicas"
(round robin over both), so the two figures differ only in the number of replicas behind it.
The bare endpoint is measured directly and through HAProxy in the same run.

- ``POST /tickets`` (a new ticket, no customer), wrk -t2 -c32 -d10s after a 2 s warm-up;
- ``POST /agents/<id>/next-call`` for 32 agents over 20,000 due entries, with
  ``CALLROUTING_LEASE_SECONDS=0`` so that every request is a real draw (a lapsed lease is
  drawn again), across replicas sharing the one database;
- ``POST /webhooks/twilio/voice``, each request a new call signed with Twilio's validator
  (no agent available: every call is counted and queued);
- the pipeline across the cluster: 5,000 ``customer.created`` written with the relays stopped,
  then one relay and one consumer per service (or two of each) start; events/s until every
  consumer has recorded all of them.

On one 2-core machine two replicas share the same two cores, so they cannot be faster: the
ratio two/one is what replication costs here (connections, proxying, contention on rows), and
docs/deploy.md turns it into a sizing rule.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, select

from bench import httpload, inbound_calls
from bench.pipeline import write_in_transactions
from bench.procs import ROOT, VENV_BIN, BenchError, Processes, free_port, run_logged, say, wait_for_http
from bench.report import Row
from shared.backbone import processed_events
from shared.config import SERVICES
from shared.db import Database
from tests.support.postgres import create_database, drop_databases

CLUSTER = ROOT / "scripts" / "rabbitmq-cluster.sh"
HAPROXY = "/usr/sbin/haproxy"
AGENTS = 32
DUE_ENTRIES = 20_000
PIPELINE_EVENTS = 5_000
CONSUMERS = ("callrouting", "surveys", "gateway")


def _lua(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(body)
    return path


POST_TICKET = """-- wrk: POST /tickets, a ticket of its own each time
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"subject": "Kettle leaks", "category": "quality_issue", "priority": "high", "channel": "phone"}'
"""
NEXT_CALL = """-- wrk: POST /agents/<id>/next-call, for 32 agents in turn
local n = 0
wrk.method = "POST"
request = function()
  n = n + 1
  return wrk.format(nil, string.format("/agents/bench-agent-%d/next-call", n % 32))
end
"""


def _haproxy_config(frontends: dict[str, tuple[int, list[int]]]) -> str:
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    option http-keep-alive",
    ]
    for name, (port, backends) in frontends.items():
        lines += [f"frontend {name}", f"    bind 127.0.0.1:{port}", f"    default_backend {name}", f"backend {name}"]
        lines += ["    balance roundrobin"] + [f"    server r{n} 127.0.0.1:{p}" for n, p in enumerate(backends, 1)]
    return "\n".join(lines) + "\n"


class Cluster:
    def __init__(self, var_dir: Path, log: Path):
        self.log = log
        self.env = dict(
            os.environ,
            RABBITMQ_CLUSTER_DIR=str(var_dir / "replicas-rabbitmq"),
            RABBITMQ_CLUSTER_PORTS=" ".join(str(free_port()) for _ in range(3)),
            RABBITMQ_CLUSTER_DIST_PORTS=" ".join(str(free_port()) for _ in range(3)),
        )

    def start(self) -> str:
        run_logged([str(CLUSTER), "start"], self.env, self.log, timeout=300)
        return subprocess.run(
            [str(CLUSTER), "urls"], env=self.env, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            run_logged([str(CLUSTER), "stop"], self.env, self.log, timeout=180)


def _databases(server: str) -> tuple[dict[str, str], list[str]]:
    urls, names = {}, []
    for service in SERVICES:
        name = f"bench_{service}_{uuid.uuid4().hex[:8]}"
        urls[service] = create_database(server, name)
        names.append(name)
    return urls, names


def _processed(urls: dict[str, str]) -> dict[str, int]:
    counts = {}
    for service in CONSUMERS:
        engine = create_engine(urls[service])
        with engine.connect() as connection:
            counts[service] = connection.execute(select(func.count()).select_from(processed_events)).scalar_one()
        engine.dispose()
    return counts


def measure_pipeline(processes: Processes, env: dict, urls: dict[str, str], copies: int) -> float:
    """events/s through ``copies`` relays and ``copies`` consumers per service, across the cluster."""
    before = _processed(urls)
    tickets = Database(urls["tickets"])
    write_in_transactions(tickets, PIPELINE_EVENTS, 200)
    tickets.dispose()
    started_workers = []
    try:
        for service in CONSUMERS:
            for n in range(copies):
                argv = [sys.executable, "-m", f"services.{service}.worker", "consume"]
                started_workers.append(processes.start(f"replicas-{service}-consume-{copies}-{n}", argv, env))
        time.sleep(3)  # consumers up before the relays send
        started = time.monotonic()
        for n in range(copies):
            argv = [sys.executable, "-m", "services.tickets.worker", "relay"]
            started_workers.append(processes.start(f"replicas-tickets-relay-{copies}-{n}", argv, env))
        deadline = started + 180
        while time.monotonic() < deadline:
            done = _processed(urls)
            if all(done[s] - before[s] >= PIPELINE_EVENTS for s in CONSUMERS):
                elapsed = time.monotonic() - started
                say(f"replicas: pipeline with {copies} of each: {PIPELINE_EVENTS / elapsed:,.0f} events/s")
                return PIPELINE_EVENTS / elapsed
            time.sleep(0.25)
        raise BenchError(f"replicas: the pipeline with {copies} of each did not deliver {PIPELINE_EVENTS} in 180 s")
    finally:
        for process in started_workers:
            processes.stop(process)


def run(processes: Processes, env: dict[str, str], var_dir: Path) -> dict:
    server = os.environ.get("BENCH_POSTGRES_URL", "")
    if not server.startswith("postgresql"):
        raise BenchError("replicas: needs PostgreSQL (make bench runs under scripts/with-postgres.sh)")
    if not Path(HAPROXY).exists():
        raise BenchError("replicas: needs Debian's haproxy (scripts/ensure-system.sh haproxy)")
    work = var_dir / "replicas"
    work.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(var_dir, processes.log_dir / "replicas-rabbitmq.log")
    urls, names = _databases(server)
    say("replicas: starting a 3-node RabbitMQ cluster")
    try:
        amqp_url = cluster.start()
        service_env = dict(
            env,
            AMQP_URL=amqp_url,
            MIGRATE_ON_START="0",
            LOG_LEVEL="WARNING",
            TWILIO_AUTH_TOKEN=inbound_calls.TOKEN,
            PUBLIC_BASE_URL=inbound_calls.PUBLIC,
            CALLROUTING_LEASE_SECONDS="0",
            **{f"{service.upper()}_DATABASE_URL": url for service, url in urls.items()},
        )
        run_logged(
            [sys.executable, "-m", "services", "setup"], service_env, processes.log_dir / "replicas-setup.log", 300
        )
        _load_callrouting(urls["callrouting"])

        ports = {}
        for service in ("tickets", "callrouting"):
            ports[service] = []
            for n in (1, 2):
                port = free_port()
                metrics = work / f"metrics-{service}-{n}"
                metrics.mkdir(exist_ok=True)
                replica_env = dict(
                    service_env, SERVICE=service, BIND=f"127.0.0.1:{port}", PROMETHEUS_MULTIPROC_DIR=str(metrics)
                )
                argv = [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py")]
                argv.append(f"services.{service}.app:create_app()")
                name = f"replicas-{service}-{n}"
                process = processes.start(name, argv, replica_env)
                wait_for_http(processes, name, process, f"http://127.0.0.1:{port}/healthz", timeout=120)
                ports[service].append(port)
        bare, bare_url = httpload.start_server(
            processes, "replicas-bare", "bench.bare_app:app", dict(env, SERVICE="bare"), "/"
        )
        bare_port = int(bare_url.rsplit(":", 1)[1])
        frontends = {"bare": (free_port(), [bare_port])}
        for service in ("tickets", "callrouting"):
            frontends[f"{service}_one"] = (free_port(), ports[service][:1])
            frontends[f"{service}_two"] = (free_port(), ports[service])
        config = work / "haproxy.cfg"
        config.write_text(_haproxy_config(frontends))
        processes.start("replicas-haproxy", [HAPROXY, "-db", "-f", str(config)], dict(os.environ))
        time.sleep(1)

        def url(frontend: str, path: str) -> str:
            return f"http://127.0.0.1:{frontends[frontend][0]}{path}"

        figures: dict = {"bare": httpload.measure("bare GET /", f"{bare_url}/")}
        figures["bare_proxied"] = httpload.measure("bare GET / through HAProxy", url("bare", "/"))
        post_ticket = _lua(work, "post-ticket.lua", POST_TICKET)
        next_call = _lua(work, "next-call.lua", NEXT_CALL)
        for copies in ("one", "two"):
            figures[f"post_ticket_{copies}"] = httpload.measure(
                f"POST /tickets, {copies} replica(s)", url(f"tickets_{copies}", "/tickets"), post_ticket
            )
            figures[f"next_call_{copies}"] = httpload.measure(
                f"next-call (32 agents), {copies} replica(s)", url(f"callrouting_{copies}", "/"), next_call
            )
            voice = inbound_calls.write_signed_requests(work, f"CA{copies}", 30_000)
            figures[f"voice_{copies}"] = httpload.measure(
                f"voice webhook, {copies} replica(s)", url(f"callrouting_{copies}", "/"), voice
            )
        processes.stop(bare)
        for name, process in list(processes.running):
            if name.startswith("replicas-"):
                processes.stop(process)
        figures["pipeline_one"] = measure_pipeline(processes, service_env, urls, 1)
        figures["pipeline_two"] = measure_pipeline(processes, service_env, urls, 2)
    finally:
        for name, process in list(processes.running):
            if name.startswith("replicas-"):
                processes.stop(process)
        cluster.stop()
        drop_databases(server, names)
    return {"figures": figures, "rows": rows(figures)}


def _load_callrouting(url: str) -> None:
    """32 agents and 20,000 due entries, through the service layer and one bulk insert."""
    import random
    from datetime import UTC, datetime, timedelta

    from services.callrouting.models import CallEntry, CallTimeZone
    from services.callrouting.outbound import service
    from shared.unit_of_work import UnitOfWork

    database = Database(url)
    always = {day: ["00:00", "24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    with UnitOfWork(database, source="callrouting") as uow:
        campaign = service.create_campaign(uow, name="Bench follow-up", calling_window=always)
    for n in range(AGENTS):
        with UnitOfWork(database, source="callrouting") as uow:
            service.register_agent(uow, f"bench-agent-{n}", f"Agent {n}", [])
    now = datetime.now(UTC)
    rows = [
        {
            "entry_id": str(uuid.uuid4()),
            "campaign_id": campaign.campaign_id,
            "customer_id": str(uuid.uuid4()),
            "purchase_id": None,
            "followup_request_id": None,
            "schedule_key": f"entry:{uuid.uuid4()}",
            "origin": "api",
            "state": "pending",
            "due_at": now - timedelta(hours=1),
            "time_zone": "Europe/Berlin",
            "shuffle_key": random.random(),
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for _ in range(DUE_ENTRIES)
    ]
    with database.sessions() as session:
        session.execute(CallEntry.__table__.insert(), rows)
        session.add(CallTimeZone(time_zone="Europe/Berlin"))
        session.commit()
    database.dispose()


def rows(figures: dict) -> list[Row]:
    bare, proxied = figures["bare"], figures["bare_proxied"]
    table = [
        Row(
            "replicas",
            "bare GET / through HAProxy",
            proxied.requests_per_s,
            "req/s",
            bare.requests_per_s,
            "bare direct",
        )
    ]
    for key, label in (
        ("post_ticket", "POST /tickets"),
        ("next_call", "next-call, 32 agents"),
        ("voice", "voice webhook"),
    ):
        one, two = figures[f"{key}_one"], figures[f"{key}_two"]
        table.append(
            Row(
                "replicas",
                f"{label}, 1 replica",
                one.requests_per_s,
                "req/s",
                proxied.requests_per_s,
                "bare via HAProxy",
            )
        )
        table.append(
            Row("replicas", f"{label}, 2 replicas", two.requests_per_s, "req/s", one.requests_per_s, "1 replica")
        )
        table.append(Row("replicas", f"{label}, 2 replicas p99", two.p99_ms, "ms", one.p99_ms, "1 replica p99"))
    table.append(
        Row(
            "replicas",
            "pipeline across 3 nodes, 2 of each",
            figures["pipeline_two"],
            "events/s",
            figures["pipeline_one"],
            "1 of each",
        )
    )
    return table
