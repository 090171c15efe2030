"""The shared pieces every service is built from: domain errors and their one mapping, the
API's timestamps and pages, and the unit of work that collects events for fast tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Flask
from marshmallow import Schema, ValidationError
from sqlalchemy import func, select

from shared.backbone import outbox
from shared.errors import Conflict, Invalid, NotFound
from shared.problems import PROBLEM_JSON, domain_error_to_problem
from shared.schemas import PageArgs, Timestamp, page, page_args, page_of


@pytest.mark.parametrize(
    ("error", "status"),
    [(NotFound("No ticket 7."), 404), (Conflict("The ticket is closed."), 409), (Invalid({"x": "bad"}), 422)],
)
def test_each_domain_error_is_one_problem_answer(error, status):
    with Flask(__name__).test_request_context("/things/7"):
        answer = domain_error_to_problem(error)
    assert answer.status_code == status and answer.mimetype == PROBLEM_JSON
    body = answer.get_json()
    assert body["status"] == status and body["instance"] == "/things/7"
    if isinstance(error, Invalid):
        assert body["errors"] == [{"field": "x", "detail": "bad", "location": "json", "pointer": "#/x"}]
    else:
        assert body["detail"] == error.detail


def test_invalid_names_query_parameters_by_name():
    with Flask(__name__).test_request_context("/things"):
        body = domain_error_to_problem(Invalid({"since": ["Not a day.", "Too old."]}, location="query")).get_json()
    assert [(e["parameter"], e["detail"]) for e in body["errors"]] == [("since", "Not a day."), ("since", "Too old.")]


class Moment(Schema):
    at = Timestamp()


def test_a_timestamp_is_answered_in_utc_with_z_and_read_from_any_offset():
    paris = datetime(2026, 12, 4, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    assert Moment().dump({"at": paris}) == {"at": "2026-12-04T09:30:00.000000Z"}
    assert Moment().load({"at": "2026-12-04T10:30:00+01:00"})["at"] == datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    assert Moment().load({"at": "2026-12-04T09:30:00"})["at"].tzinfo == UTC  # no offset: UTC
    with pytest.raises(ValueError, match="naive"):
        Moment().dump({"at": datetime(2026, 12, 4, 9, 30)})


def test_page_args_state_their_bounds_and_refuse_beyond_them():
    assert PageArgs().load({}) == {"limit": 50, "offset": 0}
    small = page_args(default=10, maximum=20)()
    assert small.load({"limit": "20", "offset": "5"}) == {"limit": 20, "offset": 5}
    with pytest.raises(ValidationError) as refused:
        small.load({"limit": "21", "offset": "-1"})
    assert set(refused.value.messages) == {"limit", "offset"}
    assert page(["a"], 7, {"limit": 1, "offset": 3}) == {"items": ["a"], "total": 7, "limit": 1, "offset": 3}


def test_the_collecting_unit_of_work_keeps_what_commits_and_writes_no_outbox(uow_factory):
    kept, dropped = str(uuid.uuid4()), str(uuid.uuid4())
    with uow_factory("tickets") as uow:
        uow.publish("customer.erased", _erasure(dropped))
        uow.rollback()
        uow.publish("customer.erased", _erasure(kept))
        uow.commit()
        assert uow.types() == ["customer.erased"]
        assert uow.committed[0].data["customer_id"] == kept and uow.committed[0].source == "tickets"
        assert uow.session.scalar(select(func.count()).select_from(outbox)) == 0


def _erasure(customer_id: str) -> dict:
    return {
        "request_id": str(uuid.uuid4()),
        "customer_id": customer_id,
        "customer_ids": [customer_id],
        "requested_at": "2026-12-04T09:30:00.000000Z",
    }


def test_page_of_counts_every_match_whatever_the_page(uow_factory):
    from services.tickets.models import Counter

    with uow_factory("tickets") as uow:
        uow.session.add_all(Counter(name=f"n{index:02}", value=index) for index in range(7))
        uow.commit()
        by_name = select(Counter.name).where(Counter.name.like("n%")).order_by(Counter.name)  # migrations add others
        assert page_of(uow.session, by_name, 3, 0, scalars=True) == (["n00", "n01", "n02"], 7)  # full page
        assert page_of(uow.session, by_name, 3, 6, scalars=True) == (["n06"], 7)  # short last page
        assert page_of(uow.session, by_name, 10, 0, scalars=True) == ([f"n{i:02}" for i in range(7)], 7)
        assert page_of(uow.session, by_name, 3, 9, scalars=True) == ([], 7)  # past the end: counted
        assert page_of(uow.session, by_name.where(Counter.value > 99), 3, 0, scalars=True) == ([], 0)
