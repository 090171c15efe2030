"""Inbound routing rules (services/callrouting/inbound/domain.py), without a database: each strategy,
eligibility and sticky routing, the agent state machine, and folding callbacks in any order."""

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from services.callrouting.inbound import domain
from services.callrouting.inbound.domain import AgentSnapshot, Callback, QueueRules

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def agent(agent_id, idle_minutes=0, calls=0, talk=0.0, skills=(), queues=(), state="available"):
    return AgentSnapshot(
        agent_id=agent_id,
        state=state,
        skills=frozenset(skills),
        queues=frozenset(queues),
        idle_since=T0 - timedelta(minutes=idle_minutes),
        calls_today=calls,
        talk_seconds_today=talk,
    )


def ids(agents):
    return [a.agent_id for a in agents]


def test_longest_idle_offers_the_agent_waiting_longest_first():
    agents = [agent("a", idle_minutes=1), agent("b", idle_minutes=9), agent("c", idle_minutes=4)]
    assert ids(domain.longest_idle(agents)) == ["b", "c", "a"]


def test_longest_idle_compares_naive_and_aware_times_as_utc():
    naive = AgentSnapshot("naive", idle_since=datetime(2026, 11, 23, 8, 0))
    aware = AgentSnapshot("aware", idle_since=datetime(2026, 11, 23, 9, 30, tzinfo=UTC) - timedelta(hours=1))
    assert ids(domain.longest_idle([aware, naive])) == ["naive", "aware"]


def test_round_robin_continues_after_the_last_agent_offered_and_wraps_round():
    agents = [agent("c"), agent("a"), agent("b")]
    assert ids(domain.round_robin(agents)) == ["a", "b", "c"]
    assert ids(domain.round_robin(agents, last_agent_id="a")) == ["b", "c", "a"]
    assert ids(domain.round_robin(agents, last_agent_id="c")) == ["a", "b", "c"]
    # the last agent may have gone on break meanwhile: continue after where they were
    assert ids(domain.round_robin([agent("a"), agent("c")], last_agent_id="b")) == ["c", "a"]


def test_round_robin_gives_every_agent_a_turn():
    agents = [agent(name) for name in "abcd"]
    last, order = None, []
    for _ in range(8):
        last = domain.round_robin(agents, last_agent_id=last)[0].agent_id
        order.append(last)
    assert order == list("abcdabcd")


def test_fewest_calls_first_and_ties_go_to_the_longest_idle():
    agents = [
        agent("a", calls=3, idle_minutes=9),
        agent("b", calls=1, idle_minutes=1),
        agent("c", calls=1, idle_minutes=5),
    ]
    assert ids(domain.fewest_calls(agents)) == ["c", "b", "a"]


def test_least_talk_time_first_and_ties_go_to_the_longest_idle():
    agents = [agent("a", talk=600), agent("b", talk=120, idle_minutes=1), agent("c", talk=120, idle_minutes=2)]
    assert ids(domain.least_talk_time(agents)) == ["c", "b", "a"]


def test_random_order_is_a_permutation_and_every_agent_comes_first_about_equally_often():
    agents = [agent(name) for name in "abcd"]
    rng = random.Random(7)
    firsts = Counter(domain.random_order(agents, rng=rng)[0].agent_id for _ in range(4000))
    assert sorted(ids(domain.random_order(agents, rng=rng))) == list("abcd")
    assert set(firsts) == set("abcd")
    assert all(850 <= count <= 1150 for count in firsts.values()), firsts


def test_ring_all_plans_every_eligible_agent_at_once():
    agents = [agent("a", idle_minutes=1), agent("b", idle_minutes=5), agent("off", state="on_break")]
    plan = domain.agent_for_ringing_call(agents, QueueRules("default", "ring_all"))
    assert plan.ring_all and ids(plan.candidates) == ["b", "a"]


@pytest.mark.parametrize("strategy", domain.STRATEGIES)
def test_every_strategy_only_ever_offers_eligible_agents(strategy):
    agents = [
        agent("ok", skills={"de", "billing"}),
        agent("busy", skills={"de", "billing"}, state="on_call"),
        agent("no_skill", skills={"de"}),
        agent("other_queue", skills={"de", "billing"}, queues={"sales"}),
        agent("serves_it", skills={"de", "billing", "x"}, queues={"support", "sales"}),
    ]
    plan = domain.agent_for_ringing_call(agents, QueueRules("support", strategy, frozenset({"de", "billing"})))
    assert sorted(ids(plan.candidates)) == ["ok", "serves_it"]


