"""``make bench`` (``python -m bench``): how fast the services are, beside what they run on.

Every figure is measured in the same run as the ceiling it is compared with, on the same
machine, so the ratios hold even where the absolute numbers are noisy.

Set-up. The broker is ``AMQP_URL`` if set (its event queues must be idle), else a
throwaway node started with ``deploy/local-rabbitmq.sh``. Databases are fresh SQLite files
in a temporary VAR_DIR (``DATABASE_URL`` and friends are ignored), migrated with
``python -m services setup``, which also declares the broker topology.

Scenarios, in order:

1. HTTP (wrk --latency -t2 -c32 -d10s, after a 2 s warm-up), all under gunicorn with
   ``deploy/gunicorn.conf.py``:
   - ``bare GET /``: a one-route Flask app (bench/bare_app.py), the HTTP ceiling. It is
     measured before and after the service and the better run counts, so that a noisy
     moment does not flatter the service;
   - tickets ``GET /healthz`` and ``POST /customers`` (bench/post_customer.lua), with a
     tickets database of their own.
   Ratio = service / bare. For requests/s, 1.00x means the service's own code costs
   nothing; 0.25x means it serves a quarter of what Flask + gunicorn could. For latency
   the ratio reads the other way: 4.00x means four times as slow as the bare endpoint.
2. Broker ceiling with plain pika, persistent messages to a durable quorum queue:
   - one by one: each publish waits for its confirm (3,000 messages);
   - batched: windows of 500 in flight, confirmed asynchronously (30,000 messages).
3. Events end to end: the tickets outbox relay and the three consumers run as in
   production (``python -m services.<svc>.worker relay|consume``), each its own process.
   - drain, the backbone's own capacity: 20,000 ``customer.created`` are written while
     the relay is stopped; then the relay starts, timed from its "relay ready" log line
     until all three consumers have recorded every event. Nothing else competes for the
     machine meanwhile, so this is what relay + broker + consumers carry.
   - written meanwhile: 20,000 ``customer.created`` written into the outbox through the tickets
     service layer, 200 per transaction; timed from the first insert until all three
     consumers have recorded every event in their ``processed_events``. events/s is per
     event (each is delivered 3 times: deliveries/s). Ratios are to the raw broker: an
     event costs at least one publish, so events/s over raw batched is the share of the
     broker's capacity the pipeline turns into events (1.00x: the broker is the limit).
     Beside it, to show where the time goes: "outbox writes/s" (this process standing in
     for the API; if close to events/s, the writer was the limit), "relay published/s"
     (first insert to last confirm), and the CPU time each worker used per event (less
     at the mercy of other load than the rates, though not immune to it). The budget is what 1,500 events/s leaves on
     this machine: CPUs / 1,500, for every process together (broker and writer too).
     Gives up after 150 s (marked TIMED OUT: the rate is then the slowest consumer's
     so far, and the latency scenario is skipped).
   - latency: 200 events/s for 15 s, one ``create_customer`` transaction each, then per
     event and consumer ``processed_ts - created_ts``: from the outbox insert to the
     effect committed in the consumer's database (relay, broker and consumer included).
     A pipeline slower than 200 events/s builds a backlog, and the latency grows with it.
   - at the end: every event written must have reached all three consumers ("lost") and
     left the outbox ("outbox unpublished"); both must be 0.

Targets (product brief): >= 1,500 events/s through the pipeline (shown beside both the
drain and the written-meanwhile figures; on 2 cores the second also pays for the writer);
p99 < 250 ms at 200 events/s. The "ref"
figures are the ceilings the brief expects on a 2-core machine, to spot a sick machine.

Service scenarios (tickets, call lists, inbound calls, surveys, gateway view, console, mail) follow,
then ``replicas`` (two replicas on PostgreSQL and a 3-node cluster beside one; bench/replicas.py);
at the end ``durable_writes`` (the disk's fsync, and the same writes on SQLite and on a durable PostgreSQL);
each says what it measures in its own module's docstring.

Staffing (a day's report over 1M calls) and erasure (applied in every service) are in
bench/staffing.py.

``BENCH_ONLY=name,name`` runs only those scenarios (names in ``SCENARIOS`` below).

Output: the table on stdout (progress on stderr), the same in bench/results/<UTC>.json.
Exit 0 whether or not targets are met; 1 if the bench could not measure (a process died,
events were lost or left unpublished, an endpoint answered errors); 130 on Ctrl-C. Every
process the bench started is stopped in any case. Logs of every process are in
the temporary directory, kept when something failed (or with BENCH_KEEP=1).
"""

from __future__ import annotations

import contextlib
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    call_lists,
    console,
    durable_writes,
    gateway_view,
    httpload,
    inbound_calls,
    mail,
    pipeline,
    rawbroker,
    replicas,
    report,
    staffing,
    surveys,
    tickets,
)
from bench.procs import ROOT, VENV_BIN, Processes, local_rabbitmq, run_logged, say

