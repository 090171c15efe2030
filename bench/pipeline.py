"""The event pipeline end to end: tickets outbox -> relay -> broker -> three consumers.

The workers run as production runs them (``python -m services.<svc>.worker relay|consume``,
one process each); the bench writes ``customer.created`` events into the tickets outbox
through the service layer, like the API does, and reads the results back from the
databases: ``outbox.created_ts`` (tickets) and ``processed_events.processed_ts`` (each
consumer) are both epoch seconds from the same clock, so their difference is the time an
event took from its outbox insert to its effect in a consumer's database.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path

import pika

from bench.procs import BenchError, Processes, say, wait_for_log_message
from services.tickets import customers as tickets_customers
from services.tickets.models import Customer
from shared import topology
from shared.config import database_url_for
from shared.db import Database
from shared.unit_of_work import UnitOfWork

WORKERS = {"tickets": "relay", "callrouting": "consume", "surveys": "consume", "gateway": "consume"}
CONSUMERS = ("callrouting", "surveys", "gateway")
READY_MESSAGE = {"relay": "relay ready", "consume": "consumer ready"}

THROUGHPUT_EVENTS = 20_000
TRANSACTION_SIZE = 200
THROUGHPUT_TIME_LIMIT_S = 150.0
LATENCY_RATE = 200  # events/s
LATENCY_SECONDS = 15
LATENCY_DRAIN_LIMIT_S = 60.0
VERIFY_LIMIT_S = 60.0  # the last chance for stragglers before an event counts as lost


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# -- the broker and the workers -------------------------------------------------------------


def check_queues_idle(amqp_url: str) -> None:
    """The consumers' queues must be empty and unconsumed, or the counts would lie."""
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


def start_workers(processes: Processes, env: dict[str, str], var_dir: Path, services=tuple(WORKERS)) -> dict:
    started = {}
    for service, role in WORKERS.items():
        if service not in services:
            continue
        metrics_dir = var_dir / "metrics" / service  # as deploy/supervisord.conf gives each service one
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
    """``customers.create_customer`` minus its per-call commit: ``size`` customers per commit."""
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
    """One ``customers.create_customer`` (one transaction) every 1/rate s; (events, achieved rate)."""
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
            tickets_customers.create_customer(uow, name=f"Paced customer {i}", phone=None, email=None)
        sent += 1
    return sent, sent / (time.monotonic() - started)


