"""Purchases: recorded once per (source, order_ref), each recomputing its customer's segment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared.errors import Conflict
from shared.models import utcnow
from shared.schemas import page_of
from shared.unit_of_work import UnitOfWork

from . import privacy
from .customers import SEGMENT_WINDOW, SegmentThresholds, customer_event, load_customer, segment_of
from .models import (
    Customer,
    Purchase,
)


def purchase_view(purchase: Purchase, recorded_at: datetime | None = None) -> dict:
    """A purchase as the API and the seed write it (``recorded_at``: when it was recorded, if not the row's)."""
    return {
        "id": purchase.id,
        "customer_id": purchase.customer_id,
        "sku": purchase.sku,
        "product": purchase.product,
        "amount": purchase.amount,
        "currency": purchase.currency,
        "purchased_at": purchase.purchased_at,
        "source": purchase.source,
        "order_ref": purchase.order_ref,
        "recorded_at": recorded_at or purchase.recorded_at,
    }


def record_purchase(uow: UnitOfWork, customer_id: str, body: dict, thresholds: SegmentThresholds) -> tuple[dict, bool]:
    """(the purchase, whether it is new): an order already recorded from its source is returned as is."""
    customer = load_customer(uow, customer_id, follow=True)
    privacy.refuse_if_erased(customer)
    existing = uow.session.scalars(
        select(Purchase).where(Purchase.source == body["source"], Purchase.order_ref == body["order_ref"])
    ).first()
    if existing is not None:
        if existing.customer_id != customer.id:
            raise Conflict(f"Order {body['order_ref']} from {body['source']} belongs to another customer.")
        return purchase_view(existing), False
    purchase = Purchase(customer_id=customer.id, **body)
    uow.session.add(purchase)
    try:
        uow.session.flush()
    except IntegrityError:
        raise Conflict("The same order is being recorded concurrently; retry to get it.") from None
    uow.publish(
        "purchase.recorded",
        {
            "purchase_id": purchase.id,
            "customer_id": customer.id,
            "sku": purchase.sku,
            "product": purchase.product,
            "amount": str(purchase.amount),
            "currency": purchase.currency,
            "purchased_at": purchase.purchased_at.isoformat(),
            "source": purchase.source,
            "order_ref": purchase.order_ref,
        },
    )
    segment = segment_of(uow, customer.id, thresholds, utcnow())
    if segment != customer.segment:
        customer.segment = segment
        customer.updated_at = utcnow()
        uow.publish("customer.updated", {**customer_event(customer), "changed": ["segment"]})
    uow.commit()
    return purchase_view(purchase), True


def refresh_segments(uow: UnitOfWork, thresholds: SegmentThresholds, since: datetime, now: datetime) -> int:
    """Segments of customers whose purchases left the 12-month window since ``since``; how many changed.

    Recording a purchase recomputes its customer's segment; this catches the other direction,
    value ageing out. Running it again over the same period changes nothing.
    """
    aged = (
        select(Purchase.customer_id)
        .where(Purchase.purchased_at >= since - SEGMENT_WINDOW, Purchase.purchased_at < now - SEGMENT_WINDOW)
        .distinct()
    )
    changed = 0
    for customer in uow.session.scalars(
        select(Customer).where(Customer.id.in_(aged), Customer.merged_into_id.is_(None))
    ):
        segment = segment_of(uow, customer.id, thresholds, now)
        if segment != customer.segment:
            customer.segment = segment
            customer.updated_at = now
            uow.publish("customer.updated", {**customer_event(customer), "changed": ["segment"]})
            changed += 1
    uow.commit()
    return changed


def list_purchases(uow: UnitOfWork, customer_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
    """A page of the customer's purchases, newest first (a merged customer's are the survivor's)."""
    customer = load_customer(uow, customer_id, follow=True)
    query = (
        select(Purchase)
        .where(Purchase.customer_id == customer.id)
        .order_by(Purchase.purchased_at.desc(), Purchase.id.desc())
    )
    purchases, total = page_of(uow.session, query, limit, offset, scalars=True)
    return [purchase_view(purchase) for purchase in purchases], total
