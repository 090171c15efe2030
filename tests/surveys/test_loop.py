"""The closed loop through the real broker: a low score reaches the tickets service's queue, and a
resolved service-recovery ticket (delivered twice, and resolved again) asks call routing for exactly
one re-survey."""

import uuid
from dataclasses import replace

import pika
import pytest

from services.surveys import domain, responses
from services.surveys.app import create_app
from services.surveys.domain import Provenance
from shared import topology
from shared.broker import declare_topology
from shared.events import Envelope
from shared.unit_of_work import UnitOfWork
from tests.support.auth import signed_client
from tests.support.services import Running, processed_ids, unpublished, wait_for
from tests.surveys.conftest import ANSWERS, response_body


@pytest.fixture
def running():
    workers = Running()
    yield workers
    workers.close()


def drain(amqp_url, queue) -> list[Envelope]:
    """Take every message waiting in a queue (acked: the test is its only reader)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    taken = []
    while True:
        method, _properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        taken.append(Envelope.from_json(body))
    connection.close()
    return taken


def test_a_low_score_reaches_the_tickets_queue_with_its_provenance(settings_factory, running, amqp_url):
    settings, database = settings_factory("surveys")
    declare_topology(settings)
    client = signed_client(create_app(replace(settings, options={"SURVEY_LINK_SECRET": "s"})))
    body = response_body(answers={**ANSWERS, "recommend_product": 5}, entry_id=str(uuid.uuid4()))
    response = client.post("/responses", json=body)
    assert response.status_code == 201
    running.relay(database, settings)

    seen: list[Envelope] = []
    wait_for(lambda: seen.extend(drain(amqp_url, topology.work_queue("tickets"))) or seen, what="low score in tickets")
    (low,) = seen
    assert low.type == "survey.low_score" and low.source == "surveys"
    assert low.data["response_id"] == response.json["id"]
    assert low.data["low_questions"] == ["recommend_product"]
    assert (low.data["entry_id"], low.data["call_id"], low.data["agent_id"]) == (
        body["entry_id"],
        body["call_id"],
        "agent-7",
    )
    completed = drain(amqp_url, topology.work_queue("callrouting"))
    assert [e.type for e in completed] == ["survey.completed"]  # the contact-frequency rule's input


def test_a_duplicated_ticket_resolved_requests_exactly_one_resurvey(settings_factory, running, amqp_url):
    settings, database = settings_factory("surveys")
    declare_topology(settings)
    with UnitOfWork(database, source="surveys") as uow:
        response = responses.submit_response(
            uow,
            domain.LowScoreRule(),
            template_id=domain.DEFAULT_TEMPLATE_ID,
            template_version=None,
            customer_id=str(uuid.uuid4()),
            channel="agent",
            answers={**ANSWERS, "recommend_store": 2},
            comment=None,
            language="en",
            partial=False,
            provenance=Provenance(agent_id="agent-1", purchase_id=str(uuid.uuid4())),
        )
    ticket_id = str(uuid.uuid4())

    def resolved(at: str) -> Envelope:
        data = {
            "ticket_id": ticket_id,
            "customer_id": response["customer_id"],
            "category": "service_recovery",
            "priority": "urgent",
            "assignee_id": "agent-2",
            "call_id": None,
            "survey_response_id": response["response_id"],
            "resolved_at": at,
            "within_sla": True,
        }
        return Envelope(type="ticket.resolved", data=data, source="tickets").validate()

    first, reopened_and_resolved_again = resolved("2026-11-20T10:00:00Z"), resolved("2026-11-21T09:00:00Z")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for envelope in (first, first, reopened_and_resolved_again):  # the first one delivered twice
        channel.basic_publish("events", "ticket.resolved", envelope.to_json(), mandatory=True)
    connection.close()

    running.consumer(database, settings)
    running.relay(database, settings)
    wait_for(
        lambda: {first.id, reopened_and_resolved_again.id} <= set(processed_ids(database)), what="both events handled"
    )
    wait_for(lambda: unpublished(database) == 0, what="outbox relayed")

    delivered = [e for e in drain(amqp_url, topology.work_queue("callrouting")) if e.type == "followup.requested"]
    (followup,) = delivered
    assert followup.data == {
        "request_id": domain.resurvey_request_id(response["response_id"]),
        "purpose": "resurvey",
        "customer_id": response["customer_id"],
        "purchase_id": response["purchase_id"],
        "survey_response_id": response["response_id"],
        "ticket_id": ticket_id,
        "due_at": "2026-11-27T10:00:00.000000Z",  # resolved + RESURVEY_DELAY_DAYS (7)
    }
