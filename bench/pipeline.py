"""The event pipeline end to end: tickets outbox -> relay -> broker -> three consumers.

The workers run as production runs them (``python -m services.<svc>.worker relay|consume``,
one process each); the bench writes ``customer.created`` events into the tickets outbox
through the service layer, like the API does, and reads the results back from the
databases: ``outbox.created_ts`` (tickets) and ``processed_events.processed_ts`` (each
consumer) are both epoch seconds from the same clock, so their difference is the time an
event took from its commit to its effect in a consumer's database.
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
import time
from pathlib import Path

import pika

from bench.procs import BenchError, Processes, say, wait_for_log_message

WORKERS = {"tickets": "relay", "callrouting": "consume", "surveys": "consume", "gateway": "consume"}
CONSUMERS = ("callrouting", "surveys", "gateway")
READY_MESSAGE = {"relay": "relay ready", "consume": "consumer ready"}

THROUGHPUT_EVENTS = 20_000
TRANSACTION_SIZE = 200
THROUGHPUT_TIME_LIMIT_S = 150.0
LATENCY_RATE = 200  # events/s
LATENCY_SECONDS = 15
DRAIN_TIME_LIMIT_S = 60.0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- the broker and the workers -------------------------------------------------------------


def check_queues_idle(amqp_url: str) -> None:
    """The consumers' queues must be empty and unconsumed, or the counts would lie."""
    from shared import topology

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for service in CONSUMERS:
            state = channel.queue_declare(topology.work_queue(service), passive=True).method
            if state.message_count or state.consumer_count:
                raise BenchError(
                    f"{state.queue} holds {state.message_count} messages and has {state.consumer_count} consumers:"
                    " the bench needs a broker whose event queues nobody else uses"
                )
    finally:
        connection.close()


def start_workers(processes: Processes, env: dict[str, str], var_dir: Path) -> dict:
    started = {}
    for service, role in WORKERS.items():
        metrics_dir = var_dir / "metrics" / service  # as the Procfile gives each service one
        metrics_dir.mkdir(parents=True, exist_ok=True)
        name = f"{service}-{role}"
        argv = [sys.executable, "-m", f"services.{service}.worker", role]
        started[name] = processes.start(name, argv, dict(env, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)))
    for name, process in started.items():
        wait_for_log_message(processes, name, process, READY_MESSAGE[name.split("-")[1]])
    say("workers ready: " + ", ".join(started))
    return started


def worker_log_problems(processes: Processes, names) -> dict[str, int]:
    """WARNING and ERROR lines per worker log (retries, parked events, reconnects)."""
    counts = {}
    for name in names:
        count = 0
        for line in processes.log_path(name).read_text(errors="replace").splitlines():
            try:
                count += json.loads(line).get("level") in ("WARNING", "ERROR", "CRITICAL")
            except ValueError:
                count += 1  # not one of our JSON lines: a traceback or a crash
        counts[name] = count
    return counts


# -- reading results back ------------------------------------------------------------------------


class Results:
    """Read-only queries on the SQLite files, each consumer's with the tickets DB attached."""

    def __init__(self, var_dir: Path):
        self.tickets = sqlite3.connect(var_dir / "tickets.db", timeout=30)
        self.consumers = {}
        for service in CONSUMERS:
            connection = sqlite3.connect(var_dir / f"{service}.db", timeout=30)
            connection.execute("ATTACH DATABASE ? AS tickets", (str(var_dir / "tickets.db"),))
            self.consumers[service] = connection

    def _one(self, connection, sql: str, *args):
        return connection.execute(sql, args).fetchone()[0]

    def last_outbox_id(self) -> int:
        return self._one(self.tickets, "SELECT coalesce(max(id), 0) FROM outbox")

    def unpublished(self) -> int:
        return self._one(self.tickets, "SELECT count(*) FROM outbox WHERE published_ts IS NULL")

    def last_published_ts(self, after_id: int) -> float:
        return self._one(self.tickets, "SELECT max(published_ts) FROM outbox WHERE id > ?", after_id)

    def processed(self, service: str) -> int:
        return self._one(self.consumers[service], "SELECT count(*) FROM processed_events")

    # The queries below take the events of one phase: outbox rows with id > after_id.
    _PHASE = "FROM processed_events p JOIN tickets.outbox o ON o.event_id = p.event_id WHERE o.id > ?"

    def missing(self, service: str, after_id: int) -> int:
        sql = (
            "SELECT count(*) FROM tickets.outbox o WHERE o.id > ?"
            " AND NOT EXISTS (SELECT 1 FROM processed_events p WHERE p.event_id = o.event_id)"
        )
        return self._one(self.consumers[service], sql, after_id)

    def last_processed_ts(self, service: str, after_id: int) -> float:
        return self._one(self.consumers[service], f"SELECT max(p.processed_ts) {self._PHASE}", after_id)

    def latencies(self, service: str, after_id: int) -> list[float]:
        sql = f"SELECT p.processed_ts - o.created_ts {self._PHASE}"
        return [row[0] for row in self.consumers[service].execute(sql, (after_id,))]

    def close(self) -> None:
        for connection in (self.tickets, *self.consumers.values()):
            connection.close()


