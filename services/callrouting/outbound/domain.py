"""The rules of the outbound call lists, with no I/O: windows, retries, contact frequency, the fair pick."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.event_catalog import CALL_OUTCOMES, SURVEY_DELIVERIES

PURPOSES = ("post_purchase", "resurvey", "callback")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
DEFAULT_DELAY_DAYS = 30
DEFAULT_SURVEY_DELIVERY = SURVEY_DELIVERIES[0]  # the agent asks it on the call
DEFAULT_CONTACT_FREQUENCY_DAYS = 30
DEFAULT_CALLING_WINDOW = {
    **{day: ["09:00", "20:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    "sat": ["10:00", "16:00"],
}
# Outcomes after which the entry may be tried again, and how: wait delay_minutes, and give up
# (exhausted) once this outcome has happened max_attempts times on the entry. A callback is
# due at the time the customer asked for; its delay is not used.
RETRYABLE_OUTCOMES = ("no_answer", "busy", "voicemail", "callback_requested")
DEFAULT_RETRY_POLICY = {
    "no_answer": {"delay_minutes": 240, "max_attempts": 3},
    "busy": {"delay_minutes": 30, "max_attempts": 5},
    "voicemail": {"delay_minutes": 1440, "max_attempts": 2},
    "callback_requested": {"delay_minutes": 0, "max_attempts": 3},
}
# Outcomes in which somebody spoke with the customer: they count for the contact-frequency rule.
CONVERSATION_OUTCOMES = ("reached", "callback_requested", "do_not_call")
FINAL_STATES = ("completed", "exhausted", "cancelled")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


# --- calling windows ---------------------------------------------------------------------------


def calling_window_errors(window: object) -> list[str]:
    """What is wrong with a calling window (``{"mon": ["09:00", "20:00"], ...}``); [] if nothing."""
    if not isinstance(window, dict):
        return ["must be an object of weekday -> [start, end]"]
    errors = []
    for day, span in window.items():
        if day not in WEEKDAYS:
            errors.append(f"{day!r} is not one of {', '.join(WEEKDAYS)}")
            continue
        if not (isinstance(span, list | tuple) and len(span) == 2 and all(isinstance(p, str) for p in span)):
            errors.append(f'{day}: must be [start, end] as "HH:MM"')
            continue
        start, end = span
        if not _CLOCK.match(start) or not _CLOCK.match(end):
            errors.append(f"{day}: times must be HH:MM between 00:00 and 24:00")
        elif start >= end:
            errors.append(f"{day}: the start {start} must be before the end {end}")
    return errors


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def local_time(now: datetime, time_zone: str) -> datetime:
    """``now`` (aware) on the wall clock of ``time_zone``; zoneinfo applies the zone's DST rules."""
    return now.astimezone(zone(time_zone))


def is_callable(window: dict, time_zone: str, now: datetime) -> bool:
    """May a customer in ``time_zone`` be called at ``now``? Start inclusive, end exclusive."""
    local = local_time(now, time_zone)
    span = window.get(WEEKDAYS[local.weekday()])
    if not span:
        return False
    minute = local.hour * 60 + local.minute
    return _minutes(span[0]) <= minute < _minutes(span[1])


def callable_time_zones(window: dict, time_zones: Iterable[str], now: datetime) -> list[str]:
    """The zones (of those given) whose local time is inside the window now."""
    return sorted(name for name in time_zones if is_callable(window, name, now))


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_time_zone(name: object) -> bool:
    if not isinstance(name, str) or not name or name != name.strip():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# --- retries -------------------------------------------------------------------------------


def retry_policy_errors(policy: object) -> list[str]:
    if not isinstance(policy, dict):
        return ["must be an object of outcome -> {delay_minutes, max_attempts}"]
    errors = []
    for outcome, rule in policy.items():
        if outcome not in RETRYABLE_OUTCOMES:
            errors.append(f"{outcome!r} is not a retryable outcome ({', '.join(RETRYABLE_OUTCOMES)})")
            continue
        if not isinstance(rule, dict) or set(rule) - {"delay_minutes", "max_attempts"}:
            errors.append(f"{outcome}: must be {{delay_minutes, max_attempts}}")
            continue
        delay, most = rule.get("delay_minutes", 0), rule.get("max_attempts", 1)
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 60 * 24 * 90:
            errors.append(f"{outcome}: delay_minutes must be an integer from 0 to 129600 (90 days)")
        if isinstance(most, bool) or not isinstance(most, int) or not 1 <= most <= 100:
            errors.append(f"{outcome}: max_attempts must be an integer from 1 to 100")
    return errors


