"""Customer events applied in one consumer batch (one session, one transaction) leave call
routing's do-not-call list as the last event says, whatever the earlier ones left pending."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.callrouting.events import HANDLERS
from services.callrouting.models import DoNotCall
from shared.events import Envelope, isoformat_utc
from shared.unit_of_work import UnitOfWork

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def customer_event(event_type, customer_id, do_not_call, at, **extra):
    data = {"customer_id": customer_id, "name": "Ada", "phone": "+442079460958", "do_not_call": do_not_call, **extra}
    return Envelope(type=event_type, data=data, source="tickets", occurred_at=isoformat_utc(at)).validate()


def listed(database, customer_id):
    with UnitOfWork(database, "callrouting", read_only=True) as uow:
        return uow.session.execute(select(DoNotCall.phone).where(DoNotCall.customer_id == customer_id)).all()


def test_consent_given_then_withdrawn_in_one_batch_leaves_the_customer_off_the_list(database_factory):
    database = database_factory.migrated("callrouting")
    ada = str(uuid.uuid4())
    with UnitOfWork(database, "callrouting") as uow:  # as the consumer applies a batch
        HANDLERS["customer.created"](uow, customer_event("customer.created", ada, True, T0))
        later = customer_event("customer.updated", ada, False, T0 + timedelta(seconds=1), changed=["do_not_call"])
        HANDLERS["customer.updated"](uow, later)
        uow.commit()
    assert listed(database, ada) == []


def test_consent_withdrawn_then_given_in_one_batch_puts_the_customer_on_the_list(database_factory):
    database = database_factory.migrated("callrouting")
    ada = str(uuid.uuid4())
    with UnitOfWork(database, "callrouting") as uow:
        HANDLERS["customer.created"](uow, customer_event("customer.created", ada, False, T0))
        later = customer_event("customer.updated", ada, True, T0 + timedelta(seconds=1), changed=["do_not_call"])
        HANDLERS["customer.updated"](uow, later)
        uow.commit()
    assert sorted(row.phone or "" for row in listed(database, ada)) == ["", "+442079460958"]
