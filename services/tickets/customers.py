"""The customer directory's use cases: create, change, find and merge customers, and their value segment.

An unknown customer raises ``shared.errors.NotFound``; a merged one read by id raises :class:`Redirect`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import exists, func, or_, select, update

from shared.db import add_new
from shared.errors import Conflict, Invalid, NotFound
from shared.models import new_id, utcnow
from shared.phones import language_of, time_zone_of
from shared.schemas import page_of
from shared.unit_of_work import UnitOfWork

from . import domain, privacy
from .models import (
    Customer,
    CustomerPhone,
    Mail,
    Purchase,
    Ticket,
)


class Redirect(Exception):
    """The customer was merged: answer with the survivor."""

    def __init__(self, into_id: str):
        super().__init__(into_id)
        self.into_id = into_id


@dataclass(frozen=True)
class SegmentThresholds:
    a_min: Decimal = Decimal("1000")
    b_min: Decimal = Decimal("250")

    @classmethod
    def from_settings(cls, settings) -> SegmentThresholds:
        return cls(Decimal(settings.option("SEGMENT_A_MIN", "1000")), Decimal(settings.option("SEGMENT_B_MIN", "250")))


CUSTOMER_EVENT_FIELDS = (
    "name", "phone", "email", "phones", "time_zone", "do_not_call", "marketing_consent", "segment", "language",
)  # fmt: skip


def _set_phones(customer: Customer, phones: list[str]) -> None:
    kept = {number.phone: number for number in customer.numbers}
    numbers = []
    for position, phone in enumerate(phones):
        number = kept.get(phone) or CustomerPhone(phone=phone)
        number.position = position
        numbers.append(number)
    customer.numbers = numbers
    customer.phone = phones[0] if phones else None


def customer_event(customer: Customer) -> dict:
    return {"customer_id": customer.id, **{name: getattr(customer, name) for name in CUSTOMER_EVENT_FIELDS}}


def _primary_first(phone: str | None, phones: list[str] | None) -> list[str]:
    ordered = ([phone] if phone else []) + list(phones or [])
    return list(dict.fromkeys(ordered))


def create_customer(uow: UnitOfWork, **fields) -> Customer:
    """A new customer from ``new_customer``'s fields, committed."""
    customer = new_customer(uow, **fields)
    uow.commit()
    return customer


def new_customer(
    uow: UnitOfWork,
    *,
    name: str,
    phone: str | None = None,
    email: str | None = None,
    phones: list[str] | None = None,
    time_zone: str | None = None,
    do_not_call: bool = False,
    marketing_consent: bool = False,
    language: str | None = None,
) -> Customer:
    """A new customer, announced, not committed (``create_customer`` commits; other use cases do
    more in the same transaction). Numbers arrive in E.164 (the API normalises them); the first is
    the primary one. The time zone and the language default from the primary number's country."""
    numbers = _primary_first(phone, phones)
    if time_zone is None and numbers:
        time_zone = time_zone_of(numbers[0])
    if language is None and numbers:
        language = language_of(numbers[0])
    now = utcnow()
    customer = Customer(
        id=new_id(),
        name=name.strip(),
        search_name=domain.search_form(name),
        language=language,
        email=email.strip().lower() if email else None,
        time_zone=time_zone,
        do_not_call=do_not_call,
        marketing_consent=marketing_consent,
        segment="C",  # no purchases yet: the lowest value segment
        created_at=now,
        updated_at=now,
    )
    _set_phones(customer, numbers)
    for number in customer.numbers:
        number.customer_id = customer.id
    # Announced first, so the write lock (taken by the first insert) is held for less time.
    uow.publish("customer.created", customer_event(customer))
    add_new(uow.session, customer, *customer.numbers)
    return customer


def load_customer(uow: UnitOfWork, customer_id: str, *, follow: bool = False) -> Customer:
    customer = uow.session.get(Customer, customer_id) if domain.looks_like_id(customer_id) else None
    if customer is None:
        raise NotFound(f"No customer {customer_id}.")
    if customer.merged_into_id and follow:
        return load_customer(uow, customer.merged_into_id, follow=True)
    return customer


def get_customer(uow: UnitOfWork, customer_id: str) -> Customer:
    """The customer; raises NotFound if unknown and Redirect for a merged one."""
    customer = load_customer(uow, customer_id)
    if customer.merged_into_id:
        raise Redirect(customer.merged_into_id)
    return customer


