"""The events the demo history would have sent, for the services that keep replicas of it.

A service's seed applies these with its own consumer handlers (``events.HANDLERS``), so a
replica holds what the real event would have left there. Each envelope is checked against the
event catalog as a publisher's would be, so a contract change breaks the seed loudly.
"""

from __future__ import annotations

from shared.events import Envelope, isoformat_utc
from shared.phones import language_of

from .plan import DemoAttempt, DemoCampaign, DemoCustomer, DemoEntry, DemoPurchase, DemoWorld, demo_id


def _envelope(world: DemoWorld, event_type: str, source: str, key: str, data: dict, occurred_at) -> Envelope:
    return Envelope(
        type=event_type,
        data=data,
        source=source,
        id=demo_id(world.seed, f"event:{event_type}", key),
        occurred_at=isoformat_utc(occurred_at),
        correlation_id=f"seed-{world.seed}",
    ).validate()


def customer_created(world: DemoWorld, customer: DemoCustomer) -> Envelope:
    """As the tickets service announces a new customer (its whole record), as of the seeding."""
    data = {
        "customer_id": customer.id,
        "name": customer.name,
        "phone": customer.phone,
        "email": customer.email,
        "phones": list(customer.phones),
        "time_zone": customer.time_zone,
        "do_not_call": customer.do_not_call,
        "marketing_consent": customer.marketing_consent,
        "segment": customer.segment,
        "language": language_of(customer.phone),
    }
    # Dated at the seeding: the customer's current state (segment included) is what it holds, and
    # any real change made later is newer and wins in every replica.
    return _envelope(world, "customer.created", "tickets", customer.id, data, world.now)


def purchase_recorded(world: DemoWorld, purchase: DemoPurchase) -> Envelope:
    data = {
        "purchase_id": purchase.id,
        "customer_id": purchase.customer_id,
        "sku": purchase.sku,
        "product": purchase.product,
        "amount": str(purchase.amount),
        "currency": purchase.currency,
        "purchased_at": isoformat_utc(purchase.purchased_at),
        "source": purchase.source,
        "order_ref": purchase.order_ref,
    }
    return _envelope(world, "purchase.recorded", "tickets", purchase.id, data, purchase.purchased_at)


def callentry_completed(
    world: DemoWorld, campaign: DemoCampaign, entry: DemoEntry, attempt: DemoAttempt, entry_state: str
) -> Envelope:
    data = {
        "entry_id": entry.id,
        "campaign_id": campaign.id,
        "campaign_purpose": campaign.purpose,
        "customer_id": entry.customer_id,
        "purchase_id": entry.purchase_id,
        "agent_id": attempt.agent_id,
        "attempt": attempt.number,
        "outcome": attempt.outcome,
        "offer_accepted": attempt.offer_accepted,
        "entry_state": entry_state,
        "started_at": isoformat_utc(attempt.started_at),
        "ended_at": isoformat_utc(attempt.ended_at),
        "survey_delivery": campaign.survey_delivery,
    }
    return _envelope(world, "callentry.completed", "callrouting", attempt.id, data, attempt.ended_at)
