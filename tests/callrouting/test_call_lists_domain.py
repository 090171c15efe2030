"""The call lists' pure rules: calling windows across zones and DST, retries, contact frequency, the fair pick."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from scipy.stats import chisquare

from services.callrouting.outbound import domain
from tests.support.uniformity import assert_uniform

WEEKDAYS_9_TO_8 = {**{d: ["09:00", "20:00"] for d in ("mon", "tue", "wed", "thu", "fri")}, "sat": ["10:00", "16:00"]}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- calling windows ------------------------------------------------------------------------------


def test_one_instant_is_callable_in_some_zones_and_not_in_others():
    now = at("2026-11-24T15:00:00")  # a Tuesday
    zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "America/Los_Angeles", "Asia/Kolkata"]
    # Berlin 16:00, New York 10:00, Tokyo 00:00 Wednesday, Los Angeles 07:00, Kolkata 20:30
    assert domain.callable_time_zones(WEEKDAYS_9_TO_8, zones, now) == ["America/New_York", "Europe/Berlin"]


def test_the_window_start_is_inclusive_and_its_end_exclusive():
    assert domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at("2026-11-24T08:00:00"))  # 09:00 local
    assert not domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at("2026-11-24T07:59:00"))
    assert not domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at("2026-11-24T19:00:00"))  # 20:00 local
    assert domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at("2026-11-24T18:59:00"))


def test_the_weekday_is_the_customers_not_utcs():
    # Saturday 2026-11-28 15:30 local in Berlin is 14:30 UTC (window 10-16); Sunday is closed.
    assert domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at("2026-11-28T14:30:00"))
    assert not domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at("2026-11-28T15:30:00"))  # 16:30
    # Friday 23:30 UTC is already Saturday 08:30 in Tokyo: before Saturday's 10:00.
    assert not domain.is_callable(WEEKDAYS_9_TO_8, "Asia/Tokyo", at("2026-11-27T23:30:00"))
    # Monday 00:30 UTC is still Sunday evening in New York: no calls on Sunday.
    assert not domain.is_callable(WEEKDAYS_9_TO_8, "America/New_York", at("2026-11-30T00:30:00"))


def test_daylight_saving_moves_the_window_in_utc():
    # Berlin leaves CET (UTC+1) for CEST (UTC+2) on Sunday 2026-03-29.
    before, after = "2026-03-27", "2026-03-30"  # a Friday and a Monday
    assert not domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at(f"{before}T07:30:00"))  # 08:30 CET
    assert domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at(f"{after}T07:30:00"))  # 09:30 CEST
    assert domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at(f"{before}T18:30:00"))  # 19:30 CET
    assert not domain.is_callable(WEEKDAYS_9_TO_8, "Europe/Berlin", at(f"{after}T18:30:00"))  # 20:30 CEST
    # New York switched on 2026-03-08 already: for those three weeks it is 4 hours behind UTC, not 5.
    assert domain.is_callable(WEEKDAYS_9_TO_8, "America/New_York", at("2026-03-20T13:00:00"))  # 09:00 EDT
    assert not domain.is_callable(WEEKDAYS_9_TO_8, "America/New_York", at("2026-03-06T13:00:00"))  # 08:00 EST


@pytest.mark.parametrize(
    "window",
    [
        {"mon": ["9:00", "20:00"]},
        {"mon": ["09:00", "25:00"]},
        {"mon": ["20:00", "09:00"]},
        {"mon": ["09:00"]},
        {"monday": ["09:00", "17:00"]},
        {"mon": "09:00-17:00"},
        ["09:00", "17:00"],
    ],
)
def test_malformed_windows_are_named(window):
    assert domain.calling_window_errors(window)


def test_a_well_formed_window_has_no_errors():
    assert domain.calling_window_errors({**WEEKDAYS_9_TO_8, "sun": ["00:00", "24:00"]}) == []


# --- retries ------------------------------------------------------------------------------------


NOW = at("2026-11-24T10:00:00")


@pytest.mark.parametrize(
    ("outcome", "delay_minutes", "max_attempts"),
    [("no_answer", 240, 3), ("busy", 30, 5), ("voicemail", 1440, 2)],
)
def test_an_unreached_entry_is_retried_after_its_delay_until_its_limit(outcome, delay_minutes, max_attempts):
    policy = domain.complete_retry_policy(None)
    for times in range(1, max_attempts):
        step = domain.after_outcome(policy, outcome, times, NOW)
        assert (step.state, step.due_at) == ("pending", NOW + timedelta(minutes=delay_minutes))
    assert domain.after_outcome(policy, outcome, max_attempts, NOW).state == "exhausted"


def test_a_campaigns_own_rule_overrides_the_default():
    policy = domain.complete_retry_policy({"no_answer": {"delay_minutes": 60, "max_attempts": 1}})
    assert domain.after_outcome(policy, "no_answer", 1, NOW).state == "exhausted"
    assert domain.after_outcome(policy, "busy", 1, NOW).due_at == NOW + timedelta(minutes=30)


def test_a_callback_is_due_when_the_customer_asked_and_has_a_limit_too():
    policy = domain.complete_retry_policy(None)
    wanted = NOW + timedelta(days=2, hours=3)
    assert domain.after_outcome(policy, "callback_requested", 1, NOW, wanted) == domain.NextStep("pending", wanted)
    assert domain.after_outcome(policy, "callback_requested", 3, NOW, wanted).state == "exhausted"


@pytest.mark.parametrize(
    ("outcome", "state", "do_not_call"),
    [("reached", "completed", False), ("wrong_number", "cancelled", False), ("do_not_call", "cancelled", True)],
)
def test_final_outcomes(outcome, state, do_not_call):
    step = domain.after_outcome(domain.complete_retry_policy(None), outcome, 1, NOW)
    assert (step.state, step.due_at, step.do_not_call) == (state, None, do_not_call)


@pytest.mark.parametrize(
    "policy",
    [
        {"reached": {"delay_minutes": 1, "max_attempts": 1}},
        {"no_answer": {"delay_minutes": -1, "max_attempts": 3}},
        {"busy": {"delay_minutes": 30, "max_attempts": 0}},
        {"busy": {"delay_minutes": "soon", "max_attempts": 2}},
        {"busy": {"delay": 30}},
        {"busy": 30},
    ],
)
def test_malformed_retry_policies_are_named(policy):
    assert domain.retry_policy_errors(policy)


def test_contact_frequency():
    assert domain.contact_allowed(None, NOW, 30)
    assert not domain.contact_allowed(NOW - timedelta(days=29), NOW, 30)
    assert domain.contact_allowed(NOW - timedelta(days=30), NOW, 30)
    assert domain.contact_allowed(NOW - timedelta(hours=1), NOW, 0)  # 0 days: no rule


# --- the fair pick -------------------------------------------------------------------------------


class Pool:
    """An in-memory pool of entries with fixed random keys, as the database holds them."""

    def __init__(self, size: int, rng: random.Random, eligible=lambda n: True):
        self.keys = {f"e{n}": rng.random() for n in range(size) if eligible(n)}
        self.reads = 0
        self.exact = 0

    def fetch_slices(self, ranges: list[tuple[float, float]], limit: int) -> list[list[str]]:
        self.reads += 1
        slices = []
        for low, high in ranges:
            found = []
            for start, end in domain.key_ranges(low, high):
                found += [entry for entry, key in self.keys.items() if start <= key < end]
            slices.append(found[:limit])
        return slices

    def draw_exactly(self, rng) -> str | None:
        self.exact += 1
        ordered = sorted(self.keys, key=self.keys.get)
        return ordered[rng.randrange(len(ordered))] if ordered else None

    def first_at_or_after(self, rng) -> str:
        """The naive pick: the first key at or after a random point. Biased by the gap before each key."""
        start = rng.random()
        ordered = sorted(self.keys.items(), key=lambda item: item[1])
        return next((entry for entry, key in ordered if key >= start), ordered[0][0])


DRAWS = 4000  # 200 per cell for 20 entries


def chi_square_p(counts: Counter, cells: list[str]) -> float:
    return chisquare([counts[cell] for cell in cells]).pvalue


def deciles_of(picks: list[str], pool: Pool) -> list[int]:
    """Which tenth of the key order each pick falls in: uniformity over many entries."""
    order = {entry: index for index, entry in enumerate(sorted(pool.keys, key=pool.keys.get))}
    tenths = Counter(order[pick] * 10 // len(order) for pick in picks)
    return [tenths[d] for d in range(10)]


# Unseeded on purpose: a fixed seed could make any picker pass (tests/support/uniformity.py says
# how the test still fails by chance only once in a million runs).
def test_the_pick_is_uniform_over_the_eligible_entries():
    rng = random.Random()
    pool = Pool(20, rng)

    def draw_counts() -> list[int]:
        counts = Counter(
            domain.pick_uniformly(len(pool.keys), pool.fetch_slices, pool.draw_exactly, rng) for _ in range(DRAWS)
        )
        assert sum(counts.values()) == DRAWS and None not in counts
        return [counts[entry] for entry in pool.keys]

    assert_uniform(draw_counts)


def test_the_same_test_rejects_the_naive_first_key_after_a_random_point():
    """The test has power: the gap-biased pick (about ±100% between entries) fails it by far."""
    rng = random.Random()
    pool = Pool(20, rng)
    counts = Counter(pool.first_at_or_after(rng) for _ in range(DRAWS))
    assert chi_square_p(counts, list(pool.keys)) < 1e-6


def test_a_large_pool_is_picked_from_slices_without_scanning_it():
    rng = random.Random()
    pool = Pool(5000, rng, eligible=lambda n: n % 3 == 0)  # a third of them callable now
    draws = 500

    def draw_counts() -> list[int]:
        pool.reads = 0
        picks = [domain.pick_uniformly(len(pool.keys), pool.fetch_slices, pool.draw_exactly, rng) for _ in range(draws)]
        assert set(picks) <= set(pool.keys)
        assert pool.exact == 0  # never fell back to counting the whole pool
        assert pool.reads / draws < 2  # three slices a read, each accepted with probability 48/128
        return deciles_of(picks, pool)

    assert_uniform(draw_counts)


def test_a_stale_estimate_costs_tries_or_an_exact_draw_but_stays_uniform():
    rng = random.Random()
    small = Pool(20, rng)

    def too_large() -> list[int]:
        # Far too large: slices are nearly always empty, the tries run out, the exact draw decides.
        small.exact = 0
        counts = Counter(domain.pick_uniformly(4000, small.fetch_slices, small.draw_exactly, rng) for _ in range(DRAWS))
        assert small.exact > DRAWS / 2
        return [counts[entry] for entry in small.keys]

    assert_uniform(too_large)
    large = Pool(400, rng)

    def too_small() -> list[int]:
        # Far too small: a slice holds more than the cap, and the exact draw decides.
        large.exact = 0
        picks = [domain.pick_uniformly(40, large.fetch_slices, large.draw_exactly, rng) for _ in range(DRAWS)]
        assert large.exact == DRAWS
        return deciles_of(picks, large)

    assert_uniform(too_small)


def test_an_empty_pool_gives_nothing():
    rng = random.Random()
    pool = Pool(0, rng)
    assert domain.pick_uniformly(0, pool.fetch_slices, pool.draw_exactly, rng) is None
    assert domain.pick_uniformly(10, pool.fetch_slices, pool.draw_exactly, rng) is None
