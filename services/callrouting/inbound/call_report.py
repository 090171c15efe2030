"""The daily call report's formulas (product brief, section 4), with no I/O.

For a day and a queue, with T the service-level threshold (20 s by default) and t_s the
short-abandon cutoff (5 s, applied when a call ends: its result is then ``short_abandon``):

- offered = entered queue - abandoned within t_s
- abandon rate = abandoned after waiting >= t_s / offered
- ASA = sum(answered_at - enqueued_at) / answered
- service level = answered within T / (answered + abandoned after T)
- AHT = sum(talk + hold + after-call work) / handled (hold is not reported by the phone
  system, so it counts as talk)
- "who took the most calls" = answered calls per agent, ties broken by lower AHT

A call counts in the day (and hour, UTC) it entered the queue, once it is over: abandoned
calls when the caller hangs up, answered ones when they end; "handled" are those whose
wrap-up is done as well, so AHT includes the after-call work. Queue timeouts (the queue
gave up on the caller) count as offered, and neither as answered nor as abandoned.

The service layer gets ``Counts`` from one SQL aggregation over the day's calls (see
``views.daily_report``); ``Counts.of`` computes the same from call records in memory, the
definition the tests hold the SQL to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from .domain import ABANDONED, ANSWERED, SHORT_ABANDON, TIMEOUT

SERVICE_LEVEL_SECONDS = 20
SHORT_ABANDON_SECONDS = 5


@dataclass(frozen=True)
class CallRow:
    """What the report reads of one call."""

    hour: int
    result: str | None  # None while the call is still going
    wait_seconds: float | None
    talk_seconds: float | None = None
    wrap_up_seconds: float | None = None
    handled: bool = False  # answered and wrap-up done
    agent_id: str | None = None
    reason: str | None = None


@dataclass
class Counts:
    """Sums that every figure is a ratio of; they add up across hours, agents and reasons."""

    entered: int = 0
    short_abandoned: int = 0
    abandoned: int = 0
    abandoned_after_threshold: int = 0
    timed_out: int = 0
    answered: int = 0
    answered_within_threshold: int = 0
    answer_wait_seconds: float = 0.0
    talk_seconds: float = 0.0
    handled: int = 0
    handle_seconds: float = 0.0

    @classmethod
    def of(cls, rows: Iterable[CallRow], threshold: float = SERVICE_LEVEL_SECONDS) -> Counts:
        counts = cls()
        for row in rows:
            if row.result is None:
                continue
            counts.entered += 1
            wait = row.wait_seconds or 0.0
            if row.result == SHORT_ABANDON:
                counts.short_abandoned += 1
            elif row.result == ABANDONED:
                counts.abandoned += 1
                counts.abandoned_after_threshold += wait > threshold
            elif row.result == TIMEOUT:
                counts.timed_out += 1
            elif row.result == ANSWERED:
                counts.answered += 1
                counts.answered_within_threshold += wait <= threshold
                counts.answer_wait_seconds += wait
                counts.talk_seconds += row.talk_seconds or 0.0
                if row.handled:
                    counts.handled += 1
                    counts.handle_seconds += (row.talk_seconds or 0.0) + (row.wrap_up_seconds or 0.0)
        return counts

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def figures(counts: Counts) -> dict:
    """The report's figures from the sums; a ratio with nothing to divide by is null, not 0."""
    offered = counts.entered - counts.short_abandoned
    return {
        "entered": counts.entered,
        "offered": offered,
        "answered": counts.answered,
        "abandoned": counts.abandoned,
        "short_abandoned": counts.short_abandoned,
        "timed_out": counts.timed_out,
        "abandon_rate": _ratio(counts.abandoned, offered),
        "asa_seconds": _ratio(counts.answer_wait_seconds, counts.answered),
        "service_level": _ratio(counts.answered_within_threshold, counts.answered + counts.abandoned_after_threshold),
        "handled": counts.handled,
        "aht_seconds": _ratio(counts.handle_seconds, counts.handled),
    }


def agent_figures(agent_id: str, counts: Counts) -> dict:
    return {
        "agent_id": agent_id,
        "calls": counts.answered,
        "talk_seconds": counts.talk_seconds,
        "handled": counts.handled,
        "aht_seconds": _ratio(counts.handle_seconds, counts.handled),
    }


def rank_agents(per_agent: dict[str, Counts]) -> list[dict]:
    """Agents by answered calls, most first; ties by lower AHT (an agent with no AHT yet last), then id."""
    rows = [agent_figures(agent_id, counts) for agent_id, counts in per_agent.items()]
    return sorted(
        rows,
        key=lambda row: (-row["calls"], row["aht_seconds"] is None, row["aht_seconds"] or 0.0, row["agent_id"]),
    )


CSV_COLUMNS = (
    "hour",
    "entered",
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "timed_out",
    "abandon_rate",
    "asa_seconds",
    "service_level",
    "handled",
    "aht_seconds",
)
