"""Who gets a ringing call: the agent the service reserves (``inbound/service.py``, from the
agents its SQL reads) is the first of the pure rule's order (``inbound/domain.py::
agent_for_ringing_call``), on a sample of agents in every state, queue and skill, for each
strategy; and the use case's events are collected without a broker."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from services.callrouting.inbound import domain, service
from services.callrouting.inbound.service import InboundConfig
from services.callrouting.models import Agent, AgentRouting
from tests.callrouting.inbound_support import DAY

CONFIG = InboundConfig(missed_offers_limit=3, offer_timeout_seconds=30)


def _sample(uow, rng: random.Random) -> list[domain.AgentSnapshot]:
    snapshots = []
    for n in range(24):
        agent_id = f"agent-{n:02}"
        state = rng.choice(("available", "available", "available", "on_break", "offline", "wrap_up"))
        skills = sorted(
            set(rng.sample(("de", "billing", "vip"), rng.randrange(0, 3))) | ({"de"} if n % 3 == 0 else set())
        )
        queues = rng.choice(([], ["support"], ["sales"], ["support", "sales"]))
        idle_since = DAY - timedelta(minutes=rng.randrange(1, 600))
        calls, talk = rng.randrange(0, 9), float(rng.randrange(0, 3600))
        uow.session.add(
            Agent(agent_id=agent_id, name=agent_id, skills=skills, state=state, state_changed_at=idle_since)
        )
        uow.session.add(
            AgentRouting(
                agent_id=agent_id,
                endpoint_kind="client",
                endpoint=agent_id,
                queues=queues,
                idle_since=idle_since,
                stats_day=DAY.date().isoformat(),
                calls_today=calls,
                talk_seconds_today=talk,
            )
        )
        snapshots.append(
            domain.AgentSnapshot(
                agent_id=agent_id,
                state=state,
                skills=frozenset(skills),
                queues=frozenset(queues),
                idle_since=idle_since,
                calls_today=calls,
                talk_seconds_today=talk,
            )
        )
    uow.commit()
    return snapshots


@pytest.mark.parametrize("strategy", ["longest_idle", "fewest_calls", "least_talk_time", "round_robin"])
def test_the_service_reserves_the_agent_the_rule_puts_first(uow_factory, strategy):
    with uow_factory("callrouting") as uow:
        snapshots = _sample(uow, random.Random(strategy))
        service.put_queue(uow, "support", {"strategy": strategy, "required_skills": ["de"]})
        uow.commit()
    rules = domain.QueueRules("support", strategy, frozenset({"de"}))
    expected = domain.agent_for_ringing_call(snapshots, rules)
    assert expected.candidates, "the sample should hold an eligible agent"
    with uow_factory("callrouting") as uow:
        decision = service.start_call(
            uow,
            call_id=f"CA-{strategy}",
            source="json",
            from_raw=None,
            to_raw=None,
            queue="support",
            at=DAY,
            config=CONFIG,
            now=DAY,
        )
    assert [offer.agent_id for offer in decision.offers] == [expected.candidates[0].agent_id]
    # the use case announced the call and the agent's reservation, collected without a broker
    assert "call.started" in uow.types() and "agent.state_changed" in uow.types()
    reserved = next(e for e in uow.committed if e.type == "agent.state_changed")
    assert (reserved.data["agent_id"], reserved.data["new_state"]) == (expected.candidates[0].agent_id, "reserved")


def test_nobody_eligible_queues_the_call_in_both(uow_factory):
    with uow_factory("callrouting") as uow:
        snapshots = _sample(uow, random.Random(3))
        service.put_queue(uow, "vip-only", {"required_skills": ["nobody-has-this"]})
        uow.commit()
    rules = domain.QueueRules("vip-only", required_skills=frozenset({"nobody-has-this"}))
    assert domain.agent_for_ringing_call(snapshots, rules).candidates == ()
    with uow_factory("callrouting") as uow:
        decision = service.start_call(
            uow,
            call_id="CA-q",
            source="json",
            from_raw=None,
            to_raw=None,
            queue="vip-only",
            at=DAY,
            config=CONFIG,
            now=DAY,
        )
    assert decision.offers == () and decision.call.state == "queued"
    assert uow.types() == ["call.started"]
