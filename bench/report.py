"""The results: one row per figure, printed as a table and saved as JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

EVENTS_PER_S_TARGET = 1_500
LATENCY_P99_TARGET_MS = 250
# The ceilings the product brief (section 7) expects on a 2-core machine, for a sanity check.
BRIEF_BARE_RPS, BRIEF_ONE_BY_ONE, BRIEF_BATCHED = 2_000, 750, 5_000


@dataclass
class Row:
    scenario: str
    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None  # None: no target

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def build_rows(figures: dict) -> list[Row]:
    rows: list[Row] = []
    http, broker, pipeline = figures.get("http", {}), figures.get("broker", {}), figures.get("pipeline", {})

    bare = http.get("bare")
    if bare:
        rows += [
            Row(
                "HTTP bare GET / (best of 2)",
                "requests/s",
                bare.requests_per_s,
                "req/s",
                target=f"ref ~{BRIEF_BARE_RPS:,}",
            ),
            Row("HTTP bare GET / (best of 2)", "latency p50", bare.p50_ms, "ms"),
            Row("HTTP bare GET / (best of 2)", "latency p99", bare.p99_ms, "ms"),
        ]
    for key, scenario in (("healthz", "HTTP tickets GET /healthz"), ("post_customers", "HTTP tickets POST /customers")):
        result = http.get(key)
        if not result:
            continue
        rows += [
            Row(scenario, "requests/s", result.requests_per_s, "req/s", bare and bare.requests_per_s, "bare"),
            Row(scenario, "latency p50", result.p50_ms, "ms", bare and bare.p50_ms, "bare"),
            Row(scenario, "latency p99", result.p99_ms, "ms", bare and bare.p99_ms, "bare"),
        ]

    one, batched = broker.get("one_by_one"), broker.get("batched")
    if one:
        rows.append(Row("broker raw, one by one", "msgs/s", one, "msg/s", target=f"ref ~{BRIEF_ONE_BY_ONE:,}"))
    if batched:
        rows.append(Row("broker raw, batched", "msgs/s", batched, "msg/s", target=f"ref ~{BRIEF_BATCHED:,}"))

    def event_rates(scenario: str, figures: dict) -> list[Row]:
        """events/s against the target and both broker ceilings, and the deliveries it makes."""
        rate = figures["events_per_s"]
        met = rate >= EVENTS_PER_S_TARGET
        return [
            Row(scenario, "events/s", rate, "ev/s", batched, "raw batched", f">= {EVENTS_PER_S_TARGET:,}", met),
            Row(scenario, "events/s", rate, "ev/s", one, "raw one by one"),
            Row(scenario, "deliveries/s (x3)", 3 * rate, "del/s", batched, "raw batched"),
        ]

    drain = pipeline.get("drain", {})
    if "events_per_s" in drain:
        scenario = f"events {drain['events']:,} from a full outbox" + ("" if drain["complete"] else " (TIMED OUT)")
        rows += event_rates(scenario, drain)
        rows.append(Row(scenario, "relay published/s", drain["relay_published_per_s"], "ev/s", batched, "raw batched"))

    throughput = pipeline.get("throughput", {})
    if "events_per_s" in throughput:
        scenario = f"events {throughput['events']:,} written meanwhile"
        scenario += "" if throughput["complete"] else " (TIMED OUT)"
        rows += event_rates(scenario, throughput)
        rows += [
            Row(scenario, "outbox writes/s", throughput["outbox_writes_per_s"], "ev/s"),
            Row(scenario, "relay published/s", throughput["relay_published_per_s"], "ev/s"),
        ]
        cpu = throughput["cpu_ms_per_event"]
        consumers = [ms for name, ms in cpu.items() if name.endswith("-consume")]
        budget = 1000 * (os.cpu_count() or 1) / EVENTS_PER_S_TARGET
        rows += [
            Row(scenario, "CPU per event, relay", cpu["tickets-relay"], "ms"),
            Row(scenario, "CPU per event, a consumer", sum(consumers) / len(consumers), "ms"),
            Row(
                scenario,
                "CPU per event, all workers",
                sum(cpu.values()),
                "ms",
                target=f"budget {budget:.2f} (all processes)",
            ),
        ]
    latency = pipeline.get("latency")
    if latency:
        scenario = "events at a fixed rate"
        rows += [
            Row(scenario, "achieved rate", latency["achieved_rate"], "ev/s", target="200"),
            Row(scenario, "latency p50", latency["p50_ms"], "ms"),
            Row(
                scenario,
                "latency p99",
                latency["p99_ms"],
                "ms",
                target=f"< {LATENCY_P99_TARGET_MS}",
                met=latency["p99_ms"] < LATENCY_P99_TARGET_MS,
            ),
            Row(scenario, "latency max", latency["max_ms"], "ms"),
        ]
    if "lost_events" in pipeline:
        lost = pipeline["lost_events"]
        rows.append(Row("events, at the end", "lost", lost, "rows", target="0", met=lost == 0))
    if "unpublished_at_end" in pipeline:
        unpublished = pipeline["unpublished_at_end"]
        rows.append(
            Row("events, at the end", "outbox unpublished", unpublished, "rows", target="0", met=unpublished == 0)
        )
    for figure in figures.values():  # service scenarios print their own rows
        if isinstance(figure, dict):
            rows += [row for row in figure.get("rows", []) if isinstance(row, Row)]
    return rows


def _number(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "rows":
        return f"{value:,.0f}"
    return f"{value:,.0f} {unit}"


def format_table(rows: list[Row]) -> str:
    header = ("scenario", "figure", "value", "baseline", "ratio", "target")
    lines = [header]
    for row in rows:
        baseline = ""
        if row.baseline:
            number = f"{row.baseline:,.1f} ms" if row.unit == "ms" else f"{row.baseline:,.0f}/s"
            baseline = f"{number} {row.baseline_name}"
        target = row.target + ("" if row.met is None else ("  met" if row.met else "  MISSED"))
        lines.append(
            (
                row.scenario,
                row.figure,
                _number(row.value, row.unit),
                baseline,
                f"{row.ratio:.2f}x" if row.ratio is not None else "",
                target,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)


def save_json(path: Path, rows: list[Row], figures: dict, context: dict, problems: list[str]) -> None:
    def plain(value):
        if hasattr(value, "as_dict"):
            return value.as_dict()
        return asdict(value) if is_dataclass(value) else value  # e.g. the Rows a service scenario returns

    document = {
        **context,
        "rows": [{**asdict(row), "ratio": row.ratio} for row in rows],
        "figures": json.loads(json.dumps(figures, default=plain)),
        "problems": problems,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
