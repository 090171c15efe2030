"""Helpers of the call-list tests: customers through the real replica handlers, campaigns, entries."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from services.callrouting.events import HANDLERS
from services.callrouting.models import CallEntry, CallTimeZone
from services.callrouting.outbound import handout, service
from shared.config import Settings
from shared.consumer import apply_once
from shared.db import Database
from shared.events import Envelope
from shared.unit_of_work import UnitOfWork

ALWAYS = {day: ["00:00", "24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def callrouting_settings(database: Database, **options) -> Settings:
    return replace(Settings.from_env("callrouting"), database_url=database.url, options=options)


def deliver(database: Database, event_type: str, data: dict, source: str = "tickets") -> Envelope:
    """Hand an event to callrouting's own handler the way its consumer does (deduplicated by id)."""
    envelope = Envelope(type=event_type, data=data, source=source).validate()
    apply_once(database, "callrouting", HANDLERS[event_type], envelope)
    return envelope


def add_customer(
    database: Database,
    *,
    name: str = "Ada",
    phone: str | None = "auto",
    time_zone: str | None = "Europe/Berlin",
    do_not_call: bool = False,
    customer_id: str | None = None,
) -> str:
    customer_id = customer_id or str(uuid.uuid4())
    if phone == "auto":  # a number of its own: the do-not-call list works by number too
        phone = f"+49151{random.randrange(10**7, 10**8)}"
    data = {
        "customer_id": customer_id,
        "name": name,
        "phone": phone,
        "email": None,
        "phones": [phone] if phone else [],
        "time_zone": time_zone,
        "do_not_call": do_not_call,
        "marketing_consent": False,
        "segment": None,
    }
    deliver(database, "customer.created", data)
    return customer_id


def purchase(customer_id: str, purchased_at: datetime | None = None, purchase_id: str | None = None) -> dict:
    return {
        "purchase_id": purchase_id or str(uuid.uuid4()),
        "customer_id": customer_id,
        "sku": "KT-100",
        "product": "Kettle",
        "amount": "49.90",
        "currency": "EUR",
        "purchased_at": (purchased_at or datetime.now(UTC)).isoformat(),
        "source": "webshop",
        "order_ref": f"O-{uuid.uuid4().hex[:8]}",
    }


def make_campaign(database: Database, **values):
    values = {"name": "Kettle follow-up", "calling_window": ALWAYS, **values}
    with UnitOfWork(database, source="callrouting") as uow:
        return service.create_campaign(uow, **values)


def make_agent(database: Database, agent_id: str = "agent-1", skills=()) -> None:
    with UnitOfWork(database, source="callrouting") as uow:
        service.register_agent(uow, agent_id, agent_id.title(), list(skills))


def load_due_entries(
    database: Database, campaign_id: str, count: int, *, time_zone: str = "Europe/Berlin", due_at=None
) -> list[str]:
    """``count`` due entries by direct SQL, as a bulk load would (no customers behind them)."""
    now = datetime.now(UTC)
    due_at = due_at or now - timedelta(hours=1)
    rows = [
        {
            "entry_id": str(uuid.uuid4()),
            "campaign_id": campaign_id,
            "customer_id": str(uuid.uuid4()),
            "purchase_id": None,
            "followup_request_id": None,
            "schedule_key": f"entry:{uuid.uuid4()}",
            "origin": "api",
            "state": "pending",
            "due_at": due_at,
            "time_zone": time_zone,
            "shuffle_key": random.random(),
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with database.sessions() as session:
        session.execute(insert(CallEntry), rows)
        if not session.get(CallTimeZone, time_zone):
            session.add(CallTimeZone(time_zone=time_zone))
        session.commit()
    return [row["entry_id"] for row in rows]


def next_call(database: Database, agent_id: str, **kwargs):
    with UnitOfWork(database, source="callrouting") as uow:
        return handout.next_call(uow, agent_id, **kwargs)


def record_outcome(database: Database, entry_id: str, **kwargs):
    with UnitOfWork(database, source="callrouting") as uow:
        return service.record_outcome(uow, entry_id, **kwargs)
