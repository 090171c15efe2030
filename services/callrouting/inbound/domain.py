"""Inbound routing rules, with no I/O: who may take a call, in which order agents are offered
it, which agent state changes are legal, and what a call's callbacks add up to.

Everything here works on plain snapshots so each rule can be unit-tested on its own; the
service layer (``service.py``) loads the snapshots, asks these functions, and writes the
outcome with conditional updates so that concurrent requests cannot both act on one agent.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.event_catalog import AGENT_STATES

STRATEGIES = ("longest_idle", "round_robin", "fewest_calls", "least_talk_time", "random", "ring_all")
DEFAULT_STRATEGY = "longest_idle"
ENDPOINT_KINDS = ("client", "sip", "number")

# What an agent may set for themselves; the other states belong to the routing engine.
AGENT_SETTABLE_STATES = ("available", "on_break", "offline")
_SYSTEM_HELD = {"reserved": "a call is being offered", "on_call": "a call is connected", "wrap_up": "wrap-up"}

# Call results (``calls.result``).
ANSWERED, ABANDONED, SHORT_ABANDON, TIMEOUT = "answered", "abandoned", "short_abandon", "timeout"
CALL_RESULTS = (ANSWERED, ABANDONED, SHORT_ABANDON, TIMEOUT)


class IllegalTransition(Exception):
    """An agent state change the state machine does not allow (the API answers 409)."""


@dataclass(frozen=True)
class AgentSnapshot:
    """What routing needs to know about one agent, read in the routing transaction."""

    agent_id: str
    state: str = "available"
    skills: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()  # empty: serves every queue
    idle_since: datetime | None = None  # when the agent last became available
    calls_today: int = 0
    talk_seconds_today: float = 0.0


@dataclass(frozen=True)
class QueueRules:
    name: str
    strategy: str = DEFAULT_STRATEGY
    required_skills: frozenset[str] = frozenset()


# --- who may take a call ------------------------------------------------------------------


def eligible(agents: Iterable[AgentSnapshot], queue: QueueRules) -> list[AgentSnapshot]:
    """Available agents who serve the queue and have every skill it requires."""
    return [
        agent
        for agent in agents
        if agent.state == "available"
        and (not agent.queues or queue.name in agent.queues)
        and queue.required_skills <= agent.skills
    ]


# --- in which order they are offered it: one function per strategy ------------------------
# Each returns the candidates in order of preference; the service layer reserves the first
# one it can (another call may have taken the first meanwhile), or all of them for ring_all.

_NEVER = datetime.min


def longest_idle(agents: Sequence[AgentSnapshot], **_) -> list[AgentSnapshot]:
    """The agent who has been waiting longest first (Asterisk ``leastrecent``, mod_callcenter's default)."""
    return sorted(agents, key=lambda agent: (_naive(agent.idle_since) or _NEVER, agent.agent_id))


def round_robin(agents: Sequence[AgentSnapshot], *, last_agent_id: str | None = None, **_) -> list[AgentSnapshot]:
    """The next agent after the one this queue offered last, in agent id order, wrapping round."""
    ordered = sorted(agents, key=lambda agent: agent.agent_id)
    if last_agent_id is None:
        return ordered
    after = [agent for agent in ordered if agent.agent_id > last_agent_id]
    return after + [agent for agent in ordered if agent.agent_id <= last_agent_id]


def fewest_calls(agents: Sequence[AgentSnapshot], **_) -> list[AgentSnapshot]:
    """The agent who answered fewest calls today first; ties go to the longest idle."""
    idle_order = {agent.agent_id: n for n, agent in enumerate(longest_idle(agents))}
    return sorted(agents, key=lambda agent: (agent.calls_today, idle_order[agent.agent_id]))


def least_talk_time(agents: Sequence[AgentSnapshot], **_) -> list[AgentSnapshot]:
    """The agent with the least talk time today first; ties go to the longest idle."""
    idle_order = {agent.agent_id: n for n, agent in enumerate(longest_idle(agents))}
    return sorted(agents, key=lambda agent: (agent.talk_seconds_today, idle_order[agent.agent_id]))


def random_order(agents: Sequence[AgentSnapshot], *, rng: random.Random | None = None, **_) -> list[AgentSnapshot]:
    """Uniformly random order."""
    shuffled = list(agents)
    (rng or random.SystemRandom()).shuffle(shuffled)
    return shuffled


def ring_all(agents: Sequence[AgentSnapshot], **_) -> list[AgentSnapshot]:
    """Every candidate at once (the first to answer takes the call); longest idle listed first."""
    return longest_idle(agents)


ORDERINGS = {
    "longest_idle": longest_idle,
    "round_robin": round_robin,
    "fewest_calls": fewest_calls,
    "least_talk_time": least_talk_time,
    "random": random_order,
    "ring_all": ring_all,
}


@dataclass(frozen=True)
class RoutingPlan:
    """Whom to offer the call to, in order; ``ring_all`` means reserve and ring every one."""

    candidates: tuple[AgentSnapshot, ...]
    ring_all: bool = False
    sticky: bool = False


def agent_for_ringing_call(
    agents: Iterable[AgentSnapshot],
    queue: QueueRules,
    *,
    sticky_agent_id: str | None = None,
    last_agent_id: str | None = None,
    rng: random.Random | None = None,
) -> RoutingPlan:
    """Who gets a ringing call: the offer order for one call (the first is offered it).

    1. Only :func:`eligible` agents: available, serving the queue (an agent with no queues
       serves all), with every skill the queue requires.
    2. The caller's last agent (``sticky_agent_id``: who answered this customer last) first,
       alone, when eligible; the strategy's order follows should another call take them.
    3. Else the queue's strategy (:data:`ORDERINGS`: longest idle by default, round robin,
       fewest calls, least talk time, random, or ring all: every candidate at once).

    The SQL side (``service._available_agents``) reads the available agents and their
    counters; ``service._offer`` reserves the first candidate still free (a conditional
    UPDATE), or every one for ring_all. ``tests/callrouting/test_ringing_call_rule.py`` holds
    the service's reservation to this function.
    """
    candidates = eligible(agents, queue)
    ordered = ORDERINGS[queue.strategy](candidates, last_agent_id=last_agent_id, rng=rng)
    sticky = next((agent for agent in candidates if agent.agent_id == sticky_agent_id), None)
    if sticky is not None:
        # The caller's last agent alone; should another call take them meanwhile, the strategy's order follows.
        return RoutingPlan((sticky, *[agent for agent in ordered if agent is not sticky]), sticky=True)
    return RoutingPlan(tuple(ordered), ring_all=queue.strategy == "ring_all")


# --- agent states -------------------------------------------------------------------------

# The engine's transitions: (from, to) pairs it may make, and why.
SYSTEM_TRANSITIONS = {
    ("available", "reserved"),  # offered a call
    ("reserved", "on_call"),  # answered it
    ("reserved", "available"),  # the offer was missed, or the caller hung up first
    ("reserved", "on_break"),  # missed too many offers in a row
    ("on_call", "wrap_up"),  # the call ended
    ("wrap_up", "available"),  # wrap-up done or its time elapsed
}


def check_agent_change(old: str, new: str) -> None:
    """May an agent move themselves from ``old`` to ``new``? Raises IllegalTransition if not."""
    if new not in AGENT_SETTABLE_STATES:
        raise IllegalTransition(f"Only the routing engine puts an agent in {new!r}.")
    if old in _SYSTEM_HELD:
        hint = " (finish it with POST /calls/{id}/wrap-up)" if old == "wrap_up" else ""
        raise IllegalTransition(f"The agent is in {old!r} ({_SYSTEM_HELD[old]}){hint}; they cannot change it now.")
    if old not in AGENT_STATES:
        raise IllegalTransition(f"Unknown current state {old!r}.")


def after_missed_offer(missed_in_a_row: int, limit: int) -> str:
    """Where an agent goes after missing an offer: a break once they missed ``limit`` in a row."""
    return "on_break" if limit > 0 and missed_in_a_row >= limit else "available"


# --- what a call's callbacks add up to ----------------------------------------------------

# Normalised callback kinds, from either webhook.
RINGING, OFFER_MISSED, OFFER_CANCELED, CONNECTED, TALK_ENDED, CALLER_LEFT = (
    "ringing",
    "offer_missed",
    "offer_canceled",
    "connected",
    "talk_ended",
    "caller_left",
)
CALLBACK_KINDS = (RINGING, OFFER_MISSED, OFFER_CANCELED, CONNECTED, TALK_ENDED, CALLER_LEFT)


@dataclass(frozen=True)
class Callback:
    """One status report about a call, as stored: ``sequence`` orders reports of one stream."""

    kind: str
    at: datetime
    sequence: int | None = None
    agent_id: str | None = None
    talk_seconds: float | None = None  # a talk_ended that says how long the talk was
    timeout: bool = False  # a caller_left because the queue gave up on them


@dataclass
class CallFacts:
    """The call as its callbacks describe it; the same whatever order they arrived in."""

    answered_at: datetime | None = None
    agent_id: str | None = None
    talk_ended_at: datetime | None = None
    caller_left_at: datetime | None = None
    timed_out: bool = False
    missed_by: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return self.agent_id is not None

    @property
    def over(self) -> bool:
        """The caller is gone: after talking, or without an answer."""
        return self.talk_ended_at is not None or (self.caller_left_at is not None and not self.answered)


def fold(callbacks: Iterable[Callback]) -> CallFacts:
    """Combine a call's callbacks, ordered by sequence, into its facts.

    Each fact is chosen so that a late, repeated or reordered callback cannot move it: the
    answer is the earliest connection reported (its agent with it), the talk ends at the
    latest end reported, and a ``talk_ended`` that carries its duration implies the answer
    even when the ``connected`` report is missing. A caller who left after being connected
    ends the talk; without a connection they abandoned.
    """
    facts = CallFacts()
    ordered = sorted(callbacks, key=lambda callback: (callback.sequence is None, callback.sequence or 0, callback.at))
    for callback in ordered:
        if callback.kind == CONNECTED and callback.agent_id:
            _connect(facts, callback.at, callback.agent_id)
        elif callback.kind == TALK_ENDED:
            if callback.agent_id and callback.talk_seconds:
                _connect(facts, _seconds_before(callback.at, callback.talk_seconds), callback.agent_id)
            facts.talk_ended_at = _latest(facts.talk_ended_at, callback.at)
        elif callback.kind == CALLER_LEFT:
            facts.caller_left_at = _latest(facts.caller_left_at, callback.at)
            facts.timed_out = facts.timed_out or callback.timeout
        elif callback.kind == OFFER_MISSED and callback.agent_id and callback.agent_id not in facts.missed_by:
            facts.missed_by.append(callback.agent_id)
    if facts.answered and facts.talk_ended_at is None and facts.caller_left_at is not None:
        facts.talk_ended_at = facts.caller_left_at
    return facts


def _connect(facts: CallFacts, at: datetime, agent_id: str) -> None:
    if facts.answered_at is None or at < facts.answered_at:
        facts.answered_at, facts.agent_id = at, agent_id


def _latest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


def _seconds_before(moment: datetime, seconds: float) -> datetime:
    return moment - timedelta(seconds=seconds)


def waited_too_long(queue_seconds: float, max_wait_seconds: float) -> bool:
    """A caller who has waited ``max_wait_seconds`` in the queue leaves it (the call times out)."""
    return queue_seconds >= max_wait_seconds


def unanswered_result(wait_seconds: float, *, timed_out: bool, short_abandon_seconds: float) -> str:
    """Result of a call nobody answered: a queue timeout, a short abandon (< t_s), or an abandon."""
    if timed_out:
        return TIMEOUT
    return SHORT_ABANDON if wait_seconds < short_abandon_seconds else ABANDONED


def _naive(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive UTC datetimes, PostgreSQL aware ones: compare them as naive UTC.
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