def complete_retry_policy(policy: dict | None) -> dict:
    """The given rules, and the defaults for the outcomes they leave out."""
    merged = {outcome: dict(rule) for outcome, rule in DEFAULT_RETRY_POLICY.items()}
    for outcome, rule in (policy or {}).items():
        merged[outcome] = {**merged[outcome], **rule}
    return merged


@dataclass(frozen=True)
class NextStep:
    """What becomes of an entry after an outcome: its new state, and when it is due again if pending."""

    state: str
    due_at: datetime | None = None
    do_not_call: bool = False


def after_outcome(
    policy: dict, outcome: str, times_with_this_outcome: int, now: datetime, callback_at: datetime | None = None
) -> NextStep:
    """Apply the retry policy. ``times_with_this_outcome`` counts the attempt just made."""
    if outcome not in CALL_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    if outcome == "reached":
        return NextStep("completed")
    if outcome == "wrong_number":
        return NextStep("cancelled")
    if outcome == "do_not_call":
        return NextStep("cancelled", do_not_call=True)
    rule = complete_retry_policy(policy)[outcome]
    if times_with_this_outcome >= rule["max_attempts"]:
        return NextStep("exhausted")
    if outcome == "callback_requested":
        if callback_at is None:
            raise ValueError("a callback needs callback_at")
        return NextStep("pending", callback_at)
    return NextStep("pending", now + timedelta(minutes=rule["delay_minutes"]))


# --- contact frequency --------------------------------------------------------------------


def contact_allowed(last_contact_at: datetime | None, now: datetime, frequency_days: int) -> bool:
    """No follow-up when the customer was spoken to (a call or a survey) in the last N days."""
    if last_contact_at is None or frequency_days <= 0:
        return True
    return last_contact_at <= now - timedelta(days=frequency_days)


# --- who gets the next follow-up entry ------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """What the next-call rule needs to know of one entry and its campaign."""

    entry_id: str
    state: str
    due_at: datetime
    time_zone: str
    campaign_active: bool
    calling_window: dict
    required_skill: str | None = None
    leased_by: str | None = None
    lease_expires_at: datetime | None = None
    listed: bool = False  # the customer is on the do-not-call list


def may_take(skills: Iterable[str], candidate: Candidate, now: datetime) -> bool:
    """May an agent with these skills be handed this entry now? Pending, due, on an active
    campaign whose required skill (if any) the agent has, in a zone inside the campaign's
    calling window now, and the customer not on the do-not-call list."""
    return (
        candidate.state == "pending"
        and candidate.due_at <= now
        and candidate.campaign_active
        and (not candidate.required_skill or candidate.required_skill in set(skills))
        and not candidate.listed
        and is_callable(candidate.calling_window, candidate.time_zone, now)
    )


def next_entry_for(agent, candidates: Iterable[Candidate], now: datetime, rng=None) -> Candidate | None:
    """Who gets the next follow-up entry: the rule of ``POST /agents/{id}/next-call``.

    1. An agent who holds an unexpired lease gets that entry again (asking twice must not
       take a second customer out of the pool).
    2. Else one entry the agent :func:`may_take`, **uniformly at random**: there is no order
       (not by due time, not by campaign), every eligible entry has the same chance.
    3. None when no entry is eligible (the API's 204).

    ``agent`` has ``agent_id`` and ``skills``. The SQL form, which draws without reading the
    pool, is ``handout.next_call``: the eligible set is ``handout._pick_statements`` (with the
    zones each campaign may call now from :func:`callable_time_zones`), the uniform draw over
    it :func:`pick_uniformly`; a customer on the list is found after the lease and the draw
    repeats. ``tests/callrouting/test_next_call_rule.py`` holds the SQL to this function.
    """
    candidates = list(candidates)
    for candidate in candidates:
        if (
            candidate.leased_by == agent.agent_id
            and candidate.lease_expires_at is not None
            and candidate.lease_expires_at > now
        ):
            return candidate
    eligible = [candidate for candidate in candidates if may_take(agent.skills or (), candidate, now)]
    if not eligible:
        return None
    return (rng or random.SystemRandom()).choice(eligible)


