"""The surveys' use cases and event handlers without a broker: each runs on a collecting unit of
work (``uow_factory``), and the test says what it announced. The real-broker tests (test_loop.py)
prove the delivery."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.surveys import domain, incoming, keypad, links, responses, survey_templates, views
from services.surveys.domain import LowScoreRule, Provenance
from services.surveys.events import HANDLERS
from services.surveys.models import SurveyResponse
from shared.errors import Conflict, Invalid, NotFound
from shared.events import Envelope
from tests.surveys.conftest import ANSWERS

RULE = LowScoreRule()
SECRET = "test-link-secret"


def submit(uow, *, answers=ANSWERS, customer_id=None, partial=False, **provenance):
    return responses.submit_response(
        uow,
        RULE,
        template_id=domain.DEFAULT_TEMPLATE_ID,
        template_version=None,
        customer_id=customer_id or str(uuid.uuid4()),
        channel="agent",
        answers=answers,
        comment="fine",
        language=None,
        partial=partial,
        provenance=Provenance(agent_id="agent-1", **provenance),
    )


def test_a_complete_response_is_announced_and_a_low_one_also_as_low_score(uow_factory):
    with uow_factory("surveys") as uow:
        fine = submit(uow)
        assert uow.types() == ["survey.completed"] and fine["low_questions"] == []
    with uow_factory("surveys") as uow:
        low = submit(uow, answers={**ANSWERS, "service": 3, "recommend_store": 6})
        assert uow.types() == ["survey.completed", "survey.low_score"]
        completed, announced = uow.committed
        assert completed.data["response_id"] == announced.data["response_id"] == low["response_id"]
        assert announced.data["low_questions"] == low["low_questions"] == ["service", "recommend_store"]


def test_a_partial_response_is_counted_but_not_announced(uow_factory):
    with uow_factory("surveys") as uow:
        partial = submit(uow, answers={"product": 2}, partial=True)
        assert partial["status"] == domain.PARTIAL and uow.committed == []


def test_bad_answers_are_invalid_naming_each_answer_and_nothing_is_stored(uow_factory):
    with uow_factory("surveys") as uow, pytest.raises(Invalid) as refused:
        submit(uow, answers={**ANSWERS, "service": 11})
    assert refused.value.errors == {"answers": {"service": ["Must be a whole number from 1 to 10, not 11."]}}
    with uow_factory("surveys") as uow:
        assert uow.session.scalars(select(SurveyResponse)).all() == []


def test_a_second_response_for_one_call_is_a_conflict_and_announces_nothing(uow_factory):
    with uow_factory("surveys") as uow:
        submit(uow, call_id="CA-1")
    with uow_factory("surveys") as uow, pytest.raises(Conflict):
        submit(uow, call_id="CA-1")
    assert uow.committed == []


def test_an_unknown_template_is_invalid_and_a_version_of_an_unknown_one_names_id(uow_factory):
    with uow_factory("surveys") as uow, pytest.raises(Invalid) as refused:
        responses.submit_response(
            uow,
            RULE,
            template_id=str(uuid.uuid4()),
            template_version=None,
            customer_id=str(uuid.uuid4()),
            channel="agent",
            answers=ANSWERS,
            comment=None,
            language=None,
            partial=False,
            provenance=Provenance(),
        )
    assert set(refused.value.errors) == {"template_id"}
    with uow_factory("surveys") as uow, pytest.raises(Invalid) as refused:
        survey_templates.create_template_version(
            uow, template_id=str(uuid.uuid4()), name="x", questions=[{"key": "a"}], comment_enabled=True
        )
    assert set(refused.value.errors) == {"id"}
    with uow_factory("surveys") as uow, pytest.raises(NotFound):
        survey_templates.find_template(uow, domain.DEFAULT_TEMPLATE_ID, 99)


def test_a_link_answers_once_and_an_expired_one_is_gone(uow_factory):
    customer_id = str(uuid.uuid4())
    with uow_factory("surveys") as uow:
        _link, token = links.issue_link(
            uow,
            SECRET,
            customer_id=customer_id,
            template_id=domain.DEFAULT_TEMPLATE_ID,
            template_version=None,
            language=None,
            provenance=Provenance(),
            expires_in=timedelta(days=1),
        )
    with uow_factory("surveys") as uow:
        answered = links.submit_by_link(uow, RULE, SECRET, token, answers=ANSWERS, comment=None, partial=False)
        assert uow.types() == ["survey.completed"] and answered["channel"] == "link"
    with uow_factory("surveys") as uow, pytest.raises(Conflict):
        links.open_link(uow, SECRET, token)
    with uow_factory("surveys") as uow:
        _link, later = links.issue_link(
            uow,
            SECRET,
            customer_id=customer_id,
            template_id=domain.DEFAULT_TEMPLATE_ID,
            template_version=None,
            language=None,
            provenance=Provenance(),
            expires_in=timedelta(minutes=1),
        )
    with uow_factory("surveys") as uow, pytest.raises(links.LinkExpired):
        links.open_link(uow, SECRET, later, now=datetime.now(UTC) + timedelta(minutes=2))
    with uow_factory("surveys") as uow, pytest.raises(NotFound):
        links.open_link(uow, SECRET, "not-a-token")


def test_an_unknown_keypad_survey_is_not_found(uow_factory):
    with uow_factory("surveys") as uow, pytest.raises(NotFound):
        keypad.keypad_response(uow, str(uuid.uuid4()))


def test_a_resolved_recovery_ticket_asks_for_one_resurvey_after_the_configured_delay(uow_factory, monkeypatch):
    monkeypatch.setenv("RESURVEY_DELAY_DAYS", "3")
    with uow_factory("surveys") as uow:
        low = submit(uow, answers={**ANSWERS, "service": 2})
    resolved = {
        "ticket_id": str(uuid.uuid4()),
        "customer_id": low["customer_id"],
        "survey_response_id": low["response_id"],
        "resolved_at": "2026-12-01T10:00:00Z",
    }
    with uow_factory("surveys") as uow:
        HANDLERS["ticket.resolved"](uow, Envelope(type="ticket.resolved", data=resolved, source="test"))
        uow.commit()
        (request,) = uow.committed
    assert request.type == "followup.requested" and request.data["due_at"] == "2026-12-04T10:00:00.000000Z"
    with uow_factory("surveys") as uow:  # resolved again: no second request
        HANDLERS["ticket.resolved"](uow, Envelope(type="ticket.resolved", data=resolved, source="test"))
        uow.commit()
        assert uow.committed == []


def test_the_resurvey_request_is_due_the_delay_after_the_fix(uow_factory):
    with uow_factory("surveys") as uow:
        low = submit(uow, answers={**ANSWERS, "service": 2})
    with uow_factory("surveys") as uow:
        data = {
            "ticket_id": str(uuid.uuid4()),
            "survey_response_id": low["response_id"],
            "resolved_at": "2026-12-01T10:00:00Z",
        }
        incoming.request_resurvey(uow, data, timedelta(days=3))
        uow.commit()
        (request,) = uow.committed
    assert request.type == "followup.requested"
    assert request.data["due_at"] == "2026-12-04T10:00:00.000000Z"
    assert request.data["request_id"] == domain.resurvey_request_id(low["response_id"])
    with uow_factory("surveys") as uow:
        incoming.request_resurvey(uow, data, timedelta(days=3))
        uow.commit()
        assert uow.committed == []  # once per response


def test_a_purchase_heard_of_later_moves_its_response_to_the_product(uow_factory):
    purchase_id = str(uuid.uuid4())
    with uow_factory("surveys") as uow:
        response = submit(uow, purchase_id=purchase_id)
        assert response["product"] is None
    purchase = {
        "purchase_id": purchase_id,
        "customer_id": response["customer_id"],
        "sku": "KX-1",
        "product": "Kettle X1",
        "purchased_at": "2026-10-24T09:00:00Z",
    }
    with uow_factory("surveys") as uow:
        HANDLERS["purchase.recorded"](uow, Envelope(type="purchase.recorded", data=purchase, source="test"))
        uow.commit()
        assert uow.committed == []
    with uow_factory("surveys") as uow:
        assert uow.session.get(SurveyResponse, response["response_id"]).product == "Kettle X1"


def test_a_customers_responses_page_with_an_honest_total_and_the_summary_states_its_bound(uow_factory):
    customer_id = str(uuid.uuid4())
    for _ in range(3):
        with uow_factory("surveys") as uow:
            submit(uow, customer_id=customer_id)
    with uow_factory("surveys") as uow:
        items, total = views.responses_of_customer(uow, customer_id, limit=2, offset=0)
        assert (len(items), total) == (2, 3)
        rest, total = views.responses_of_customer(uow, customer_id, limit=2, offset=2)
        assert (len(rest), total) == (1, 3) and {r.response_id for r in items}.isdisjoint({rest[0].response_id})
        summary = views.customer_survey_summary(uow, customer_id, limit=2)
    assert (len(summary["recent"]), summary["recent_limit"]) == (2, 2)
    assert (summary["response_count"], summary["completed_count"]) == (3, 3)
    assert summary["recent"][0]["id"] and summary["recent"][0]["started_at"].endswith("Z")
