"""Use cases and event handlers of both halves on a throwaway database, without a broker: each
runs in a collecting unit of work (``uow_factory``), and the test reads what it announced.
(The real-broker tests beside these prove delivery.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.callrouting import events
from services.callrouting.inbound import service as inbound
from services.callrouting.inbound.service import InboundConfig
from services.callrouting.models import AgentRouting, CallEntry
from services.callrouting.outbound import handout, service
from shared.errors import Conflict, NotFound
from shared.events import Envelope
from tests.callrouting.inbound_support import DAY

ALWAYS = {day: ["00:00", "24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
CONFIG = InboundConfig(missed_offers_limit=3, offer_timeout_seconds=30)


def handle(uow, event_type: str, data: dict):
    envelope = Envelope(type=event_type, data=data, source="tickets").validate()
    with uow:
        events.HANDLERS[event_type](uow, envelope)
        uow.commit()  # as the consumer does, with the message's dedup row
    return uow


def a_purchase(customer_id: str) -> dict:
    return {
        "purchase_id": str(uuid.uuid4()),
        "customer_id": customer_id,
        "sku": "KT-100",
        "product": "Kettle",
        "amount": "49.90",
        "currency": "EUR",
        "purchased_at": (datetime.now(UTC) - timedelta(days=40)).isoformat(),
        "source": "webshop",
        "order_ref": "O-1",
    }


@pytest.fixture
def lists(uow_factory):
    handout.forget_recent()
    with uow_factory("callrouting") as uow:
        campaign = service.create_campaign(uow, name="Kettle follow-up", calling_window=ALWAYS)
        service.register_agent(uow, "agent-1", "Agent One", [])
    return campaign


# --- outbound -----------------------------------------------------------------------------------


def test_a_purchase_schedules_one_entry_and_announces_nothing(uow_factory, lists):
    customer = str(uuid.uuid4())
    purchase = a_purchase(customer)
    uow = handle(uow_factory("callrouting"), "purchase.recorded", purchase)
    assert uow.committed == []
    handle(uow_factory("callrouting"), "purchase.recorded", purchase)  # a redelivery
    with uow_factory("callrouting", read_only=True) as reader:
        rows = reader.session.query(CallEntry).filter_by(customer_id=customer).all()
    assert [(row.campaign_id, row.state, row.purchase_id) for row in rows] == [
        (lists.campaign_id, "pending", purchase["purchase_id"])
    ]


def test_an_outcome_announces_callentry_completed_once(uow_factory, lists):
    customer = str(uuid.uuid4())
    handle(uow_factory("callrouting"), "purchase.recorded", a_purchase(customer))
    with uow_factory("callrouting") as uow:
        handed = handout.next_call(uow, "agent-1")
    assert handed.entry.customer_id == customer
    with uow_factory("callrouting") as uow:
        entry, _attempt = service.record_outcome(uow, handed.entry.entry_id, agent_id="agent-1", outcome="reached")
    assert entry.state == "completed" and uow.types() == ["callentry.completed"]
    announced = uow.committed[0].data
    assert (announced["entry_id"], announced["outcome"], announced["agent_id"]) == (
        handed.entry.entry_id,
        "reached",
        "agent-1",
    )
    with uow_factory("callrouting") as again, pytest.raises(Conflict):
        service.record_outcome(again, handed.entry.entry_id, agent_id="agent-1", outcome="reached")
    assert again.committed == []


def test_unknown_things_are_domain_errors_not_web_errors(uow_factory, lists):
    with uow_factory("callrouting") as uow:
        with pytest.raises(NotFound):
            service.get_campaign(uow, str(uuid.uuid4()))
        with pytest.raises(NotFound):
            handout.next_call(uow, "nobody")
        with pytest.raises(NotFound):
            inbound.set_agent_state(uow, "nobody", "available", CONFIG)


def test_a_survey_counts_as_a_contact_for_the_frequency_rule(uow_factory, lists):
    customer = str(uuid.uuid4())
    survey = {
        "response_id": str(uuid.uuid4()),
        "customer_id": customer,
        "template_id": "post-purchase",
        "channel": "agent",
        "completed_at": datetime.now(UTC).isoformat(),
    }
    with uow_factory("callrouting") as uow:
        service.record_survey_contact(uow, survey)
        uow.commit()
    handle(
        uow_factory("callrouting"),
        "purchase.recorded",
        {**a_purchase(customer), "purchased_at": survey["completed_at"]},
    )
    with uow_factory("callrouting", read_only=True) as reader:
        assert reader.session.query(CallEntry).filter_by(customer_id=customer).count() == 0


# --- inbound ------------------------------------------------------------------------------------


def _available(uow_factory, agent_id: str) -> None:
    with uow_factory("callrouting") as uow:
        service.register_agent(uow, agent_id, agent_id.title(), [])
        uow.session.add(AgentRouting(agent_id=agent_id, endpoint_kind="client", endpoint=agent_id))
        uow.commit()
    with uow_factory("callrouting") as uow:
        inbound.set_agent_state(uow, agent_id, "available", CONFIG, now=DAY)
    assert [(e.type, e.data["new_state"]) for e in uow.committed] == [("agent.state_changed", "available")]


def _ring(uow_factory, call_id: str):
    with uow_factory("callrouting") as uow:
        decision = inbound.start_call(
            uow,
            call_id=call_id,
            source="twilio",
            from_raw=None,
            to_raw=None,
            queue=None,
            at=DAY,
            config=CONFIG,
            now=DAY,
        )
    return uow, decision


def test_a_caller_who_waited_too_long_leaves_the_queue_as_an_abandoned_call(uow_factory):
    uow, decision = _ring(uow_factory, "CA-wait")
    assert decision.queued and uow.types() == ["call.started"]
    with uow_factory("callrouting") as uow:
        rules = inbound.queue_rules(uow.session, decision.call.queue)
        wait = inbound.wait_in_queue(uow, "CA-wait", rules.max_wait_seconds - 1, CONFIG)
        assert not wait.leave and wait.decision.position == 1
        wait = inbound.wait_in_queue(uow, "CA-wait", rules.max_wait_seconds, CONFIG)
        assert wait.leave  # the wait is over: Twilio's <Enqueue> action follows
    with uow_factory("callrouting") as uow:
        left = inbound.leave_queue(uow, "CA-wait", "leave", rules.max_wait_seconds, {}, CONFIG)
    assert left.ended and left.timed_out and left.decision is None
    assert uow.types() == ["call.abandoned"]
    with uow_factory("callrouting") as uow, pytest.raises(NotFound):
        inbound.leave_queue(uow, "CA-unknown", "hangup", 3, {}, CONFIG)


def test_a_caller_who_leaves_the_queue_for_a_free_agent_is_dialled(uow_factory):
    _ring(uow_factory, "CA-next")
    _available(uow_factory, "ann")
    with uow_factory("callrouting") as uow:
        left = inbound.leave_queue(uow, "CA-next", "leave", 12, {}, CONFIG)
    assert not left.ended and [offer.agent_id for offer in left.decision.offers] == ["ann"]
    assert [(e.type, e.data["new_state"]) for e in uow.committed] == [("agent.state_changed", "reserved")]
    with uow_factory("callrouting") as uow:
        assert inbound.leave_queue(uow, "CA-next", "bridged", 12, {}, CONFIG) is None
    assert uow.committed == []