# --- the fair pick ---------------------------------------------------------------------------

SLICE_MEAN = 48  # how many eligible entries a slice of the key space holds on average
SLICE_CAP = 128  # C: the acceptance constant; a slice holding more is an "overflow"
MAX_SLICE_TRIES = 42  # a multiple of SLICES_PER_READ


SLICES_PER_READ = 3  # tries drawn together and read in one query


def pick_uniformly(
    estimated_count: int,
    fetch_slices: Callable[[list[tuple[float, float]], int], Sequence[Sequence[str]]],
    draw_exactly: Callable[[random.Random], str | None],
    rng: random.Random,
) -> str | None:
    """One eligible entry id, each with the same probability; None when there is none.

    Every entry carries ``shuffle_key``, a uniform random number in [0, 1) drawn once. A slice
    [s, s + w) of the key space (wrapping past 1) is taken at a uniformly random start s, and
    is accepted with probability |slice| / C; then one of its entries is taken uniformly. For
    any one entry e, over the random start:

        P(e) = ∫ [e in slice(s)] · |slice(s)|/C · 1/|slice(s)| ds = w / C

    the same for every entry, whatever the keys are. A rejected slice draws again, so the
    result is exactly uniform; the keys need no re-drawing, and the pick reveals nothing
    about the keys left behind. Only a slice holding more than C entries cannot be accepted
    with a probability ≤ 1; then the pick falls back to ``draw_exactly`` (count, then a
    random offset: exact but linear in the pool). The width w = SLICE_MEAN / estimate makes
    a slice hold about 48 entries (a binomial count), so that a slice holding more than 128
    has a probability below 1e-21 per try with a right estimate and about 1e-3 with one
    half the truth (then it is recounted): the only departure from uniform, and that small.
    The estimate only tunes the width: a stale one costs tries, not fairness. After
    MAX_SLICE_TRIES rejected tries the exact draw decides; every try rejects with the same
    probability whichever the entries, so that fallback keeps the pick uniform too.

    A try is accepted with probability 48/128, so tries are drawn three at a time and
    ``fetch_slices(ranges, limit)`` reads their slices together (the eligible ids in each
    range, at most ``limit`` of each); they are then judged one after the other exactly as
    if read one by one. Three tries succeed with probability 0.76.
    """
    if estimated_count <= 0:
        return draw_exactly(rng)
    width = min(1.0, SLICE_MEAN / estimated_count)
    per_read = 1 if width >= 1.0 else SLICES_PER_READ
    for _ in range(0, MAX_SLICE_TRIES, per_read):
        starts = [rng.random() for _ in range(per_read)]
        for ids in fetch_slices([(start, start + width) for start in starts], SLICE_CAP + 1):
            if len(ids) > SLICE_CAP:
                return draw_exactly(rng)
            if width >= 1.0:
                # The slice is the whole key space: every eligible entry is in it, pick one.
                return rng.choice(ids) if ids else None
            if ids and rng.random() * SLICE_CAP < len(ids):
                return rng.choice(ids)
    return draw_exactly(rng)


def key_ranges(low: float, high: float) -> list[tuple[float, float]]:
    """[low, high) on the unit circle as one or two half-open ranges within [0, 1)."""
    if high <= 1.0:
        return [(low, high)]
    return [(low, 1.0), (0.0, high - 1.0)]


# --- CSV import ---------------------------------------------------------------------------

CSV_COLUMNS = ("customer_id", "purchase_id", "due_at")


def parse_due_at(raw: str, default: datetime) -> datetime:
    """An ISO 8601 time with an offset (or a date, read as midnight UTC); empty means ``default``."""
    raw = raw.strip()
    if not raw:
        return default
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if value.tzinfo is None:
        if len(raw) == 10:  # a bare date
            return value.replace(tzinfo=UTC)
        raise ValueError("a time needs its UTC offset, e.g. 2026-12-01T09:00:00+01:00")
    return value
