"""Surveys scenario (``BENCH_ONLY=surveys``): recording responses, and the metrics query at scale.

1. Submission: wrk (``-t2 -c32``, bench/post_survey_response.lua) POSTs complete responses to
   ``/responses`` under gunicorn, each for a different call, one in four a low score: the
   response row, 50 rollup increments (5 answers x day and week rows x 5 dimensions), the
   counts and one or two outbox events per request.
   Compared with the bare endpoint measured in the same run; target >= 0.40x its requests/s.
2. Metrics over 1,000,000 responses: a fresh surveys database is loaded by direct SQL with
   1,000,000 complete responses over 26 weeks (12 products, 40 agents, 6 campaigns, 3
   channels) and the rollups (day and week rows) and counts those responses make. The rollups are built in bulk
   with numpy (the service's per-response code would take minutes for a million); before
   measuring, the stored rollups of three random days and of a week are checked against the service's own
   ``domain.recompute_rollups`` over those days' responses read back from the database, and
   the query's total n against the responses loaded, so the figures are the real ones. Then
   ``GET /survey-metrics?from=..&to=..&group_by=week,product`` (312 groups x 5 questions) is
   requested one at a time by a single client, 100 times after 3 warm-ups: p50/p99 latency
   until the whole answer has arrived (the warm-ups parse it and check it). Target p99 < 100 ms.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
import urllib.request
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from bench import httpload
from bench.procs import BenchError, Processes, say, signed_headers
from bench.report import Row

RESPONSES = 1_000_000
FIRST_DAY = date(2026, 1, 5)  # a Monday
DAYS = 26 * 7
PRODUCTS = [f"Product {n:02d}" for n in range(12)]
AGENTS = [f"agent-{n:02d}" for n in range(40)]
CAMPAIGNS = [str(uuid.UUID(int=n + 1)) for n in range(6)]
CHANNELS = ["agent", "keypad", "link"]
# A plausible skew towards high scores, 1..10.
SCORE_WEIGHTS = np.array([0.02, 0.02, 0.03, 0.04, 0.06, 0.08, 0.15, 0.2, 0.2, 0.2])
QUERIES = 100
SUBMIT_LUA = Path(__file__).parent / "post_survey_response.lua"
P99_TARGET_MS = 100
RATIO_TARGET = 0.40


def run(processes: Processes, env: dict[str, str], var_dir: Path) -> dict:
    bare = httpload.measure_bare(processes, env, "bare GET / (surveys)")
    submit = measure_submission(processes, env, var_dir)
    query = measure_metrics(processes, env, var_dir)
    ratio = submit.requests_per_s / bare.requests_per_s
    scenario = "surveys POST /responses"
    big = "surveys metrics, 1,000,000 responses, week x product"
    rows = [
        Row(
            scenario,
            "requests/s",
            submit.requests_per_s,
            "req/s",
            bare.requests_per_s,
            "bare",
            f">= {RATIO_TARGET:.2f}x bare",
            ratio >= RATIO_TARGET,
        ),
        Row(scenario, "latency p50", submit.p50_ms, "ms", bare.p50_ms, "bare"),
        Row(scenario, "latency p99", submit.p99_ms, "ms", bare.p99_ms, "bare"),
        Row(big, "latency p50", query["p50_ms"], "ms"),
        Row(
            big,
            "latency p99",
            query["p99_ms"],
            "ms",
            target=f"< {P99_TARGET_MS}",
            met=query["p99_ms"] < P99_TARGET_MS,
        ),
        Row(big, "rollup rows", query["rollup_rows"], "rows"),
        Row(big, "groups in the answer", query["groups"], "rows"),
    ]
    return {"rows": rows, "bare": bare, "submit": submit, "metrics": query}


def _service_env(env: dict[str, str], var_dir: Path, label: str) -> dict[str, str]:
    home = var_dir / label
    metrics_dir = home / "prometheus"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    return dict(env, SERVICE="surveys", VAR_DIR=str(home), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))


def measure_submission(processes: Processes, env: dict[str, str], var_dir: Path) -> httpload.WrkResult:
    service_env = _service_env(env, var_dir, "surveys-submit")
    server, url = httpload.start_server(
        processes, "surveys-submit", "services.surveys.app:create_app()", service_env, "/healthz"
    )
    try:
        return httpload.measure("surveys POST /responses", f"{url}/responses", SUBMIT_LUA)
    finally:
        processes.stop(server)


def measure_metrics(processes: Processes, env: dict[str, str], var_dir: Path) -> dict:
    service_env = _service_env(env, var_dir, "surveys-metrics")
    database_file = Path(service_env["VAR_DIR"]) / "surveys.db"
    _migrate(database_file)
    started = time.perf_counter()
    rollup_rows = bulk_load(database_file)
    say(
        f"surveys: loaded {RESPONSES:,} responses and {rollup_rows:,} rollup rows"
        f" in {time.perf_counter() - started:.0f} s"
    )
    check_rollups(database_file, days=3)
    server, url = httpload.start_server(
        processes, "surveys-metrics", "services.surveys.app:create_app()", service_env, "/healthz"
    )
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    query = f"{url}/survey-metrics?from={FIRST_DAY.isoformat()}&to={last.isoformat()}&group_by=week,product"
    try:
        for _ in range(3):
            answer = _get(query)
        total = sum(q["n"] for group in answer["groups"] for q in group["questions"] if q["key"] == "product")
        if total != RESPONSES:
            raise BenchError(f"surveys metrics: n over all groups is {total:,}, expected {RESPONSES:,}")
        latencies = []
        for _ in range(QUERIES):
            began = time.perf_counter()
            _fetch(query)  # the whole answer received; parsing it is the client's work, not the query's
            latencies.append((time.perf_counter() - began) * 1000)
    finally:
        processes.stop(server)
    latencies.sort()
    result = {
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
        "groups": len(answer["groups"]),
        "rollup_rows": rollup_rows,
    }
    say(f"surveys metrics: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms over {QUERIES} queries")
    return result


def _get(url: str) -> dict:
    return json.loads(_fetch(url))


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=signed_headers()), timeout=30) as response:
        if response.status != 200:
            raise BenchError(f"surveys metrics answered {response.status}")
        return response.read()


def _migrate(database_file: Path) -> None:
    from services.surveys.models import MIGRATIONS
    from shared.db import Database, migrate

    database = Database(f"sqlite:///{database_file}")
    migrate(database, MIGRATIONS)
    database.dispose()


def bulk_load(database_file: Path) -> int:
    """1,000,000 complete responses, their rollups and counts, by direct SQL; the rollup row count."""
    from services.surveys import domain

    rng = np.random.default_rng(20261124)
    day = rng.integers(0, DAYS, RESPONSES)
    attributes = {
        "product": (rng.integers(0, len(PRODUCTS), RESPONSES), PRODUCTS),
        "agent": (rng.integers(0, len(AGENTS), RESPONSES), AGENTS),
        "campaign": (rng.integers(0, len(CAMPAIGNS), RESPONSES), CAMPAIGNS),
        "channel": (rng.integers(0, len(CHANNELS), RESPONSES), CHANNELS),
    }
    keys = [question["key"] for question in domain.DEFAULT_QUESTIONS]
    kinds = {question["key"]: question["kind"] for question in domain.DEFAULT_QUESTIONS}
    scores = rng.choice(np.arange(1, 11), size=(RESPONSES, len(keys)), p=SCORE_WEIGHTS)
    days = [(FIRST_DAY + timedelta(days=int(n))).isoformat() for n in range(DAYS)]
    template = domain.DEFAULT_TEMPLATE_ID

    connection = sqlite3.connect(database_file)
    connection.execute("PRAGMA synchronous=OFF")
    with connection:
        product, agent, campaign, channel = (
            attributes[name][0] for name in ("product", "agent", "campaign", "channel")
        )
        batch = []
        for i in range(RESPONSES):
            moment = f"{days[day[i]]} 12:00:00.000000"
            answers = dict(zip(keys, scores[i].tolist(), strict=True))
            batch.append(
                (
                    str(uuid.UUID(int=i + 1)),
                    template,
                    1,
                    str(uuid.UUID(int=(i % 200_000) + 10**9)),
                    CHANNELS[channel[i]],
                    "complete",
                    AGENTS[agent[i]],
                    f"bench-{i}",
                    CAMPAIGNS[campaign[i]],
                    PRODUCTS[product[i]],
                    json.dumps(answers),
                    moment,
                    moment,
                    days[day[i]],
                )
            )
            if len(batch) == 50_000:
                _insert_responses(connection, batch)
                batch = []
        _insert_responses(connection, batch)

        rollups, counts = [], []
        dimensions = {"all": (np.zeros(RESPONSES, dtype=np.int64), [""]), **attributes}
        weights = np.arange(1, 11)
        weeks = [days[n] for n in range(0, DAYS, 7)]  # FIRST_DAY is a Monday
        for dimension, (values, names) in dimensions.items():
            buckets = day * len(names) + values
            completed = np.bincount(buckets, minlength=DAYS * len(names)).reshape(DAYS, len(names))
            for d, v in zip(*np.nonzero(completed), strict=True):
                counts.append(
                    (dimension, days[d], names[v], template, "completed", domain.week_of(days[d]), int(completed[d, v]))
                )
            for span, starts, index in (("day", days, day), ("week", weeks, day // 7)):
                span_buckets = index * len(names) + values
                for q, key in enumerate(keys):
                    size = len(starts) * len(names) * 10
                    per_score = np.bincount(span_buckets * 10 + (scores[:, q] - 1), minlength=size)
                    per_score = per_score.reshape(len(starts), len(names), 10)
                    for d, v in zip(*np.nonzero(per_score.sum(axis=2)), strict=True):
                        c = per_score[d, v]
                        rollups.append(
                            (
                                span,
                                dimension,
                                starts[d],
                                names[v],
                                template,
                                key,
                                kinds[key],
                                int(c.sum()),
                                int(c @ weights),
                                int(c @ (weights * weights)),
                                *(int(x) for x in c),
                            )
                        )
        # The rollups the metrics read (per template, question and kind); the legacy survey_rollups
        # only serves the previous release during an upgrade and is left empty here.
        connection.executemany(f"INSERT INTO survey_answer_rollups VALUES ({', '.join('?' * 20)})", rollups)
        connection.executemany(
            "INSERT INTO survey_counts (dimension, day, value, template_id, measure, week, count)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            counts,
        )
    connection.execute("ANALYZE")
    connection.close()
    return len(rollups)


def _insert_responses(connection: sqlite3.Connection, rows: list[tuple]) -> None:
    connection.executemany(
        "INSERT INTO survey_responses (response_id, template_id, template_version, customer_id, channel, status,"
        " agent_id, call_id, campaign_id, product, answers, language, started_at, completed_at, day)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'en', ?, ?, ?)",
        rows,
    )


def check_rollups(database_file: Path, days: int) -> None:
    """The bulk-built rollups of a few days, and of a week, equal the service's own recomputation
    (``domain.recompute_rollups``) from the responses stored for them."""
    from services.surveys import domain

    connection = sqlite3.connect(database_file)
    connection.row_factory = sqlite3.Row
    picked = random.Random(7).sample(range(DAYS), days)
    default = domain.Template.of(domain.DEFAULT_TEMPLATE_ID, 1, domain.DEFAULT_QUESTIONS)
    templates = {(default.template_id, 1): default}
    checks = [("day", [(FIRST_DAY + timedelta(days=n)).isoformat()]) for n in picked]
    monday = FIRST_DAY + timedelta(days=7 * (picked[0] // 7))
    checks.append(("week", [(monday + timedelta(days=n)).isoformat() for n in range(7)]))
    try:
        for span, period in checks:
            marks = ", ".join("?" * len(period))
            responses = [
                {
                    "template_id": row["template_id"],
                    "template_version": row["template_version"],
                    "day": row["day"],
                    "answers": json.loads(row["answers"]),
                    "product": row["product"],
                    "agent": row["agent_id"],
                    "campaign": row["campaign_id"],
                    "channel": row["channel"],
                }
                for row in connection.execute(f"SELECT * FROM survey_responses WHERE day IN ({marks})", period)
            ]
            expected = {
                key: (sums.n, sums.total, sums.squares, sums.counts)
                for key, sums in domain.recompute_rollups(responses, templates).items()
                if key[0] == span
            }
            stored = {
                (
                    row["span"],
                    row["dimension"],
                    row["day"],
                    row["value"],
                    row["template_id"],
                    row["question"],
                    row["kind"],
                ): (
                    row["n"],
                    row["total"],
                    row["squares"],
                    [row[f"c{score}"] for score in range(1, 11)],
                )
                for row in connection.execute(
                    "SELECT * FROM survey_answer_rollups WHERE span = ? AND day = ?", (span, period[0])
                )
            }
            if stored != expected:
                raise BenchError(f"surveys: bulk-loaded {span} rollups of {period[0]} differ from a recomputation")
    finally:
        connection.close()