# -- the scenario ------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def logged_at(processes: Processes, name: str, message: str) -> float:
    """Epoch seconds of the first JSON log line of ``name`` whose message is ``message``."""
    for line in processes.log_path(name).read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") == message:
            return datetime.strptime(record["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise BenchError(f"{name} never logged {message!r}")


def measure_drain(database, results: Results, processes: Processes, env, var_dir, check_workers) -> tuple[dict, dict]:
    """The backbone's own capacity: a full outbox, then the relay starts; until all consumed.

    Nothing else competes for the machine meanwhile (the writer has finished), so this is
    what relay + broker + consumers can carry, apart from the cost of writing events.
    """
    first_id = results.last_outbox_id()
    baseline = {s: results.processed(s) for s in CONSUMERS}
    say(f"drain: writing {THROUGHPUT_EVENTS:,} events with the relay stopped")
    write_in_transactions(database, THROUGHPUT_EVENTS, TRANSACTION_SIZE)
    relay = start_workers(processes, env, var_dir, services=("tickets",))
    started = logged_at(processes, "tickets-relay", READY_MESSAGE["relay"])
    complete = wait_until_delivered(results, baseline, THROUGHPUT_EVENTS, check_workers, THROUGHPUT_TIME_LIMIT_S)
    if complete:
        elapsed = max(results.last_processed_ts(s, first_id) for s in CONSUMERS) - started
        delivered = THROUGHPUT_EVENTS
    else:
        elapsed = time.time() - started
        delivered = min(results.processed(s) - baseline[s] for s in CONSUMERS)
    figures = {
        "events": THROUGHPUT_EVENTS,
        "complete": complete,
        "elapsed_s": elapsed,
        "events_per_s": delivered / elapsed,
        "relay_published_per_s": THROUGHPUT_EVENTS / ((results.last_published_ts(first_id) or time.time()) - started),
    }
    say(f"drain: {figures['events_per_s']:,.0f} events/s over {elapsed:.1f}s" + ("" if complete else " (timed out)"))
    return figures, relay


def measure_throughput(database, results: Results, workers: dict, check_workers) -> dict:
    first_id = results.last_outbox_id()
    baseline = {s: results.processed(s) for s in CONSUMERS}
    cpu_before = {name: cpu_seconds(process.pid) for name, process in workers.items()}
    say(f"throughput: writing {THROUGHPUT_EVENTS:,} events in transactions of {TRANSACTION_SIZE}")
    started = time.time()
    write_in_transactions(database, THROUGHPUT_EVENTS, TRANSACTION_SIZE)
    written = time.time()
    complete = wait_until_delivered(results, baseline, THROUGHPUT_EVENTS, check_workers, THROUGHPUT_TIME_LIMIT_S)
    if complete:
        finished = {s: results.last_processed_ts(s, first_id) - started for s in CONSUMERS}
        elapsed = max(finished.values())
        delivered = THROUGHPUT_EVENTS
    else:  # the rate so far, of the slowest consumer
        elapsed = time.time() - started
        delivered = min(results.processed(s) - baseline[s] for s in CONSUMERS)
        finished = {s: elapsed for s in CONSUMERS}
    cpu = {name: cpu_seconds(process.pid) - cpu_before[name] for name, process in workers.items()}
    figures = {
        "events": THROUGHPUT_EVENTS,
        "complete": complete,
        "elapsed_s": elapsed,
        "events_per_s": delivered / elapsed,
        "deliveries_per_s": len(CONSUMERS) * delivered / elapsed,
        "outbox_writes_per_s": THROUGHPUT_EVENTS / (written - started),
        "relay_published_per_s": THROUGHPUT_EVENTS / ((results.last_published_ts(first_id) or time.time()) - started),
        "per_consumer_events_per_s": {s: (results.processed(s) - baseline[s]) / t for s, t in finished.items()},
        # CPU time each worker spent per event: noise on the machine does not change it.
        "cpu_ms_per_event": {name: 1000 * seconds / delivered for name, seconds in cpu.items()} if delivered else {},
    }
    say(
        f"throughput: {figures['events_per_s']:,.0f} events/s over {elapsed:.1f}s"
        + ("" if complete else " (timed out)")
    )
    return figures


def measure_latency(database, results: Results, check_workers) -> dict:
    first_id = results.last_outbox_id()
    baseline = {s: results.processed(s) for s in CONSUMERS}
    say(f"latency: {LATENCY_RATE} events/s for {LATENCY_SECONDS}s")
    sent, achieved = write_paced(database, LATENCY_RATE, LATENCY_SECONDS)
    complete = wait_until_delivered(results, baseline, sent, check_workers, LATENCY_DRAIN_LIMIT_S)
    per_consumer = {s: results.latencies(s, first_id) for s in CONSUMERS}
    everything = [value for values in per_consumer.values() for value in values]
    if not everything:
        raise BenchError("latency: not one event reached a consumer")
    figures = {
        "events": sent,
        "complete": complete,  # if not, the figures leave out the events still under way
        "achieved_rate": achieved,
        "p50_ms": percentile(everything, 50) * 1000,
        "p99_ms": percentile(everything, 99) * 1000,
        "max_ms": max(everything) * 1000,
        "per_consumer_p99_ms": {s: percentile(v, 99) * 1000 for s, v in per_consumer.items() if v},
    }
    say(f"latency: p50 {figures['p50_ms']:,.0f} ms, p99 {figures['p99_ms']:,.0f} ms")
    return figures


def run(processes: Processes, env: dict[str, str], var_dir: Path) -> dict:
    check_queues_idle(env["AMQP_URL"])
    workers = start_workers(processes, env, var_dir, services=CONSUMERS)

    def check_workers():
        for name, process in workers.items():
            processes.check_alive(name, process)

    database = Database(database_url_for("tickets"))
    results = Results(var_dir)
    report: dict = {"problems": []}
    try:
        written_before = results.last_outbox_id()
        report["drain"], relay = measure_drain(database, results, processes, env, var_dir, check_workers)
        workers.update(relay)
        if report["drain"]["complete"]:
            report["throughput"] = measure_throughput(database, results, workers, check_workers)
        if report.get("throughput", {}).get("complete"):
            report["latency"] = measure_latency(database, results, check_workers)
        else:
            say("latency skipped: the pipeline is still busy with the throughput events")

        # Every event written must reach every consumer, and the outbox must empty.
        written = results.last_outbox_id() - written_before
        baseline = {s: 0 for s in CONSUMERS}
        wait_until_delivered(results, baseline, written, check_workers, VERIFY_LIMIT_S)
        lost = {s: results.missing(s, written_before) for s in CONSUMERS}
        report["lost_events"] = sum(lost.values())
        if report["lost_events"]:
            report["problems"].append(f"events never reached their consumers: {lost}")
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
