"""The service desk's rules, free of I/O: ticket states, SLA clocks on business hours,
value segments and phone numbers.

Times are aware datetimes in UTC; business calendars are read in their own time zone, so a
calendar of 09:00-17:00 in Europe/Berlin stays 09:00-17:00 local across a DST change.
"""

from __future__ import annotations

import statistics
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.event_catalog import TICKET_STATUSES
from shared.events import isoformat_utc
from shared.phones import NotAPhoneNumber, to_e164

# --- ticket states -------------------------------------------------------------------------

# Zammad/osTicket-like: work starts at "new"; "pending" waits on the customer (the
# resolution clock pauses); "resolved" may be reopened; "closed" is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"open", "pending", "resolved"}),
    "open": frozenset({"pending", "resolved"}),
    "pending": frozenset({"open", "resolved"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset(),
}
assert set(TRANSITIONS) == set(TICKET_STATUSES)
UNRESOLVED = ("new", "open", "pending")


class IllegalTransition(ValueError):
    pass


def check_transition(old: str, new: str) -> None:
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "none (it is final)"
        raise IllegalTransition(f"A ticket cannot go from {old} to {new}; from {old} it may go to: {allowed}.")


# --- business calendars ---------------------------------------------------------------------

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_CALENDAR_DAYS = 3 * 366  # a clock that finds no business time in three years is misconfigured


class InvalidCalendar(ValueError):
    pass


def parse_clock(text: str) -> time:
    """'09:00' -> 09:00; '24:00' means the end of the day and is read as 00:00 of the next."""
    if text == "24:00":
        return time(0, 0)
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError as error:
        raise InvalidCalendar(f"{text!r} is not a time of day (HH:MM)") from error


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekly opening hours in a time zone, minus holidays.

    ``hours`` maps a weekday (0 = Monday) to its intervals (opens, closes). An interval whose
    closing time is not after its opening time runs overnight into the next day (22:00-06:00;
    09:00-24:00; 00:00-00:00 is the whole day); it belongs to the day it opens on, so a
    holiday drops the intervals that open on it.
    """

    time_zone: str
    hours: dict[int, tuple[tuple[time, time], ...]]
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self):
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise InvalidCalendar(f"unknown time zone {self.time_zone!r}") from error
        if not any(self.hours.values()):
            raise InvalidCalendar("a calendar needs business hours on at least one weekday")
        for weekday, intervals in self.hours.items():
            previous_close = None
            for index, (opens, closes) in enumerate(intervals):
                overnight = closes <= opens
                if previous_close is not None and opens < previous_close:
                    raise InvalidCalendar(f"{WEEKDAYS[weekday]}: intervals overlap or are out of order")
                if overnight and index != len(intervals) - 1:
                    raise InvalidCalendar(f"{WEEKDAYS[weekday]}: only the last interval may run past midnight")
                previous_close = closes
            if intervals and intervals[-1][1] <= intervals[-1][0]:
                following = self.hours.get((weekday + 1) % 7, ())
                if following and following[0][0] < intervals[-1][1]:
                    raise InvalidCalendar(f"{WEEKDAYS[weekday]}: the overnight interval overlaps the next day's")

    @classmethod
    def from_json(cls, time_zone: str, hours: dict[str, list[list[str]]], holidays: Iterable[str]) -> BusinessCalendar:
        """From {"mon": [["09:00", "17:00"]], ...} and ["2026-12-25", ...]."""
        parsed: dict[int, tuple[tuple[time, time], ...]] = {}
        for name, intervals in hours.items():
            if name not in WEEKDAYS:
                raise InvalidCalendar(f"{name!r} is not a weekday ({', '.join(WEEKDAYS)})")
            parsed[WEEKDAYS.index(name)] = tuple((parse_clock(a), parse_clock(b)) for a, b in intervals)
        try:
            days = frozenset(date.fromisoformat(day) for day in holidays)
        except ValueError as error:
            raise InvalidCalendar(f"a holiday is not a date (YYYY-MM-DD): {error}") from error
        return cls(time_zone, parsed, days)

    def intervals(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Business intervals in UTC, in order, clipped to start no earlier than ``since``."""
        zone = ZoneInfo(self.time_zone)
        day = since.astimezone(zone).date() - timedelta(days=1)  # yesterday's overnight interval
        for _ in range(MAX_CALENDAR_DAYS):
            if day not in self.holidays:
                for opens, closes in self.hours.get(day.weekday(), ()):
                    start = datetime.combine(day, opens, tzinfo=zone).astimezone(UTC)
                    closing_day = day if closes > opens else day + timedelta(days=1)
                    end = datetime.combine(closing_day, closes, tzinfo=zone).astimezone(UTC)
                    if end > since:
                        yield max(start, since), end
            day += timedelta(days=1)
        raise InvalidCalendar(f"no business hours within {MAX_CALENDAR_DAYS} days of {since.isoformat()}")


def add_business_time(calendar: BusinessCalendar | None, start: datetime, duration: timedelta) -> datetime:
    """The moment ``duration`` of business time after ``start`` (wall-clock time without a calendar)."""
    if calendar is None:
        return start + duration
    if duration <= timedelta(0):
        return start
    remaining = duration
    for opens, closes in calendar.intervals(start):
        if remaining <= closes - opens:
            return opens + remaining
        remaining -= closes - opens
    raise AssertionError("unreachable: intervals() raises when it runs out")


def business_time_between(calendar: BusinessCalendar | None, start: datetime, end: datetime) -> timedelta:
    """Business time from ``start`` to ``end`` (zero if end is not later)."""
    if end <= start:
        return timedelta(0)
    if calendar is None:
        return end - start
    total = timedelta(0)
    for opens, closes in calendar.intervals(start):
        if opens >= end:
            break
        total += min(closes, end) - opens
    return total


# --- SLAs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaPolicy:
    priority: str
    first_response_minutes: int
    resolution_minutes: int
    business_hours: bool  # count on the business calendar (when one is set), else around the clock


def clock_of(policy: SlaPolicy, calendar: BusinessCalendar | None) -> BusinessCalendar | None:
    """The calendar a policy's clock runs on: None means wall-clock time."""
    return calendar if policy.business_hours else None


def due_times(policy: SlaPolicy, calendar: BusinessCalendar | None, opened_at: datetime) -> tuple[datetime, datetime]:
    """(first response due, resolution due) for a ticket opened at ``opened_at``."""
    clock = clock_of(policy, calendar)
    return (
        add_business_time(clock, opened_at, timedelta(minutes=policy.first_response_minutes)),
        add_business_time(clock, opened_at, timedelta(minutes=policy.resolution_minutes)),
    )


def resume_after_pause(
    clock: BusinessCalendar | None, due: datetime, paused_at: datetime, resumed_at: datetime
) -> datetime:
    """A due time pushed back by the business time spent paused (pending on the customer)."""
    return add_business_time(clock, due, business_time_between(clock, paused_at, resumed_at))


def next_sla_check(
    first_response_due_at: datetime | None,
    first_responded: bool,
    first_response_breached: bool,
    resolution_due_at: datetime | None,
    resolution_running: bool,
    resolution_breached: bool,
) -> datetime | None:
    """When the breach worker must next look at a ticket: the earliest due time still open."""
    candidates = []
    if first_response_due_at and not first_responded and not first_response_breached:
        candidates.append(first_response_due_at)
    if resolution_due_at and resolution_running and not resolution_breached:
        candidates.append(resolution_due_at)
    return min(candidates) if candidates else None


# --- customers ------------------------------------------------------------------------------


def segment_for(value_last_12_months: Decimal, a_min: Decimal, b_min: Decimal) -> str:
    """A/B/C value segment: A from ``a_min``, B from ``b_min``, else C (no purchases is C)."""
    if value_last_12_months >= a_min:
        return "A"
    if value_last_12_months >= b_min:
        return "B"
    return "C"


class InvalidPhones(ValueError):
    def __init__(self, problems: dict[int, str]):
        super().__init__(problems)
        self.problems = problems  # index in the list -> what is wrong


def normalise_phones(raw_numbers: Iterable[str], region: str | None = None) -> list[str]:
    """E.164 forms of numbers typed in any common format, duplicates dropped, order kept."""
    result: list[str] = []
    problems: dict[int, str] = {}
    for index, raw in enumerate(raw_numbers):
        try:
            number = to_e164(raw, region)
        except NotAPhoneNumber:
            problems[index] = f"{raw!r} is not a phone number (it cannot be read as E.164)."
            continue
        if number not in result:
            result.append(number)
    if problems:
        raise InvalidPhones(problems)
    return result


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# --- reports --------------------------------------------------------------------------------


def median_and_p90(values: list[float]) -> tuple[float | None, float | None]:
    """Median and 90th percentile (linear interpolation between ranks); None without data."""
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=10, method="inclusive")[8]


