"""The customer replica every consuming service keeps (shared/replicas.py): whole records,
newest wins whatever the arrival order, every phone number findable, merges redirect."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.callrouting.models import CustomerReplica, CustomerReplicaPhone
from shared.events import Envelope, isoformat_utc
from shared.replicas import customer_replica_handlers, find_customers_by_phone, resolve_customer_id
from shared.unit_of_work import UnitOfWork

HANDLERS = customer_replica_handlers(CustomerReplica, CustomerReplicaPhone)
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def database(database_factory):
    return database_factory.migrated("callrouting")


def customer(customer_id, **changes):
    record = {
        "customer_id": customer_id,
        "name": "Ada Lovelace",
        "phone": "+442079460958",
        "email": None,
        "phones": ["+442079460958", "+447700900123"],
        "time_zone": "Europe/London",
        "do_not_call": False,
        "marketing_consent": False,
        "segment": "B",
    }
    return {**record, **changes}


def apply(database, event_type, data, at: datetime):
    envelope = Envelope(type=event_type, data=data, source="tickets", occurred_at=isoformat_utc(at)).validate()
    with UnitOfWork(database, "callrouting") as uow:
        HANDLERS[event_type](uow, envelope)
        uow.commit()


def read(database, customer_id):
    with UnitOfWork(database, "callrouting", read_only=True) as uow:
        return uow.session.get(CustomerReplica, customer_id)


def test_a_created_customer_is_findable_by_every_number(database):
    ada = str(uuid.uuid4())
    apply(database, "customer.created", customer(ada), T0)
    with UnitOfWork(database, "callrouting", read_only=True) as uow:
        for number in ("+442079460958", "+447700900123"):
            assert [
                r.customer_id
                for r in find_customers_by_phone(uow.session, CustomerReplica, CustomerReplicaPhone, number)
            ] == [ada]
    replica = read(database, ada)
    assert (replica.time_zone, replica.segment, replica.do_not_call) == ("Europe/London", "B", False)


def test_an_update_replaces_the_record_and_its_numbers(database):
    ada = str(uuid.uuid4())
    apply(database, "customer.created", customer(ada), T0)
    apply(
        database,
        "customer.updated",
        customer(ada, phones=["+442079460958"], do_not_call=True, changed=["phones", "do_not_call"]),
        T0 + timedelta(minutes=1),
    )
    assert read(database, ada).do_not_call is True
    with UnitOfWork(database, "callrouting", read_only=True) as uow:
        assert find_customers_by_phone(uow.session, CustomerReplica, CustomerReplicaPhone, "+447700900123") == []


def test_a_late_older_event_never_overwrites_a_newer_state(database):
    ada = str(uuid.uuid4())
    apply(database, "customer.updated", customer(ada, name="Ada King", changed=["name"]), T0 + timedelta(minutes=5))
    apply(database, "customer.created", customer(ada, phones=["+447700900999"]), T0)  # arrives after the update
    assert read(database, ada).name == "Ada King"
    with UnitOfWork(database, "callrouting", read_only=True) as uow:  # nor its numbers
        assert find_customers_by_phone(uow.session, CustomerReplica, CustomerReplicaPhone, "+447700900999") == []
        assert find_customers_by_phone(uow.session, CustomerReplica, CustomerReplicaPhone, "+447700900123")


def test_a_merged_customer_redirects_and_its_numbers_find_only_the_survivor(database):
    duplicate, survivor = str(uuid.uuid4()), str(uuid.uuid4())
    apply(database, "customer.created", customer(duplicate), T0)
    apply(database, "customer.created", customer(survivor, phones=["+442079460958"]), T0)
    apply(
        database,
        "customer.merged",
        {"merged_customer_id": duplicate, "into_customer_id": survivor},
        T0 + timedelta(minutes=1),
    )
    with UnitOfWork(database, "callrouting", read_only=True) as uow:
        assert resolve_customer_id(uow.session, CustomerReplica, duplicate) == survivor
        assert resolve_customer_id(uow.session, CustomerReplica, survivor) == survivor
        found = find_customers_by_phone(uow.session, CustomerReplica, CustomerReplicaPhone, "+442079460958")
        assert [r.customer_id for r in found] == [survivor]
    assert read(database, duplicate).merged_into_id == survivor