def update_customer(uow: UnitOfWork, customer_id: str, changes: dict) -> Customer:
    customer = load_customer(uow, customer_id)
    if customer.merged_into_id:
        raise Conflict(f"Customer {customer_id} was merged into {customer.merged_into_id}; change that one.")
    privacy.refuse_if_erased(customer)
    before = customer_event(customer)
    phones = before["phones"]
    if "phones" in changes or "phone" in changes:
        if "phones" in changes:
            phones = _primary_first(changes.get("phone"), changes["phones"])
        else:
            phones = _primary_first(changes["phone"], [p for p in phones if p != changes["phone"]])
        _set_phones(customer, phones)
        if customer.time_zone is None and phones and "time_zone" not in changes:
            customer.time_zone = time_zone_of(phones[0])
    for name in ("name", "email", "time_zone", "do_not_call", "marketing_consent", "language"):
        if name in changes:
            value = changes[name]
            if name == "name":
                value = value.strip()
                customer.search_name = domain.search_form(value)
            if name == "email" and value:
                value = value.strip().lower()
            setattr(customer, name, value)
    after = customer_event(customer)
    changed = [name for name in CUSTOMER_EVENT_FIELDS if before[name] != after[name]]
    if changed:
        customer.updated_at = utcnow()
        uow.session.flush()
        uow.publish("customer.updated", {**after, "changed": changed})
    uow.commit()
    return customer


def find_customers(
    uow: UnitOfWork, *, phone: str | None, email: str | None, q: str | None, limit: int, offset: int
) -> tuple[list[Customer], int]:
    """Customers (merged ones excluded) by number, by e-mail, or by a piece of name or e-mail."""
    query = select(Customer).where(Customer.merged_into_id.is_(None))
    if phone is not None:
        holders = select(CustomerPhone.customer_id).where(CustomerPhone.phone == phone)
        query = query.where(Customer.id.in_(holders))
    if email is not None:
        query = query.where(Customer.email == email.strip().lower())
    if q:
        # Names compare folded (case and accents off: "Ines" finds "Inès"); e-mail addresses are stored lower-case.
        pattern = f"%{domain.escape_like(domain.search_form(q))}%"
        plain = f"%{domain.escape_like(q.strip().lower())}%"
        query = query.where(
            or_(Customer.search_name.like(pattern, escape="\\"), Customer.email.like(plain, escape="\\"))
        )
    return page_of(uow.session, query.order_by(Customer.name, Customer.id), limit, offset, scalars=True)


def find_duplicates(uow: UnitOfWork, limit: int, offset: int) -> tuple[list[dict], int]:
    """A page of the groups of active customers sharing a number (first), an e-mail address, or a
    name with a customer made from a mail sender (last), and how many groups there are in all."""
    groups: list[dict] = []
    total = 0
    for kind in (_phone_duplicates, _email_duplicates, _mail_sender_duplicates):
        found, count = kind(uow, limit - len(groups), max(offset - total, 0))
        groups += found
        total += count
    return groups, total


_ACTIVE = Customer.merged_into_id.is_(None)


def _phone_duplicates(uow: UnitOfWork, limit: int, offset: int) -> tuple[list[dict], int]:
    shared_phones = (
        select(CustomerPhone.phone)
        .join(Customer, Customer.id == CustomerPhone.customer_id)
        .where(_ACTIVE)
        .group_by(CustomerPhone.phone)
        .having(func.count() > 1)
        .order_by(CustomerPhone.phone)
    )
    phones, total = page_of(uow.session, shared_phones, limit, offset, scalars=True)
    if not phones:
        return [], total
    holders = (
        select(CustomerPhone.phone, CustomerPhone.customer_id)
        .join(Customer, Customer.id == CustomerPhone.customer_id)
        .where(_ACTIVE, CustomerPhone.phone.in_(phones))
        .order_by(CustomerPhone.phone, Customer.created_at, Customer.id)
    )
    by_phone: dict[str, list[str]] = {}
    for phone, customer_id in uow.session.execute(holders):
        by_phone.setdefault(phone, []).append(customer_id)
    return [{"by": "phone", "value": phone, "customer_ids": ids} for phone, ids in by_phone.items()], total


