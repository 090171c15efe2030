"""The tickets consumer on the real broker: a low survey score opens one service-recovery
ticket however often it is delivered; a connected call linked to a ticket is its first response."""

import uuid
from datetime import UTC, datetime, timedelta

import pika
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.tickets import customers, ticket_cases
from services.tickets.events import HANDLERS
from services.tickets.models import Ticket
from shared import event_catalog
from shared.backbone import outbox
from shared.broker import declare_topology
from shared.errors import Conflict
from shared.events import Envelope
from shared.unit_of_work import UnitOfWork
from tests.support.services import Running, processed_ids, wait_for


@pytest.fixture
def running():
    workers = Running()
    yield workers
    workers.close()


@pytest.fixture
def tickets(settings_factory, running):
    settings, database = settings_factory("tickets")
    declare_topology(settings)
    running.consumer(database, settings)
    return database


def publish(amqp_url, *envelopes):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for envelope in envelopes:
        channel.basic_publish("events", envelope.type, envelope.to_json(), mandatory=True)
    connection.close()


def new_customer(database):
    with UnitOfWork(database, source="tickets") as uow:
        return customers.create_customer(uow, name="Ada", phone="+4915112345678", email=None)


def low_score(customer_id, response_id, call_id="CA123"):
    return Envelope(
        type="survey.low_score",
        source="surveys",
        data={
            "response_id": response_id,
            "customer_id": customer_id,
            "template_id": str(uuid.uuid4()),
            "template_version": 1,
            "channel": "agent",
            "agent_id": "agent-3",
            "call_id": call_id,
            "entry_id": None,
            "campaign_id": None,
            "purchase_id": None,
            "product": "Kettle",
            "answers": {"product": 8, "service": 3, "recommend_store": 5},
            "comment": "Nobody called back",
            "completed_at": "2026-11-23T10:00:00Z",
            "low_questions": ["service", "recommend_store"],
        },
    ).validate()


def tickets_of(database):
    with database.engine.connect() as connection:
        return list(connection.execute(select(Ticket.__table__)))


def test_the_consumer_handles_exactly_the_events_the_catalog_routes_to_tickets():
    assert set(HANDLERS) == set(event_catalog.consumed_by("tickets")) == {"survey.low_score", "call.completed"}


def test_a_low_score_delivered_twice_opens_one_service_recovery_ticket(tickets, amqp_url):
    database = tickets
    ada = new_customer(database)
    response_id = str(uuid.uuid4())
    event = low_score(ada.id, response_id)
    # the same envelope twice, and a second event about the same response (a republish)
    publish(amqp_url, event, event, low_score(ada.id, response_id))
    wait_for(lambda: len(processed_ids(database)) == 2, what="both distinct events handled")
    (ticket,) = tickets_of(database)
    assert (ticket.category, ticket.priority, ticket.channel) == ("service_recovery", "urgent", "survey")
    assert (ticket.survey_response_id, ticket.call_id, ticket.customer_id) == (response_id, "CA123", ada.id)
    assert "service 3" in ticket.subject and "Nobody called back" in ticket.description
    assert ticket.first_response_due_at is not None and ticket.resolution_due_at is not None
    # urgent SLA: first response within the urgent policy's 60 minutes
    assert (ticket.first_response_due_at - ticket.created_at) == timedelta(minutes=60)
    created = [
        Envelope.from_json(row.envelope.encode()) for row in _outbox(database) if row.event_type == "ticket.created"
    ]
    assert [envelope.data["survey_response_id"] for envelope in created] == [response_id]


def test_the_database_refuses_a_second_ticket_for_one_survey_response(settings_factory, monkeypatch):
    _, database = settings_factory("tickets")
    body = {"subject": "S", "category": "service_recovery", "survey_response_id": str(uuid.uuid4())}
    with UnitOfWork(database, source="tickets") as uow:
        ticket_cases.create_ticket(uow, body, None)
    with pytest.raises(Conflict), UnitOfWork(database, source="tickets") as uow:
        ticket_cases.create_ticket(uow, body, None)  # the service says so first (409 naming the ticket)
    # and two racing requests, both past that check, still make one ticket: the database refuses
    monkeypatch.setattr(ticket_cases, "_ensure_response_has_no_ticket", lambda uow, response_id: None)
    with pytest.raises(IntegrityError), UnitOfWork(database, source="tickets") as uow:
        ticket_cases.create_ticket(uow, body, None)


def test_a_connected_call_linked_to_a_ticket_is_its_first_response(tickets, amqp_url):
    database = tickets
    with UnitOfWork(database, source="tickets") as uow:
        linked = ticket_cases.create_ticket(uow, {"subject": "Call me", "category": "question"}, None)
    with UnitOfWork(database, source="tickets") as uow:
        unanswered = ticket_cases.create_ticket(uow, {"subject": "Missed", "category": "question"}, None)
    answered_at = datetime.now(UTC) + timedelta(minutes=5)

    def completed(ticket_id, answered):
        return Envelope(
            type="call.completed",
            source="callrouting",
            data={
                "call_id": f"CA-{uuid.uuid4().hex[:8]}",
                "customer_id": None,
                "queue": "support",
                "agent_id": "agent-4",
                "reason": "question",
                "ticket_id": ticket_id,
                "enqueued_at": None,
                "answered_at": answered,
                "ended_at": (answered_at + timedelta(minutes=3)).isoformat(),
                "talk_seconds": 180.0,
                "wrap_up_seconds": 20.0,
            },
        ).validate()

    first_call = completed(linked["id"], answered_at.isoformat())
    later_call = completed(linked["id"], (answered_at + timedelta(hours=1)).isoformat())
    publish(amqp_url, first_call, completed(unanswered["id"], None))
    wait_for(lambda: len(processed_ids(database)) == 2, what="calls handled")
    publish(amqp_url, later_call, completed(None, answered_at.isoformat()))
    wait_for(lambda: len(processed_ids(database)) == 4, what="later calls handled")

    rows = {row.id: row for row in tickets_of(database)}
    assert rows[linked["id"]].first_responded_at == answered_at
    assert rows[linked["id"]].call_id == first_call.data["call_id"]
    assert rows[linked["id"]].sla_check_at is not None, "the resolution clock still runs"
    assert rows[unanswered["id"]].first_responded_at is None, "a call never answered is no response"
    updates = [row for row in _outbox(database) if row.event_type == "ticket.updated"]
    assert len(updates) == 1


def _outbox(database):
    with database.engine.connect() as connection:
        return list(connection.execute(select(outbox).order_by(outbox.c.id)))
