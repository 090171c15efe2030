"""The hand-out under load and over time: 32 agents in parallel processes never share an entry and
lose none, on SQLite and PostgreSQL; the order is uniformly random (chi-square)."""

from __future__ import annotations

import multiprocessing
from collections import Counter

from sqlalchemy import func, select

from services.callrouting.models import CallAttempt, CallEntry
from shared.db import Database
from tests.callrouting.call_list_support import load_due_entries, make_agent, make_campaign, next_call, record_outcome
from tests.support.uniformity import assert_uniform

AGENTS = 32
ROUNDS = 25


def agent_at_work(url: str, agent_id: str, rounds: int | None, results) -> None:
    """One agent in its own process with its own engine: next call, outcome; ``rounds`` times or
    until nothing is due."""
    database = Database(url)
    handed_to_me = []
    try:
        while rounds is None or len(handed_to_me) < rounds:
            handed = next_call(database, agent_id)
            if handed is None:
                break
            handed_to_me.append(handed.entry.entry_id)
            record_outcome(database, handed.entry.entry_id, agent_id=agent_id, outcome="reached")
    finally:
        database.dispose()
        results.put((agent_id, handed_to_me))


def agents_at_work(database: Database, rounds: int | None) -> dict[str, list[str]]:
    agents = [f"agent-{n}" for n in range(AGENTS)]
    for agent_id in agents:
        make_agent(database, agent_id)
    database.dispose()  # the children open their own connections
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=agent_at_work, args=(database.url, a, rounds, results)) for a in agents]
    for worker in workers:
        worker.start()
    handed = dict(results.get(timeout=240) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    return handed


def states_and_attempts(database: Database):
    with database.engine.connect() as connection:
        states = dict(connection.execute(select(CallEntry.state, func.count()).group_by(CallEntry.state)).all())
        attempts = connection.execute(select(CallAttempt.entry_id, CallAttempt.agent_id)).all()
    return states, attempts


# SQLite takes one writer at a time, and 32 processes on a small machine queue for it: the
# 10,000-entry pool is worked 25 calls per agent (800 hand-outs from all 10,000), and the
# drain to the last entry is shown on a pool of 384 (12 per agent), to keep this in seconds.
def test_32_agents_in_parallel_processes_pulling_from_10000_due_entries_never_share_one(database_factory):
    database = database_factory.migrated("callrouting")
    campaign = make_campaign(database)
    loaded = load_due_entries(database, campaign.campaign_id, 10_000)
    handed = agents_at_work(database, rounds=ROUNDS)

    every_hand_out = [entry for entries in handed.values() for entry in entries]
    assert len(every_hand_out) == ROUNDS * AGENTS
    assert len(every_hand_out) == len(set(every_hand_out)), "an entry went to two agents"
    assert set(every_hand_out) <= set(loaded)
    states, attempts = states_and_attempts(database)
    # Every entry is accounted for: handed out and completed once, or still in the pool.
    assert states == {"completed": ROUNDS * AGENTS, "pending": 10_000 - ROUNDS * AGENTS}
    owner = {entry: agent for agent, entries in handed.items() for entry in entries}
    assert sorted(entry for entry, _ in attempts) == sorted(every_hand_out)
    assert all(owner[entry] == agent for entry, agent in attempts)


def test_32_agents_in_parallel_processes_drain_a_pool_losing_no_entry(database_factory):
    database = database_factory.migrated("callrouting")
    campaign = make_campaign(database)
    loaded = load_due_entries(database, campaign.campaign_id, 12 * AGENTS)
    handed = agents_at_work(database, rounds=None)

    every_hand_out = [entry for entries in handed.values() for entry in entries]
    assert len(every_hand_out) == len(set(every_hand_out)), "an entry went to two agents"
    assert set(every_hand_out) == set(loaded), "an entry was never handed out"
    assert sum(1 for entries in handed.values() if entries) > AGENTS // 2  # they really worked in parallel
    states, attempts = states_and_attempts(database)
    assert states == {"completed": len(loaded)}
    owner = {entry: agent for agent, entries in handed.items() for entry in entries}
    assert len(attempts) == len(loaded) and all(owner[entry] == agent for entry, agent in attempts)


# The hand-out is drawn from os.urandom, never a fixed seed (tests/support/uniformity.py says why
# the test still fails by chance only once in a million runs). It has power: picking the first
# shuffle key after a random point, the obvious cheap way, favours the entries behind wide gaps
# between keys by about ±100% on 20 entries, and fails it by a chi-square of thousands
# (tests/callrouting/test_call_lists_domain.py shows the same test rejecting it).
def test_the_hand_out_order_is_uniformly_random(database_factory):
    database = database_factory.migrated("callrouting")
    campaign = make_campaign(database)
    make_agent(database)
    loaded = load_due_entries(database, campaign.campaign_id, 20)
    draws = 1200  # 60 per entry

    def draw_counts() -> list[int]:
        counts = Counter()
        for _ in range(draws):
            # A lease of 0 s has lapsed by the next request: each draw is made from all 20 again.
            handed = next_call(database, "agent-1", lease_seconds=0)
            counts[handed.entry.entry_id] += 1
        assert set(counts) == set(loaded)
        return [counts[entry] for entry in loaded]

    assert_uniform(draw_counts)