def _email_duplicates(uow: UnitOfWork, limit: int, offset: int) -> tuple[list[dict], int]:
    shared_emails = (
        select(Customer.email)
        .where(_ACTIVE, Customer.email.is_not(None))
        .group_by(Customer.email)
        .having(func.count() > 1)
        .order_by(Customer.email)
    )
    emails, total = page_of(uow.session, shared_emails, limit, offset, scalars=True)
    if not emails:
        return [], total
    holders = (
        select(Customer.email, Customer.id)
        .where(_ACTIVE, Customer.email.in_(emails))
        .order_by(Customer.email, Customer.created_at, Customer.id)
    )
    by_email: dict[str, list[str]] = {}
    for email, customer_id in uow.session.execute(holders):
        by_email.setdefault(email, []).append(customer_id)
    return [{"by": "email", "value": email, "customer_ids": ids} for email, ids in by_email.items()], total


def _mail_sender_duplicates(uow: UnitOfWork, limit: int, offset: int) -> tuple[list[dict], int]:
    """Customers made from an unknown mail sender who share their name with another active customer:
    likely the same person writing from a new address (``by: "name"``, the mail-made one last)."""
    made_by_mail = select(Mail.customer_id).where(Mail.created_customer.is_(True))
    other = Customer.__table__.alias("other")
    namesake = exists().where(
        func.lower(other.c.name) == func.lower(Customer.name),
        other.c.merged_into_id.is_(None),
        other.c.id != Customer.id,
    )
    made = (
        select(Customer.id, Customer.name)
        .where(Customer.id.in_(made_by_mail), _ACTIVE, namesake)
        .order_by(Customer.name, Customer.id)
    )
    rows, total = page_of(uow.session, made, limit, offset)
    groups = []
    for made_id, name in rows:
        others = uow.session.scalars(
            select(other.c.id)
            .where(
                func.lower(other.c.name) == func.lower(name), other.c.merged_into_id.is_(None), other.c.id != made_id
            )
            .order_by(other.c.created_at, other.c.id)
        )
        groups.append({"by": "name", "value": name, "customer_ids": [*others, made_id]})
    return groups, total


def merge_customers(uow: UnitOfWork, merged_id: str, into_id: str, thresholds: SegmentThresholds) -> Customer:
    """Merge a duplicate into the survivor: its tickets, purchases and numbers move over."""
    if merged_id == into_id:
        raise Conflict("A customer cannot be merged into itself.")
    merged = load_customer(uow, merged_id)
    try:
        into = load_customer(uow, into_id)
    except NotFound:
        raise Invalid({"into": "No such customer."}) from None
    for customer in (merged, into):
        if customer.merged_into_id:
            raise Conflict(f"Customer {customer.id} was already merged into {customer.merged_into_id}.")
        privacy.refuse_if_erased(customer)
    before = customer_event(into)
    phones = _primary_first(None, before["phones"] + merged.phones)
    merged.numbers = []  # the numbers now find the survivor
    uow.session.flush()
    _set_phones(into, phones)
    uow.session.execute(update(Ticket).where(Ticket.customer_id == merged.id).values(customer_id=into.id))
    uow.session.execute(update(Purchase).where(Purchase.customer_id == merged.id).values(customer_id=into.id))
    # Earlier duplicates of the merged record now redirect straight to the survivor.
    uow.session.execute(update(Customer).where(Customer.merged_into_id == merged.id).values(merged_into_id=into.id))
    into.email = into.email or merged.email
    into.time_zone = into.time_zone or merged.time_zone
    into.do_not_call = into.do_not_call or merged.do_not_call  # a "do not call" is never lost in a merge
    now = utcnow()
    merged.merged_into_id = into.id
    merged.updated_at = now
    uow.session.flush()
    into.segment = segment_of(uow, into.id, thresholds, now)
    after = customer_event(into)
    into.updated_at = now
    uow.session.flush()
    uow.publish("customer.merged", {"merged_customer_id": merged.id, "into_customer_id": into.id})
    changed = [name for name in CUSTOMER_EVENT_FIELDS if before[name] != after[name]]
    uow.publish("customer.updated", {**after, "changed": changed})
    uow.commit()
    return into


SEGMENT_WINDOW = timedelta(days=365)


def segment_of(uow: UnitOfWork, customer_id: str, thresholds: SegmentThresholds, now: datetime) -> str:
    value = uow.session.scalar(
        select(func.coalesce(func.sum(Purchase.amount), 0)).where(
            Purchase.customer_id == customer_id, Purchase.purchased_at >= now - SEGMENT_WINDOW
        )
    )
    return domain.segment_for(Decimal(value), thresholds.a_min, thresholds.b_min)
