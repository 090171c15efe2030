"""What the call lists take from other services' events, through the real broker and consumer,
and what they do with customers' consent, zones and merges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pika
import pytest
from sqlalchemy import select

from services.callrouting.models import CallEntry, Campaign, CustomerContact, DoNotCall
from services.callrouting.outbound.handout import sweep_lapsed_leases_job
from shared.broker import declare_topology
from shared.errors import Conflict
from shared.events import Envelope
from shared.unit_of_work import UnitOfWork
from tests.callrouting.call_list_support import (
    add_customer,
    deliver,
    load_due_entries,
    make_agent,
    make_campaign,
    next_call,
    purchase,
    record_outcome,
)
from tests.support.services import Running, processed_ids, wait_for


@pytest.fixture
def running():
    workers = Running()
    yield workers
    workers.close()


def entries(database, **where) -> list:
    with database.engine.connect() as connection:
        query = select(CallEntry).where(*(getattr(CallEntry, name) == value for name, value in where.items()))
        return connection.execute(query).all()


def publish_raw(amqp_url: str, envelope: Envelope, times: int = 1) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for _ in range(times):
        channel.basic_publish("events", envelope.type, envelope.to_json(), mandatory=True)
    connection.close()


def test_a_purchase_event_schedules_one_entry_per_campaign_however_often_it_is_delivered(
    settings_factory, running, amqp_url
):
    settings, database = settings_factory("callrouting")
    declare_topology(settings)
    customer = add_customer(database, time_zone="America/Chicago")
    follow_up = make_campaign(database, delay_days=30)
    accessory = make_campaign(database, name="Accessory", delay_days=14)
    make_campaign(database, name="Paused", active=False)
    make_campaign(database, name="Re-survey", purpose="resurvey")
    bought_at = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    data = purchase(customer, bought_at)
    envelope = Envelope(type="purchase.recorded", data=data, source="tickets").validate()
    publish_raw(amqp_url, envelope, times=3)  # redelivered
    # ...and announced again under a new event id, as a publisher retrying after a crash might
    again = Envelope(type="purchase.recorded", data=data, source="tickets").validate()
    publish_raw(amqp_url, again)
    running.consumer(database, settings)
    wait_for(lambda: {envelope.id, again.id} <= set(processed_ids(database)), what="both events handled")
    scheduled = entries(database, purchase_id=data["purchase_id"])
    assert sorted((row.campaign_id, row.due_at) for row in scheduled) == sorted(
        [
            (follow_up.campaign_id, bought_at + timedelta(days=30)),
            (accessory.campaign_id, bought_at + timedelta(days=14)),
        ]
    )
    assert {(row.state, row.origin, row.time_zone, row.customer_id) for row in scheduled} == {
        ("pending", "purchase", "America/Chicago", customer)
    }


def test_no_entry_for_a_customer_on_the_do_not_call_list_or_contacted_recently(database_factory):
    database = database_factory.migrated("callrouting")
    make_campaign(database, contact_frequency_days=30)
    opted_out = add_customer(database, do_not_call=True)
    surveyed = add_customer(database)
    deliver(database, "survey.completed", survey(surveyed, datetime.now(UTC) - timedelta(days=3)), "surveys")
    surveyed_long_ago = add_customer(database)
    deliver(database, "survey.completed", survey(surveyed_long_ago, datetime.now(UTC) - timedelta(days=45)), "surveys")
    for customer in (opted_out, surveyed, surveyed_long_ago):
        deliver(database, "purchase.recorded", purchase(customer))
    assert [row.customer_id for row in entries(database)] == [surveyed_long_ago]


def survey(customer_id: str, completed_at: datetime) -> dict:
    return {
        "response_id": str(uuid.uuid4()),
        "customer_id": customer_id,
        "template_id": str(uuid.uuid4()),
        "template_version": 1,
        "channel": "link",
        "agent_id": None,
        "call_id": None,
        "entry_id": None,
        "campaign_id": None,
        "purchase_id": None,
        "product": None,
        "answers": {"product": 9},
        "comment": None,
        "completed_at": completed_at.isoformat(),
    }


def test_a_reached_call_counts_as_a_contact_for_every_list(database_factory):
    database = database_factory.migrated("callrouting")
    make_agent(database)
    first = make_campaign(database, contact_frequency_days=30)
    customer = add_customer(database)
    deliver(database, "purchase.recorded", purchase(customer, datetime.now(UTC) - timedelta(days=31)))
    handed = next_call(database, "agent-1")
    record_outcome(database, handed.entry.entry_id, agent_id="agent-1", outcome="reached")
    make_campaign(database, name="Second list")
    deliver(database, "purchase.recorded", purchase(customer))  # bought again a day later
    assert [row.campaign_id for row in entries(database)] == [first.campaign_id]
    with database.engine.connect() as connection:
        assert connection.execute(select(CustomerContact.kind)).scalars().all() == ["call"]


def test_a_purchase_before_the_customer_is_known_is_scheduled_in_the_default_zone_then_corrected(
    database_factory, monkeypatch
):
    monkeypatch.setenv("CALLROUTING_DEFAULT_TZ", "Europe/Lisbon")
    database = database_factory.migrated("callrouting")
    make_campaign(database)
    customer = str(uuid.uuid4())
    deliver(database, "purchase.recorded", purchase(customer))
    assert [row.time_zone for row in entries(database)] == ["Europe/Lisbon"]
    add_customer(database, customer_id=customer, time_zone="Asia/Tokyo")
    assert [row.time_zone for row in entries(database)] == ["Asia/Tokyo"]
    # A zone from the number when the directory sends none
    add_customer(database, customer_id=customer, time_zone=None, phone="+12125550123")
    assert [row.time_zone for row in entries(database)] == ["America/New_York"]


def test_consent_events_keep_the_do_not_call_list(database_factory):
    database = database_factory.migrated("callrouting")
    customer = add_customer(database, phone="+4915199887766", do_not_call=True)

    def listed():
        with database.engine.connect() as connection:
            return set(connection.execute(select(DoNotCall.customer_id, DoNotCall.phone, DoNotCall.source)).all())

    assert listed() == {(customer, None, "consent"), (customer, "+4915199887766", "consent")}
    add_customer(database, customer_id=customer, phone="+4915199887766", do_not_call=False)
    assert listed() == set()


def test_a_merged_customers_open_entries_move_to_the_survivor(database_factory):
    database = database_factory.migrated("callrouting")
    make_campaign(database)
    duplicate, survivor = add_customer(database, name="Ada L."), add_customer(database, name="Ada Lovelace")
    deliver(database, "purchase.recorded", purchase(duplicate))
    deliver(database, "customer.merged", {"merged_customer_id": duplicate, "into_customer_id": survivor})
    assert [row.customer_id for row in entries(database)] == [survivor]
    # A purchase still announced under the old id lands on the survivor too.
    deliver(database, "purchase.recorded", purchase(duplicate))
    assert [row.customer_id for row in entries(database)] == [survivor, survivor]


def test_a_followup_request_puts_one_entry_on_a_resurvey_list_ignoring_contact_frequency(database_factory):
    database = database_factory.migrated("callrouting")
    customer = add_customer(database)
    deliver(database, "survey.completed", survey(customer, datetime.now(UTC) - timedelta(days=1)), "surveys")
    request = {
        "request_id": str(uuid.uuid4()),
        "purpose": "resurvey",
        "customer_id": customer,
        "purchase_id": str(uuid.uuid4()),
        "survey_response_id": str(uuid.uuid4()),
        "ticket_id": str(uuid.uuid4()),
        "due_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
    }
    deliver(database, "followup.requested", request, "surveys")
    deliver(database, "followup.requested", request, "surveys")  # a new event id, the same request
    [entry] = entries(database)
    assert (entry.origin, entry.followup_request_id, entry.purchase_id) == (
        "followup",
        request["request_id"],
        request["purchase_id"],
    )
    with UnitOfWork(database, source="callrouting") as uow:
        campaign = uow.session.get(Campaign, entry.campaign_id)
        assert (campaign.purpose, campaign.active) == ("resurvey", True)
    blocked = add_customer(database, do_not_call=True)
    deliver(database, "followup.requested", {**request, "request_id": str(uuid.uuid4()), "customer_id": blocked})
    assert len(entries(database)) == 1


def test_a_lease_that_expires_returns_the_entry_to_the_pool(database_factory):
    database = database_factory.migrated("callrouting")
    make_agent(database, "slow")
    make_agent(database, "quick")
    make_campaign(database)
    deliver(database, "purchase.recorded", purchase(add_customer(database), datetime.now(UTC) - timedelta(days=40)))
    now = datetime.now(UTC)
    taken = next_call(database, "slow", now=now, lease_seconds=60)
    assert next_call(database, "quick", now=now + timedelta(seconds=59)) is None
    again = next_call(database, "quick", now=now + timedelta(seconds=61))
    assert again.entry.entry_id == taken.entry.entry_id and again.attempt == 1
    # The agent who let it lapse no longer holds it.
    with pytest.raises(Conflict, match="does not hold"):
        record_outcome(database, taken.entry.entry_id, agent_id="slow", outcome="reached")
    entry, _ = record_outcome(database, taken.entry.entry_id, agent_id="quick", outcome="reached")
    assert entry.state == "completed"


def test_the_workers_job_returns_lapsed_leases_to_the_pool(database_factory):
    database = database_factory.migrated("callrouting")
    make_agent(database)
    make_campaign(database)
    deliver(database, "purchase.recorded", purchase(add_customer(database), datetime.now(UTC) - timedelta(days=40)))
    taken = next_call(database, "agent-1", lease_seconds=0)
    sweep_lapsed_leases_job(database, None)
    [entry] = entries(database)
    assert (entry.entry_id, entry.state, entry.leased_by) == (taken.entry.entry_id, "pending", None)


def test_the_hand_out_reads_the_window_in_each_customers_zone_across_a_dst_change(database_factory):
    database = database_factory.migrated("callrouting")
    for agent_id in ("agent-1", "agent-2", "agent-3"):
        make_agent(database, agent_id)
    weekdays = {day: ["09:00", "20:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    campaign = make_campaign(database, calling_window=weekdays)
    long_ago = datetime(2026, 3, 1, tzinfo=UTC)
    [berlin] = load_due_entries(database, campaign.campaign_id, 1, time_zone="Europe/Berlin", due_at=long_ago)
    [tokyo] = load_due_entries(database, campaign.campaign_id, 1, time_zone="Asia/Tokyo", due_at=long_ago)
    load_due_entries(database, campaign.campaign_id, 1, time_zone="America/New_York", due_at=long_ago)
    # Friday 2026-03-27 07:30 UTC: 08:30 in Berlin (CET, not yet), 16:30 in Tokyo, 03:30 in New York.
    friday = datetime(2026, 3, 27, 7, 30, tzinfo=UTC)
    assert next_call(database, "agent-1", now=friday, lease_seconds=10**7).entry.entry_id == tokyo
    assert next_call(database, "agent-2", now=friday) is None
    # Monday 2026-03-30 07:30 UTC, Berlin on CEST since Sunday: 09:30 there; New York still 03:30.
    monday = datetime(2026, 3, 30, 7, 30, tzinfo=UTC)
    assert next_call(database, "agent-2", now=monday).entry.entry_id == berlin
    assert next_call(database, "agent-3", now=monday) is None