def test_nobody_eligible_means_an_empty_plan():
    plan = domain.agent_for_ringing_call([agent("a", state="on_break")], QueueRules("default"))
    assert plan.candidates == ()


def test_sticky_routing_offers_the_callers_last_agent_first_when_free():
    agents = [agent("a", idle_minutes=10), agent("b", idle_minutes=1)]
    plan = domain.agent_for_ringing_call(agents, QueueRules("default"), sticky_agent_id="b")
    assert plan.sticky and ids(plan.candidates) == ["b", "a"]
    assert not plan.ring_all


def test_sticky_routing_falls_back_to_the_strategy_when_that_agent_is_busy_or_unqualified():
    agents = [agent("a", idle_minutes=10), agent("b", state="on_call"), agent("c", skills=())]
    plan = domain.agent_for_ringing_call(agents, QueueRules("default"), sticky_agent_id="b")
    assert not plan.sticky and ids(plan.candidates) == ["a", "c"]
    skilled = domain.agent_for_ringing_call(
        agents, QueueRules("default", required_skills=frozenset({"x"})), sticky_agent_id="a"
    )
    assert skilled.candidates == ()


@pytest.mark.parametrize("old", ["offline", "available", "on_break"])
@pytest.mark.parametrize("new", domain.AGENT_SETTABLE_STATES)
def test_an_agent_moves_freely_between_offline_available_and_break(old, new):
    domain.check_agent_change(old, new)


@pytest.mark.parametrize("old", ["reserved", "on_call", "wrap_up"])
def test_an_agent_held_by_the_engine_cannot_change_their_state(old):
    with pytest.raises(domain.IllegalTransition):
        domain.check_agent_change(old, "available")


@pytest.mark.parametrize("new", ["reserved", "on_call", "wrap_up"])
def test_only_the_engine_puts_an_agent_in_reserved_on_call_or_wrap_up(new):
    with pytest.raises(domain.IllegalTransition):
        domain.check_agent_change("available", new)


def test_missing_offers_in_a_row_puts_the_agent_on_break_at_the_limit():
    assert [domain.after_missed_offer(n, 3) for n in (1, 2, 3, 4)] == [
        "available",
        "available",
        "on_break",
        "on_break",
    ]
    assert domain.after_missed_offer(10, 0) == "available"  # 0: never


def at(seconds):
    return T0 + timedelta(seconds=seconds)


ANSWERED_CALL = [
    Callback(domain.RINGING, at(0), 0, "ann"),
    Callback(domain.CONNECTED, at(12), 1, "ann"),
    Callback(domain.TALK_ENDED, at(200), 2, "ann", talk_seconds=188),
    Callback(domain.CALLER_LEFT, at(201), 3),
]


def test_the_facts_of_a_call_are_the_same_whatever_order_its_callbacks_arrive_in():
    expected = domain.fold(ANSWERED_CALL)
    assert (expected.answered_at, expected.agent_id, expected.talk_ended_at) == (at(12), "ann", at(200))
    for order in itertools.permutations(ANSWERED_CALL):
        assert domain.fold(order) == expected


def test_a_repeated_callback_changes_nothing():
    assert domain.fold(ANSWERED_CALL + ANSWERED_CALL[1:3]) == domain.fold(ANSWERED_CALL)


def test_a_talk_ended_with_its_duration_implies_the_answer_when_connected_went_missing():
    facts = domain.fold([Callback(domain.TALK_ENDED, at(200), 2, "ann", talk_seconds=150)])
    assert (facts.answered_at, facts.agent_id, facts.talk_ended_at) == (at(50), "ann", at(200))


def test_the_caller_leaving_after_the_answer_ends_the_talk_and_without_one_is_an_abandon():
    talked = domain.fold([Callback(domain.CONNECTED, at(5), 1, "ann"), Callback(domain.CALLER_LEFT, at(90), 3)])
    assert talked.answered and talked.talk_ended_at == at(90) and talked.over
    left = domain.fold([Callback(domain.RINGING, at(0), 0), Callback(domain.CALLER_LEFT, at(30), 1)])
    assert not left.answered and left.over and left.caller_left_at == at(30)


@pytest.mark.parametrize(
    ("wait", "timed_out", "expected"),
    [(4.9, False, "short_abandon"), (5.0, False, "abandoned"), (60, False, "abandoned"), (2, True, "timeout")],
)
def test_an_unanswered_call_is_a_short_abandon_below_t_s_an_abandon_above_or_a_timeout(wait, timed_out, expected):
    assert domain.unanswered_result(wait, timed_out=timed_out, short_abandon_seconds=5) == expected