# The default survey template's questions as a ticket names them (the keys are template data:
# a ticket reads as text, never as `recommend_product`). A key not listed reads with spaces.
QUESTION_NAMES = {
    "product": "the product",
    "service": "our service",
    "purchase": "the purchase",
    "recommend_product": "would recommend the product",
    "recommend_store": "would recommend the store",
}


def recovery_ticket_text(
    low_questions: Iterable[str], answers: dict, product: str | None, comment: str | None
) -> tuple[str, str]:
    """The subject and description of a service-recovery ticket opened by a low survey score."""
    scores = ", ".join(
        f"{QUESTION_NAMES.get(key, key.replace('_', ' '))} {answers.get(key)}/10" for key in low_questions
    )
    subject = (f"Low survey score from {product}: {scores}" if product else f"Low survey score: {scores}")[:200]
    lines = [f"The customer scored {scores} in the follow-up survey."]
    if product:
        lines.append(f"Product: {product}.")
    lines.append(f"Customer's comment: {comment}" if comment else "No comment given.")
    lines.append("Call the customer back and put it right before the SLA runs out.")
    return subject, "\n".join(lines)


def search_form(text: str) -> str:
    """Text as a search compares it: case folded and accents taken off ('Inès Müller' -> 'ines muller')."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char)).strip()


# --- ids, text search, months, SLA state ----------------------------------------------------


def looks_like_id(value: str) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 36


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def iso(value):
    """A value as events and the history store it (a moment as ``isoformat()``)."""
    return value.isoformat() if isinstance(value, datetime) else value


def rfc3339(value):
    """A value as the API answers it: a moment as RFC 3339 UTC with ``Z`` (``shared.schemas.Timestamp``)."""
    return isoformat_utc(value) if isinstance(value, datetime) else value


def months_before(moment: datetime, months: int) -> datetime:
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    month += 1
    day = min(moment.day, [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
    return moment.replace(year=year, month=month, day=day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def sla_state(row, now: datetime) -> dict:
    """Where a ticket stands against its SLA now: due times, and breached or not.

    A due time that has passed unmet counts as breached at once, before the breach job (every
    ``SLA_CHECK_SECONDS``) has flagged it. ``state``: ``breached``, ``met`` (resolved in time),
    ``paused`` (pending: the resolution clock stops), ``running``, or ``none`` (no policy).
    """
    resolved = row.resolved_at is not None and row.status in ("resolved", "closed")
    first_breached = row.first_response_breached_at is not None or (
        row.first_responded_at is None
        and not resolved
        and row.first_response_due_at is not None
        and row.first_response_due_at <= now
    )
    resolution_breached = row.resolution_breached_at is not None or (
        not resolved and row.status != "pending" and row.resolution_due_at is not None and row.resolution_due_at <= now
    )
    breached = bool(row.breached or first_breached or resolution_breached)
    if breached:
        state = "breached"
    elif resolved:
        state = "met"
    elif row.first_response_due_at is None and row.resolution_due_at is None:
        state = "none"
    elif row.status == "pending":
        state = "paused"
    else:
        state = "running"
    return {
        "state": state,
        "breached": breached,
        "first_response_due_at": rfc3339(row.first_response_due_at),
        "first_response_breached": first_breached,
        "resolution_due_at": rfc3339(row.resolution_due_at),
        "resolution_breached": resolution_breached,
    }