RESULTS_DIR = Path(__file__).parent / "results"

# (name, run(processes, env, var_dir) -> figures). ``BENCH_ONLY=http,pipeline`` runs a subset.
# A scenario may return {"rows": [report.Row, ...]} to print its own figures, and
# {"problems": [...]} for what it could not measure; the bare endpoint it compares with is
# measured in the scenario itself (``httpload.measure_bare``), in the same run.
SCENARIOS = [
    ("http", httpload.run),
    ("broker", lambda processes, env, var_dir: rawbroker.run(env["AMQP_URL"])),
    ("pipeline", pipeline.run),
    ("surveys", surveys.run),
    ("tickets", tickets.run),
    ("inbound_calls", inbound_calls.run),
    ("call_lists", call_lists.run),
    ("gateway_view", gateway_view.run),
    ("console", console.run),
    ("replicas", replicas.run),
    ("staffing_day", staffing.run),
    ("erasure", staffing.run_erasure),
    ("mail", mail.run),
    ("durable_writes", durable_writes.run),
]
TUNABLES = ("RELAY_BATCH_SIZE", "RELAY_POLL_INTERVAL", "CONSUMER_PREFETCH", "WEB_CONCURRENCY", "LOG_LEVEL")


def isolate_environment(var_dir: Path) -> dict[str, str]:
    """Point this process and every child at the bench's own databases; return the env."""
    # The replicas scenario runs on PostgreSQL: make bench's throwaway server (scripts/with-postgres.sh).
    os.environ["BENCH_POSTGRES_URL"] = os.environ.get("TEST_DATABASE_URL", "")
    for key in list(os.environ):
        if key == "DATABASE_URL" or key.endswith("_DATABASE_URL") or key in ("BIND", "BIND_HOST"):
            del os.environ[key]
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    os.environ["VAR_DIR"] = str(var_dir)
    # The services accept only signed calls (shared.auth); wrk replays one token for minutes.
    os.environ["INTERNAL_AUTH_SECRET"] = secrets.token_hex(24)
    os.environ["INTERNAL_TOKEN_MAX_AGE"] = "86400"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return dict(os.environ)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-ups below
    started = datetime.now(UTC)
    temp = Path(tempfile.mkdtemp(prefix="callcenter-bench-"))
    var_dir, logs = temp / "var", temp / "logs"
    logs.mkdir()
    env = isolate_environment(var_dir)
    processes = Processes(logs)
    own_broker = not os.environ.get("AMQP_URL")
    figures: dict = {}
    problems: list[str] = []

    def attempt(name: str, scenario) -> None:
        try:
            figures[name] = scenario()
        except Exception as error:  # record it, go on with the next scenario
            traceback.print_exc()
            problems.append(f"{name}: {error}")

    try:
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(processes.stop_all)
            if own_broker:
                os.environ["AMQP_URL"] = cleanup.enter_context(local_rabbitmq(var_dir, logs / "rabbitmq.log"))
            else:
                say("using the broker at AMQP_URL")
            env["AMQP_URL"] = os.environ["AMQP_URL"]
            say(f"temporary directory {temp}; migrating databases, declaring the topology")
            run_logged([sys.executable, "-m", "services", "setup"], env, logs / "setup.log", timeout=180)

            only = {name for name in os.environ.get("BENCH_ONLY", "").split(",") if name}
            for name, scenario in SCENARIOS:
                if not only or name in only:
                    attempt(name, lambda scenario=scenario: scenario(processes, env, var_dir))
                    problems += figures.get(name, {}).get("problems", [])
    except KeyboardInterrupt:
        say(f"interrupted; everything started is stopped. Logs: {logs}")
        return 130
    except Exception as error:
        traceback.print_exc()
        problems.append(f"set-up: {error}")

    rows = report.build_rows(figures)
    print()
    print(
        f"make bench, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {platform.python_implementation()}"
        f" {platform.python_version()}"
    )
    print(report.format_table(rows))
    context = {
        "started_utc": started.isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "broker": "local node" if own_broker else "AMQP_URL",
        "settings": {key: os.environ.get(key) for key in TUNABLES},
    }
    result_file = RESULTS_DIR / f"{started:%Y%m%dT%H%M%SZ}.json"
    report.save_json(result_file, rows, figures, context, problems)
    print(f"\nsaved {result_file.relative_to(ROOT)}")

    if problems:
        print("\nTHE BENCH FAILED to measure everything:", *problems, sep="\n  - ")
        print(f"logs kept in {logs}")
        return 1
    if os.environ.get("BENCH_KEEP"):
        print(f"logs kept in {logs}")
    else:
        shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
