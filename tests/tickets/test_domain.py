"""The service desk's pure rules: ticket states, SLA arithmetic on business calendars,
value segments, phone normalisation."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tickets import domain
from services.tickets.domain import BusinessCalendar, InvalidCalendar, add_business_time, business_time_between

BERLIN = ZoneInfo("Europe/Berlin")
NINE_TO_FIVE = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


def local(moment: datetime) -> datetime:
    return moment.astimezone(BERLIN).replace(tzinfo=None)


@pytest.fixture
def office():
    # 2026-12-24/25 are Thursday and Friday holidays
    return BusinessCalendar.from_json("Europe/Berlin", NINE_TO_FIVE, ["2026-12-24", "2026-12-25"])


# --- transitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("new", "open"),
        ("new", "pending"),
        ("new", "resolved"),
        ("open", "pending"),
        ("open", "resolved"),
        ("pending", "open"),
        ("pending", "resolved"),
        ("resolved", "open"),
        ("resolved", "closed"),
    ],
)
def test_allowed_transitions_pass(old, new):
    domain.check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [("new", "closed"), ("open", "new"), ("open", "closed"), ("pending", "closed"), ("resolved", "pending")]
    + [("closed", status) for status in ("new", "open", "pending", "resolved")],
)
def test_other_transitions_are_illegal(old, new):
    with pytest.raises(domain.IllegalTransition, match=f"from {old} to {new}"):
        domain.check_transition(old, new)


# --- business time --------------------------------------------------------------------------


def test_time_left_at_the_end_of_a_day_carries_over_to_the_next_morning(office):
    due = add_business_time(office, berlin(2026, 11, 23, 16, 30), timedelta(minutes=60))
    assert local(due) == datetime(2026, 11, 24, 9, 30)


def test_a_duration_that_ends_exactly_at_closing_is_due_at_closing(office):
    due = add_business_time(office, berlin(2026, 11, 23, 9, 0), timedelta(hours=8))
    assert local(due) == datetime(2026, 11, 23, 17, 0)


def test_a_ticket_opened_at_night_or_on_a_weekend_starts_counting_at_opening(office):
    assert local(add_business_time(office, berlin(2026, 11, 24, 3, 0), timedelta(minutes=30))) == datetime(
        2026, 11, 24, 9, 30
    )
    saturday = berlin(2026, 11, 28, 11, 0)
    assert local(add_business_time(office, saturday, timedelta(hours=1))) == datetime(2026, 11, 30, 10, 0)


def test_friday_afternoon_plus_a_day_of_work_is_monday_afternoon(office):
    due = add_business_time(office, berlin(2026, 11, 27, 15, 0), timedelta(hours=8))
    assert local(due) == datetime(2026, 11, 30, 15, 0)


def test_holidays_are_skipped(office):
    # Wednesday 23 Dec 16:00 + 2 h: 1 h on Wednesday, Thu 24 and Fri 25 are holidays, the weekend too.
    due = add_business_time(office, berlin(2026, 12, 23, 16, 0), timedelta(hours=2))
    assert local(due) == datetime(2026, 12, 28, 10, 0)
    assert business_time_between(office, berlin(2026, 12, 23, 0, 0), berlin(2026, 12, 29, 0, 0)) == timedelta(hours=16)


def test_business_time_between_counts_only_opening_hours(office):
    assert business_time_between(office, berlin(2026, 11, 23, 16, 0), berlin(2026, 11, 24, 10, 0)) == timedelta(hours=2)
    assert business_time_between(office, berlin(2026, 11, 27, 12, 0), berlin(2026, 11, 30, 12, 0)) == timedelta(hours=8)
    assert business_time_between(office, berlin(2026, 11, 24, 10, 0), berlin(2026, 11, 23, 10, 0)) == timedelta(0)


def test_overnight_hours_run_past_midnight():
    night = BusinessCalendar.from_json("Europe/Berlin", {day: [["22:00", "06:00"]] for day in domain.WEEKDAYS}, [])
    assert local(add_business_time(night, berlin(2026, 11, 23, 23, 0), timedelta(hours=2))) == datetime(
        2026, 11, 24, 1, 0
    )
    # 05:00 + 2 h: one hour until 06:00, the second from 22:00 the same evening.
    assert local(add_business_time(night, berlin(2026, 11, 24, 5, 0), timedelta(hours=2))) == datetime(
        2026, 11, 24, 23, 0
    )


def test_a_holiday_drops_the_overnight_interval_that_opens_on_it():
    night = BusinessCalendar.from_json(
        "Europe/Berlin", {day: [["22:00", "06:00"]] for day in domain.WEEKDAYS}, ["2026-11-24"]
    )
    assert business_time_between(night, berlin(2026, 11, 24, 0, 0), berlin(2026, 11, 26, 0, 0)) == timedelta(hours=8)


def test_a_business_day_stays_local_across_the_dst_change():
    every_day = BusinessCalendar.from_json("Europe/Berlin", {day: [["09:00", "17:00"]] for day in domain.WEEKDAYS}, [])
    # Saturday 28 March 2026 16:00 CET + 2 h = Sunday 29 March 10:00 CEST (clocks went forward at 02:00).
    due = add_business_time(every_day, berlin(2026, 3, 28, 16, 0), timedelta(hours=2))
    assert local(due) == datetime(2026, 3, 29, 10, 0)
    assert due == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)


def test_a_night_shift_over_the_dst_change_is_an_hour_shorter():
    night = BusinessCalendar.from_json("Europe/Berlin", {"sat": [["22:00", "06:00"]]}, [])
    assert business_time_between(night, berlin(2026, 3, 28, 12, 0), berlin(2026, 3, 29, 12, 0)) == timedelta(hours=7)
    # and an hour longer when the clocks go back (25 October 2026)
    assert business_time_between(night, berlin(2026, 10, 24, 12, 0), berlin(2026, 10, 25, 12, 0)) == timedelta(hours=9)


def test_without_a_calendar_the_clock_is_the_wall_clock():
    start = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    assert add_business_time(None, start, timedelta(hours=4)) == datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert business_time_between(None, start, start + timedelta(days=2)) == timedelta(days=2)


def test_a_whole_day_interval_is_24_hours():
    always = BusinessCalendar.from_json("UTC", {"mon": [["00:00", "24:00"]]}, [])
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    assert business_time_between(always, monday, monday + timedelta(days=7)) == timedelta(hours=24)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 20),
)
def test_the_business_time_to_a_due_time_is_the_duration_asked_for(start, minutes):
    office = BusinessCalendar.from_json("Europe/Berlin", NINE_TO_FIVE, ["2026-12-24", "2026-12-25"])
    due = add_business_time(office, start, timedelta(minutes=minutes))
    assert due >= start
    assert business_time_between(office, start, due) == timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("time_zone", "hours", "holidays", "message"),
    [
        ("Mars/Olympus", NINE_TO_FIVE, [], "time zone"),
        ("UTC", {}, [], "at least one weekday"),
        ("UTC", {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}, [], "overlap"),
        ("UTC", {"mon": [["22:00", "06:00"], ["07:00", "08:00"]]}, [], "last interval"),
        ("UTC", {"mon": [["22:00", "06:00"]], "tue": [["05:00", "08:00"]]}, [], "next day"),
        ("UTC", {"someday": [["09:00", "17:00"]]}, [], "weekday"),
        ("UTC", NINE_TO_FIVE, ["25/12/2026"], "holiday"),
    ],
)
def test_calendars_that_make_no_sense_are_refused(time_zone, hours, holidays, message):
    with pytest.raises(InvalidCalendar, match=message):
        BusinessCalendar.from_json(time_zone, hours, holidays)


def test_parse_clock_reads_24_00_as_midnight():
    assert domain.parse_clock("24:00") == time(0, 0)
    assert domain.parse_clock("09:30") == time(9, 30)


# --- SLAs -----------------------------------------------------------------------------------


def test_due_times_follow_the_policy_on_the_calendar_or_the_wall_clock(office):
    opened = berlin(2026, 11, 27, 16, 0)  # a Friday
    business = domain.SlaPolicy("normal", 8 * 60, 3 * 8 * 60, business_hours=True)
    first, resolution = domain.due_times(business, office, opened)
    assert local(first) == datetime(2026, 11, 30, 16, 0)
    assert local(resolution) == datetime(2026, 12, 2, 16, 0)
    around_the_clock = domain.SlaPolicy("urgent", 60, 240, business_hours=False)
    assert domain.due_times(around_the_clock, office, opened) == (
        opened + timedelta(hours=1),
        opened + timedelta(hours=4),
    )


def test_a_pause_pushes_the_due_time_by_the_business_time_spent_pending(office):
    due = berlin(2026, 11, 24, 10, 0)
    # pending from Monday 16:00 to Tuesday 10:00: 2 business hours
    resumed = domain.resume_after_pause(office, due, berlin(2026, 11, 23, 16, 0), berlin(2026, 11, 24, 10, 0))
    assert local(resumed) == datetime(2026, 11, 24, 12, 0)
    # a pause over the night alone costs nothing
    assert domain.resume_after_pause(office, due, berlin(2026, 11, 23, 18, 0), berlin(2026, 11, 24, 8, 0)) == due
    wall = domain.resume_after_pause(None, due, due - timedelta(hours=3), due)
    assert wall == due + timedelta(hours=3)


def test_the_next_sla_check_is_the_earliest_open_due_time():
    first, resolution = datetime(2026, 1, 1, 10, tzinfo=UTC), datetime(2026, 1, 1, 14, tzinfo=UTC)
    assert domain.next_sla_check(first, False, False, resolution, True, False) == first
    assert domain.next_sla_check(first, True, False, resolution, True, False) == resolution
    assert domain.next_sla_check(first, False, True, resolution, True, False) == resolution
    assert domain.next_sla_check(first, True, False, resolution, False, False) is None  # pending
    assert domain.next_sla_check(first, True, False, resolution, True, True) is None
    assert domain.next_sla_check(None, False, False, None, True, False) is None


# --- segments, phones, percentiles ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "segment"),
    [("0", "C"), ("249.99", "C"), ("250", "B"), ("999.99", "B"), ("1000", "A"), ("50000", "A")],
)
def test_segments_by_value_over_thresholds(value, segment):
    assert domain.segment_for(Decimal(value), Decimal("1000"), Decimal("250")) == segment


def test_numbers_in_any_common_format_become_e164_without_duplicates():
    raw = ["030 1234567", "+49 (30) 123-4567", "0049 30 1234567", "0151 12345678"]
    assert domain.normalise_phones(raw, "DE") == ["+49301234567", "+4915112345678"]
    assert domain.normalise_phones(["(202) 555-0143"], "US") == ["+12025550143"]


def test_what_is_not_a_number_is_reported_by_position():
    with pytest.raises(domain.InvalidPhones) as error:
        domain.normalise_phones(["+4930 1234567", "12", "call me"], "DE")
    assert set(error.value.problems) == {1, 2}
    assert "E.164" in error.value.problems[1]


def test_time_zones_are_checked_against_the_iana_database():
    assert domain.valid_time_zone("America/New_York")
    assert not domain.valid_time_zone("Europe/Atlantis")
    assert not domain.valid_time_zone("../etc/passwd")


def test_median_and_90th_percentile():
    assert domain.median_and_p90([]) == (None, None)
    assert domain.median_and_p90([5.0]) == (5.0, 5.0)
    median, p90 = domain.median_and_p90([float(n) for n in range(1, 11)])
    assert median == 5.5
    assert p90 == pytest.approx(9.1)