def wait_until_delivered(results: Results, baseline: dict, count: int, check_workers, limit_s: float) -> bool:
    """Poll until every consumer processed ``count`` events more than ``baseline``."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        check_workers()
        if all(results.processed(s) - baseline[s] >= count for s in CONSUMERS):
            return True
        time.sleep(0.25)
    return False


def wait_until_published(results: Results, limit_s: float = 10.0) -> int:
    # The relay marks a batch published after its confirms, a moment after the consumers
    # may already have the events.
    deadline = time.monotonic() + limit_s
    while results.unpublished() and time.monotonic() < deadline:
        time.sleep(0.2)
    return results.unpublished()


# -- writing events the way the tickets API does ---------------------------------------------------


def write_in_transactions(database, count: int, size: int) -> None:
    """``service.create_customer`` minus its per-call commit: ``size`` customers per commit."""
    from services.tickets.models import Customer
    from shared.unit_of_work import UnitOfWork

    for start in range(0, count, size):
        with UnitOfWork(database, source="tickets") as uow:
            for i in range(start, min(start + size, count)):
                customer = Customer(name=f"Bench customer {i}", phone=None, email=None)
                uow.session.add(customer)
                uow.session.flush()
                data = {"customer_id": customer.id, "name": customer.name, "phone": None, "email": None}
                uow.publish("customer.created", data)
            uow.commit()


def write_paced(database, rate: float, seconds: float) -> tuple[int, float]:
    """One ``service.create_customer`` (one transaction) every 1/rate s; (events, achieved rate)."""
    from services.tickets import service
    from shared.unit_of_work import UnitOfWork

    planned = int(rate * seconds)
    started = time.monotonic()
    sent = 0
    for i in range(planned):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif time.monotonic() - started > 2 * seconds:
            break  # far behind schedule: stop rather than run on
        with UnitOfWork(database, source="tickets") as uow:
            service.create_customer(uow, name=f"Paced customer {i}", phone=None, email=None)
        sent += 1
    return sent, sent / (time.monotonic() - started)


# -- the scenario ------------------------------------------------------------------------------------


def run(processes: Processes, env: dict[str, str], var_dir: Path) -> dict:
    from shared.config import database_url_for
    from shared.db import Database

    check_queues_idle(env["AMQP_URL"])
    workers = start_workers(processes, env, var_dir)

    def check_workers():
        for name, process in workers.items():
            processes.check_alive(name, process)

    database = Database(database_url_for("tickets"))
    results = Results(var_dir)
    report: dict = {"problems": []}
    try:
        # Throughput: N events, as fast as the pipeline takes them.
        first_id = results.last_outbox_id()
        baseline = {s: results.processed(s) for s in CONSUMERS}
        say(f"throughput: writing {THROUGHPUT_EVENTS:,} events in transactions of {TRANSACTION_SIZE}")
        started = time.time()
        write_in_transactions(database, THROUGHPUT_EVENTS, TRANSACTION_SIZE)
        written = time.time()
        delivered = wait_until_delivered(results, baseline, THROUGHPUT_EVENTS, check_workers, THROUGHPUT_TIME_LIMIT_S)
        missing = {s: results.missing(s, first_id) for s in CONSUMERS}
        if not delivered or any(missing.values()):
            report["problems"].append(
                f"throughput: events not delivered within {THROUGHPUT_TIME_LIMIT_S:.0f}s: {missing}"
            )
            report["throughput"] = {"missing": missing}
            return report
        finished = {s: results.last_processed_ts(s, first_id) - started for s in CONSUMERS}
        elapsed = max(finished.values())
        report["throughput"] = {
            "events": THROUGHPUT_EVENTS,
            "elapsed_s": elapsed,
            "events_per_s": THROUGHPUT_EVENTS / elapsed,
            "deliveries_per_s": len(CONSUMERS) * THROUGHPUT_EVENTS / elapsed,
            "outbox_writes_per_s": THROUGHPUT_EVENTS / (written - started),
            "relay_published_per_s": THROUGHPUT_EVENTS / (results.last_published_ts(first_id) - started),
            "per_consumer_events_per_s": {s: THROUGHPUT_EVENTS / t for s, t in finished.items()},
        }
        say(f"throughput: {THROUGHPUT_EVENTS / elapsed:,.0f} events/s ({elapsed:.1f}s)")
        if wait_until_published(results):
            report["problems"].append("throughput: outbox rows left unpublished after every consumer had them")

        # Latency: a steady LATENCY_RATE events/s, one transaction each.
        first_id = results.last_outbox_id()
        baseline = {s: results.processed(s) for s in CONSUMERS}
        say(f"latency: {LATENCY_RATE} events/s for {LATENCY_SECONDS}s")
        sent, achieved = write_paced(database, LATENCY_RATE, LATENCY_SECONDS)
        delivered = wait_until_delivered(results, baseline, sent, check_workers, DRAIN_TIME_LIMIT_S)
        missing = {s: results.missing(s, first_id) for s in CONSUMERS}
        if not delivered or any(missing.values()):
            report["problems"].append(f"latency: events not delivered within {DRAIN_TIME_LIMIT_S:.0f}s: {missing}")
        per_consumer = {s: results.latencies(s, first_id) for s in CONSUMERS}
        everything = [value for values in per_consumer.values() for value in values]
        report["latency"] = {
            "events": sent,
            "achieved_rate": achieved,
            "p50_ms": percentile(everything, 50) * 1000,
            "p99_ms": percentile(everything, 99) * 1000,
            "max_ms": max(everything) * 1000,
            "per_consumer_p99_ms": {s: percentile(v, 99) * 1000 for s, v in per_consumer.items() if v},
        }
        say(f"latency: p50 {report['latency']['p50_ms']:.0f} ms, p99 {report['latency']['p99_ms']:.0f} ms")

        report["unpublished_at_end"] = wait_until_published(results)
        if report["unpublished_at_end"]:
            report["problems"].append(f"{report['unpublished_at_end']} outbox rows still unpublished at the end")
        report["worker_log_warnings"] = worker_log_problems(processes, workers)
        return report
    finally:
        results.close()
        database.dispose()
        for process in workers.values():
            processes.stop(process)
