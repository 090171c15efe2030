"""Phone numbers normalised to E.164 with phonenumbers (shared/phones.py)."""

import pytest

from shared.phones import NotAPhoneNumber, time_zone_of, to_e164, to_e164_or_none


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+49 30 1234567", None, "+49301234567"),
        ("+49 (30) 123-4567", None, "+49301234567"),
        ("0049 30 1234567", None, "+49301234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("+44 20 7946 0958", "US", "+442079460958"),
    ],
)
def test_common_formats_become_one_e164_number(raw, region, expected):
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize("raw", ["", "   ", "abc", "12", "+999 123", "+1 415 555 26711234"])
def test_what_is_not_a_phone_number_is_refused(raw):
    with pytest.raises(NotAPhoneNumber):
        to_e164(raw, "US")


def test_the_default_region_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEFAULT_PHONE_REGION", "de")
    assert to_e164("030 1234567") == "+49301234567"


def test_a_caller_id_that_does_not_parse_is_none_not_an_error():
    assert to_e164_or_none("anonymous") is None
    assert to_e164_or_none(None) is None
    assert to_e164_or_none("+14155552671") == "+14155552671"


def test_the_time_zone_comes_from_the_number_when_it_names_one():
    assert time_zone_of("+49301234567") == "Europe/Berlin"
    assert time_zone_of("+14155552671") == "America/Los_Angeles"
    assert time_zone_of("+79161234567") is None or time_zone_of("+79161234567").startswith("Europe/")
