"""The tickets service's use cases: each runs in one unit of work and commits once.

Bad input that only the database can judge (an unknown customer) raises ``Invalid`` naming
the field; a change the current state forbids raises ``Conflict``. Both leave the unit of
work uncommitted, so nothing is half-written.
"""

from __future__ import annotations

import json
import logging
import secrets
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, bindparam, case, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from shared.db import upsert
from shared.errors import Conflict, Invalid
from shared.phones import language_of, time_zone_of
from shared.unit_of_work import UnitOfWork

from . import domain, privacy
from .models import (
    BusinessCalendarRow,
    Counter,
    Customer,
    CustomerPhone,
    Mail,
    Purchase,
    SlaPolicyRow,
    Ticket,
    TicketChange,
    TicketComment,
    new_id,
    utcnow,
)

log = logging.getLogger(__name__)


class NotFound(LookupError):
    pass


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


# --- customers ------------------------------------------------------------------------------

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


def _customer_event(customer: Customer) -> dict:
    return {"customer_id": customer.id, **{name: getattr(customer, name) for name in CUSTOMER_EVENT_FIELDS}}


def _primary_first(phone: str | None, phones: list[str] | None) -> list[str]:
    ordered = ([phone] if phone else []) + list(phones or [])
    return list(dict.fromkeys(ordered))


def create_customer(
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
    """Numbers arrive in E.164 (the API normalises them); the first is the primary one. The time
    zone and the language default from the primary number's country."""
    customer = new_customer(
        uow,
        name=name,
        phone=phone,
        email=email,
        phones=phones,
        time_zone=time_zone,
        do_not_call=do_not_call,
        marketing_consent=marketing_consent,
        language=language,
    )
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
    """create_customer without the commit, for use cases that do more in the same transaction."""
    numbers = _primary_first(phone, phones)
    if time_zone is None and numbers:
        time_zone = time_zone_of(numbers[0])
    if language is None and numbers:
        language = language_of(numbers[0])
    now = utcnow()
    customer = Customer(
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
    uow.session.add(customer)
    uow.session.flush()
    uow.publish("customer.created", _customer_event(customer))
    return customer


def _load_customer(uow: UnitOfWork, customer_id: str, *, follow: bool = False) -> Customer:
    customer = uow.session.get(Customer, customer_id) if _looks_like_id(customer_id) else None
    if customer is None:
        raise NotFound(customer_id)
    if customer.merged_into_id and follow:
        return _load_customer(uow, customer.merged_into_id, follow=True)
    return customer


def _looks_like_id(value: str) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 36


def get_customer(uow: UnitOfWork, customer_id: str) -> Customer | None:
    """The customer, None if unknown; raises Redirect for a merged one."""
    try:
        customer = _load_customer(uow, customer_id)
    except NotFound:
        return None
    if customer.merged_into_id:
        raise Redirect(customer.merged_into_id)
    return customer


def update_customer(uow: UnitOfWork, customer_id: str, changes: dict) -> Customer:
    customer = _load_customer(uow, customer_id)
    if customer.merged_into_id:
        raise Conflict(f"Customer {customer_id} was merged into {customer.merged_into_id}; change that one.")
    privacy.refuse_if_erased(customer)
    before = _customer_event(customer)
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
    after = _customer_event(customer)
    changed = [name for name in CUSTOMER_EVENT_FIELDS if before[name] != after[name]]
    if changed:
        customer.updated_at = utcnow()
        uow.session.flush()
        uow.publish("customer.updated", {**after, "changed": changed})
    uow.commit()
    return customer


def find_customers(
    uow: UnitOfWork, *, phone: str | None, email: str | None, q: str | None, page: int, per_page: int
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
        pattern = f"%{_escape_like(domain.search_form(q))}%"
        plain = f"%{_escape_like(q.strip().lower())}%"
        query = query.where(
            or_(Customer.search_name.like(pattern, escape="\\"), Customer.email.like(plain, escape="\\"))
        )
    offset = (page - 1) * per_page
    customers = list(uow.session.scalars(query.order_by(Customer.name, Customer.id).limit(per_page).offset(offset)))
    total = _total(uow, select(func.count()).select_from(query.subquery()), customers, offset, per_page)
    return customers, total


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_duplicates(uow: UnitOfWork, limit: int = 100) -> list[dict]:
    """Groups of active customers sharing a number or an e-mail address."""
    active = Customer.merged_into_id.is_(None)
    shared_phones = (
        select(CustomerPhone.phone)
        .join(Customer, Customer.id == CustomerPhone.customer_id)
        .where(active)
        .group_by(CustomerPhone.phone)
        .having(func.count() > 1)
        .order_by(CustomerPhone.phone)
        .limit(limit)
    )
    groups = []
    phones = list(uow.session.scalars(shared_phones))
    if phones:
        holders = (
            select(CustomerPhone.phone, CustomerPhone.customer_id)
            .join(Customer, Customer.id == CustomerPhone.customer_id)
            .where(active, CustomerPhone.phone.in_(phones))
            .order_by(CustomerPhone.phone, Customer.created_at, Customer.id)
        )
        by_phone: dict[str, list[str]] = {}
        for phone, customer_id in uow.session.execute(holders):
            by_phone.setdefault(phone, []).append(customer_id)
        groups += [{"by": "phone", "value": phone, "customer_ids": ids} for phone, ids in by_phone.items()]
    shared_emails = (
        select(Customer.email)
        .where(active, Customer.email.is_not(None))
        .group_by(Customer.email)
        .having(func.count() > 1)
        .order_by(Customer.email)
        .limit(limit)
    )
    emails = list(uow.session.scalars(shared_emails))
    if emails:
        holders = (
            select(Customer.email, Customer.id)
            .where(active, Customer.email.in_(emails))
            .order_by(Customer.email, Customer.created_at, Customer.id)
        )
        by_email: dict[str, list[str]] = {}
        for email, customer_id in uow.session.execute(holders):
            by_email.setdefault(email, []).append(customer_id)
        groups += [{"by": "email", "value": email, "customer_ids": ids} for email, ids in by_email.items()]
    return groups + _mail_sender_duplicates(uow, limit)


def _mail_sender_duplicates(uow: UnitOfWork, limit: int) -> list[dict]:
    """Customers made from an unknown mail sender who share their name with another active customer:
    likely the same person writing from a new address (``by: "name"``, the mail-made one last)."""
    made_by_mail = select(Mail.customer_id).where(Mail.created_customer.is_(True))
    other = Customer.__table__.alias("other")
    pairs = uow.session.execute(
        select(Customer.id, Customer.name, other.c.id)
        .join(other, func.lower(other.c.name) == func.lower(Customer.name))
        .where(
            Customer.id.in_(made_by_mail),
            Customer.merged_into_id.is_(None),
            other.c.merged_into_id.is_(None),
            other.c.id != Customer.id,
        )
        .order_by(Customer.name, other.c.created_at, other.c.id)
        .limit(limit * 10)
    )
    groups: dict[str, dict] = {}
    for made_id, name, other_id in pairs:
        group = groups.setdefault(made_id, {"by": "name", "value": name, "customer_ids": []})
        group["customer_ids"].append(other_id)
    return [{**group, "customer_ids": [*group["customer_ids"], made_id]} for made_id, group in groups.items()][:limit]


def merge_customers(uow: UnitOfWork, merged_id: str, into_id: str, thresholds: SegmentThresholds) -> Customer:
    """Merge a duplicate into the survivor: its tickets, purchases and numbers move over."""
    if merged_id == into_id:
        raise Conflict("A customer cannot be merged into itself.")
    merged = _load_customer(uow, merged_id)
    try:
        into = _load_customer(uow, into_id)
    except NotFound:
        raise Invalid({"into": "No such customer."}) from None
    for customer in (merged, into):
        if customer.merged_into_id:
            raise Conflict(f"Customer {customer.id} was already merged into {customer.merged_into_id}.")
        privacy.refuse_if_erased(customer)
    before = _customer_event(into)
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
    into.segment = _segment_of(uow, into.id, thresholds, now)
    after = _customer_event(into)
    into.updated_at = now
    uow.session.flush()
    uow.publish("customer.merged", {"merged_customer_id": merged.id, "into_customer_id": into.id})
    changed = [name for name in CUSTOMER_EVENT_FIELDS if before[name] != after[name]]
    uow.publish("customer.updated", {**after, "changed": changed})
    uow.commit()
    return into


def hygiene_report(uow: UnitOfWork, inactive_months: int, limit: int, now: datetime | None = None) -> dict:
    """Customers with no purchase or ticket (nor creation) for N months; records missing contact data."""
    now = now or utcnow()
    cutoff = months_before(now, inactive_months)
    active = and_(Customer.merged_into_id.is_(None), Customer.erased_at.is_(None))
    recent_purchase = exists().where(Purchase.customer_id == Customer.id, Purchase.purchased_at >= cutoff)
    recent_ticket = exists().where(Ticket.customer_id == Customer.id, Ticket.created_at >= cutoff)
    sections = {
        "inactive": and_(active, Customer.created_at < cutoff, ~recent_purchase, ~recent_ticket),
        "no_phone_and_no_email": and_(active, Customer.phone.is_(None), Customer.email.is_(None)),
        "no_phone": and_(active, Customer.phone.is_(None)),
        "no_time_zone": and_(active, Customer.time_zone.is_(None)),
    }
    report: dict = {"inactive_months": inactive_months, "inactive_since": cutoff}
    for name, condition in sections.items():
        total = uow.session.scalar(select(func.count()).select_from(Customer).where(condition))
        ids = list(uow.session.scalars(select(Customer.id).where(condition).order_by(Customer.created_at).limit(limit)))
        report[name] = {"total": total, "customer_ids": ids}
    return report


def months_before(moment: datetime, months: int) -> datetime:
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    month += 1
    day = min(moment.day, [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
    return moment.replace(year=year, month=month, day=day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# --- purchases ------------------------------------------------------------------------------


def purchase_view(purchase: Purchase) -> dict:
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
        "recorded_at": purchase.recorded_at,
    }


def record_purchase(uow: UnitOfWork, customer_id: str, body: dict, thresholds: SegmentThresholds) -> tuple[dict, bool]:
    """(the purchase, whether it is new): an order already recorded from its source is returned as is."""
    customer = _load_customer(uow, customer_id, follow=True)
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
    segment = _segment_of(uow, customer.id, thresholds, utcnow())
    if segment != customer.segment:
        customer.segment = segment
        customer.updated_at = utcnow()
        uow.publish("customer.updated", {**_customer_event(customer), "changed": ["segment"]})
    uow.commit()
    return purchase_view(purchase), True


def _segment_of(uow: UnitOfWork, customer_id: str, thresholds: SegmentThresholds, now: datetime) -> str:
    value = uow.session.scalar(
        select(func.coalesce(func.sum(Purchase.amount), 0)).where(
            Purchase.customer_id == customer_id, Purchase.purchased_at >= now - SEGMENT_WINDOW
        )
    )
    return domain.segment_for(Decimal(value), thresholds.a_min, thresholds.b_min)


SEGMENT_WINDOW = timedelta(days=365)


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
        segment = _segment_of(uow, customer.id, thresholds, now)
        if segment != customer.segment:
            customer.segment = segment
            customer.updated_at = now
            uow.publish("customer.updated", {**_customer_event(customer), "changed": ["segment"]})
            changed += 1
    uow.commit()
    return changed


def list_purchases(uow: UnitOfWork, customer_id: str) -> list[dict]:
    customer = _load_customer(uow, customer_id, follow=True)
    query = select(Purchase).where(Purchase.customer_id == customer.id).order_by(Purchase.purchased_at.desc())
    return [purchase_view(purchase) for purchase in uow.session.scalars(query)]


# --- SLA configuration ------------------------------------------------------------------------


def sla_policies(uow: UnitOfWork) -> dict[str, domain.SlaPolicy]:
    return {
        row.priority: domain.SlaPolicy(
            row.priority, row.first_response_minutes, row.resolution_minutes, row.business_hours
        )
        for row in uow.session.scalars(select(SlaPolicyRow))
    }


def set_sla_policy(uow: UnitOfWork, priority: str, body: dict) -> domain.SlaPolicy:
    row = uow.session.get(SlaPolicyRow, priority)
    if row is None:
        row = SlaPolicyRow(priority=priority)
        uow.session.add(row)
    for name, value in body.items():
        setattr(row, name, value)
    _sla_config_changed(uow)
    uow.session.flush()
    policy = domain.SlaPolicy(priority, row.first_response_minutes, row.resolution_minutes, row.business_hours)
    uow.commit()
    return policy


def business_calendar(uow: UnitOfWork) -> domain.BusinessCalendar | None:
    row = uow.session.get(BusinessCalendarRow, 1)
    if row is None:
        return None
    return domain.BusinessCalendar.from_json(row.time_zone, row.hours, row.holidays)


def calendar_view(uow: UnitOfWork) -> dict | None:
    row = uow.session.get(BusinessCalendarRow, 1)
    return None if row is None else {"time_zone": row.time_zone, "hours": row.hours, "holidays": row.holidays}


def set_business_calendar(uow: UnitOfWork, body: dict | None) -> dict | None:
    """Set (or with None remove) the calendar; due times of tickets already open stay as they are."""
    row = uow.session.get(BusinessCalendarRow, 1)
    if body is None:
        if row is not None:
            uow.session.delete(row)
            _sla_config_changed(uow)
        uow.commit()
        return None
    try:
        domain.BusinessCalendar.from_json(body["time_zone"], body["hours"], body["holidays"])
    except domain.InvalidCalendar as error:
        raise Invalid({"hours": str(error)}) from None
    if row is None:
        row = BusinessCalendarRow(id=1)
        uow.session.add(row)
    row.time_zone, row.hours, row.holidays = body["time_zone"], body["hours"], sorted(set(body["holidays"]))
    _sla_config_changed(uow)
    uow.commit()
    return calendar_view(uow)


# The policies and the calendar change rarely but every new ticket needs them, so each process
# keeps them (per database) with the token of the counters row ``sla_config``, which every change
# replaces in its own transaction. A ticket reads that one row in its transaction and reloads only
# when the token moved: a change is seen by every gunicorn worker from its commit on, and the due
# times can be computed before the write transaction opens.
SLA_CONFIG_COUNTER = "sla_config"
_SLA_TOKEN = select(Counter.__table__.c.value).where(Counter.__table__.c.name == SLA_CONFIG_COUNTER)


@dataclass(frozen=True)
class SlaConfig:
    token: int | None  # None until the first change through the API (the migration's seeds)
    policies: dict[str, domain.SlaPolicy]
    calendar: domain.BusinessCalendar | None

    def clock(self, priority: str) -> tuple[domain.SlaPolicy | None, domain.BusinessCalendar | None]:
        """A priority's policy and the calendar its clock runs on (None: wall-clock time)."""
        policy = self.policies.get(priority)
        if policy is None:
            return None, None
        return policy, domain.clock_of(policy, self.calendar)


_sla_configs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Database -> SlaConfig


def _cached_sla_config(uow: UnitOfWork) -> SlaConfig | None:
    """This process's last known configuration: a guess, until checked in a transaction."""
    return _sla_configs.get(uow.database)


def _sla_config(uow: UnitOfWork) -> SlaConfig:
    """The configuration as of this transaction (one primary-key read when the cache is current)."""
    token = uow.session.connection().execute(_SLA_TOKEN).scalar()
    config = _sla_configs.get(uow.database)
    if config is None or config.token != token:
        config = SlaConfig(token, sla_policies(uow), business_calendar(uow))
        _sla_configs[uow.database] = config
    return config


def _sla_config_changed(uow: UnitOfWork) -> None:
    """Called in the transaction that changes a policy or the calendar: every process reloads."""
    upsert(
        uow.session,
        Counter.__table__,
        {"name": SLA_CONFIG_COUNTER, "value": secrets.randbelow(2**31 - 1) + 1},
        key=("name",),
    )


def _clock(uow: UnitOfWork, priority: str) -> tuple[domain.SlaPolicy | None, domain.BusinessCalendar | None]:
    return _sla_config(uow).clock(priority)


# --- tickets ----------------------------------------------------------------------------------

TICKET_FIELDS = (
    "subject",
    "description",
    "category",
    "priority",
    "channel",
    "customer_id",
    "assignee_id",
    "group",
    "tags",
    "call_id",
)


TICKET_VIEW_FIELDS = (
    "id",
    "number",
    "customer_id",
    "subject",
    "description",
    "category",
    "priority",
    "channel",
    "status",
    "assignee_id",
    "group",
    "tags",
    "call_id",
    "survey_response_id",
    "created_by",
    "created_at",
    "updated_at",
    "first_responded_at",
    "resolved_at",
    "closed_at",
    "first_response_due_at",
    "resolution_due_at",
    "first_response_breached_at",
    "resolution_breached_at",
    "breached",
)


def ticket_view(ticket: Ticket) -> dict:
    view = {name: getattr(ticket, name) for name in TICKET_VIEW_FIELDS}
    view["tags"] = list(ticket.tags or [])
    return view


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value


# One row, updated in the ticket's own transaction: gap-free and safe under concurrency
# (the row lock on PostgreSQL, the write lock on SQLite). Statements built once: building
# them costs more than running them.
_NEXT_NUMBER = (
    update(Counter).where(Counter.name == "ticket_number").values(value=Counter.value + 1).returning(Counter.value)
)
_MERGED_INTO = select(Customer.__table__.c.merged_into_id).where(Customer.__table__.c.id == bindparam("customer_id"))
_INSERT_TICKET = insert(Ticket.__table__)
_INSERT_CHANGE = insert(TicketChange.__table__)


def _next_number(uow: UnitOfWork) -> int:
    return uow.session.connection().execute(_NEXT_NUMBER).scalar_one()


def _resolve_ticket_customer(uow: UnitOfWork, customer_id: str | None) -> str | None:
    """The customer's id, or the survivor's when it was merged; 422 when there is no such customer."""
    if customer_id is None:
        return None
    for _ in range(10):  # merges keep redirects one hop long; the bound is only a guard
        row = uow.session.connection().execute(_MERGED_INTO, {"customer_id": customer_id}).first()
        if row is None:
            raise Invalid({"customer_id": "No such customer."})
        if row.merged_into_id is None:
            return customer_id
        customer_id = row.merged_into_id
    raise Invalid({"customer_id": "The customer's merge history is too long to follow."})


def _record(uow: UnitOfWork, ticket: Ticket, actor_id: str | None, now: datetime, field: str, old, new) -> None:
    uow.session.add(
        TicketChange(
            ticket_id=ticket.id,
            actor_id=actor_id,
            changed_at=now,
            field=field,
            old_value=None if old is None else json.dumps(_iso(old)),
            new_value=None if new is None else json.dumps(_iso(new)),
        )
    )


def _schedule_sla_check(ticket: Ticket) -> None:
    ticket.sla_check_at = domain.next_sla_check(
        ticket.first_response_due_at,
        ticket.first_responded_at is not None or ticket.status not in domain.UNRESOLVED,
        ticket.first_response_breached_at is not None,
        ticket.resolution_due_at,
        ticket.status in ("new", "open"),
        ticket.resolution_breached_at is not None,
    )


def _ensure_response_has_no_ticket(uow: UnitOfWork, response_id: str) -> None:
    """One ticket per survey response: a second one is a 409 naming the first."""
    existing = uow.session.execute(
        select(Ticket.id, Ticket.number).where(Ticket.survey_response_id == response_id)
    ).first()
    if existing is not None:
        raise Conflict(f"Survey response {response_id} already has ticket #{existing.number} ({existing.id}).")


def create_ticket(uow: UnitOfWork, body: dict, actor_id: str | None, now: datetime | None = None) -> dict:
    ticket = _open_ticket(uow, body, actor_id, now or utcnow())
    uow.commit()
    return ticket


def _open_ticket(uow: UnitOfWork, body: dict, actor_id: str | None, now: datetime) -> dict:
    """Insert a new ticket, its history row and ``ticket.created``; the ticket's view.

    The hot write path, so written with Core statements built once rather than ORM objects, and
    with everything that needs no database (the row, the due times from this process's cached
    SLA configuration) done before the first statement: on SQLite that statement takes the one
    write lock (BEGIN IMMEDIATE), held until the commit.
    """
    row = {
        "id": new_id(),
        "number": None,
        "customer_id": body.get("customer_id"),
        "subject": body["subject"].strip(),
        "description": body.get("description") or "",
        "category": body["category"],
        "priority": body.get("priority") or "normal",
        "channel": body.get("channel") or "web",
        "status": "new",
        "assignee_id": body.get("assignee_id"),
        "group_name": body.get("group"),
        "tags": sorted(set(body.get("tags") or [])),
        "call_id": body.get("call_id"),
        "survey_response_id": body.get("survey_response_id"),
        "created_by": actor_id,
        "created_at": now,
        "updated_at": now,
        "paused_seconds": 0.0,
        "breached": False,
        "first_response_due_at": None,
        "resolution_due_at": None,
        "sla_check_at": None,
    }
    guessed = _cached_sla_config(uow)
    if guessed is not None:
        _set_due_times(row, guessed)

    row["customer_id"] = _resolve_ticket_customer(uow, row["customer_id"])
    if row["survey_response_id"] is not None:
        _ensure_response_has_no_ticket(uow, row["survey_response_id"])
    config = _sla_config(uow)
    if config is not guessed:  # first ticket of this process, or the configuration just changed
        _set_due_times(row, config)
    row["number"] = _next_number(uow)
    connection = uow.session.connection()
    connection.execute(_INSERT_TICKET, row)
    connection.execute(
        _INSERT_CHANGE,
        {
            "ticket_id": row["id"],
            "actor_id": actor_id,
            "changed_at": now,
            "field": "created",
            "old_value": None,
            "new_value": json.dumps(row["number"]),
        },
    )
    uow.publish(
        "ticket.created",
        {
            "ticket_id": row["id"],
            "number": row["number"],
            "customer_id": row["customer_id"],
            "subject": row["subject"],
            "category": row["category"],
            "priority": row["priority"],
            "channel": row["channel"],
            "status": row["status"],
            "assignee_id": row["assignee_id"],
            "group": row["group_name"],
            "call_id": row["call_id"],
            "survey_response_id": row["survey_response_id"],
            "first_response_due_at": _iso(row["first_response_due_at"]),
            "resolution_due_at": _iso(row["resolution_due_at"]),
            "created_at": now.isoformat(),
            "created_by": actor_id,
        },
    )
    view = {name: row.get(name) for name in TICKET_VIEW_FIELDS}  # the columns a new ticket leaves empty: None
    view["group"] = row["group_name"]
    view["tags"] = list(row["tags"])
    return view


def _set_due_times(row: dict, config: SlaConfig) -> None:
    """A new ticket's due times under its priority's policy, and when the breach job looks."""
    policy, clock = config.clock(row["priority"])
    first_due, resolution_due = (None, None) if policy is None else domain.due_times(policy, clock, row["created_at"])
    row["first_response_due_at"], row["resolution_due_at"] = first_due, resolution_due
    # as _schedule_sla_check for a ticket that is new: nothing responded, breached or paused yet
    row["sla_check_at"] = domain.next_sla_check(first_due, False, False, resolution_due, True, False)


def _load_ticket(uow: UnitOfWork, ticket_id: str, *, for_update: bool = False) -> Ticket:
    if not _looks_like_id(ticket_id):
        raise NotFound(ticket_id)
    query = select(Ticket).where(Ticket.id == ticket_id)
    if for_update:
        query = query.with_for_update()
    ticket = uow.session.scalars(query).first()
    if ticket is None:
        raise NotFound(ticket_id)
    return ticket


def get_ticket(uow: UnitOfWork, ticket_id: str) -> dict:
    return ticket_view(_load_ticket(uow, ticket_id))


def update_ticket(
    uow: UnitOfWork, ticket_id: str, changes: dict, actor_id: str | None, now: datetime | None = None
) -> dict:
    """Change fields and/or the status (through the state machine), recording every change."""
    now = now or utcnow()
    ticket = _load_ticket(uow, ticket_id, for_update=True)
    if "customer_id" in changes:
        changes = {**changes, "customer_id": _resolve_ticket_customer(uow, changes["customer_id"])}
    if "tags" in changes:
        changes = {**changes, "tags": sorted(set(changes["tags"] or []))}
    if "subject" in changes:
        changes = {**changes, "subject": changes["subject"].strip()}
    new_status = changes.get("status")
    if new_status is not None and new_status != ticket.status:
        try:
            domain.check_transition(ticket.status, new_status)
        except domain.IllegalTransition as error:
            raise Conflict(str(error)) from None
    if ticket.status == "closed" and any(name in changes for name in TICKET_FIELDS):
        raise Conflict("A closed ticket cannot be changed.")

    changed: dict[str, dict] = {}
    for name in TICKET_FIELDS:
        if name in changes and changes[name] != getattr(ticket, name):
            changed[name] = {"old": getattr(ticket, name), "new": changes[name]}
            setattr(ticket, name, changes[name])
    if "priority" in changed:
        _reschedule_for_priority(uow, ticket, changed)

    old_status = ticket.status
    if new_status is not None and new_status != old_status:
        _move(uow, ticket, new_status, now)

    _schedule_sla_check(ticket)
    for name, change in changed.items():
        _record(uow, ticket, actor_id, now, name, change["old"], change["new"])
    if ticket.status != old_status:
        _record(uow, ticket, actor_id, now, "status", old_status, ticket.status)
    if changed or ticket.status != old_status:
        ticket.updated_at = now
    uow.session.flush()
    if changed:
        uow.publish(
            "ticket.updated",
            {
                "ticket_id": ticket.id,
                "customer_id": ticket.customer_id,
                "actor_id": actor_id,
                "changes": {
                    name: {"old": _iso(change["old"]), "new": _iso(change["new"])} for name, change in changed.items()
                },
            },
        )
    if ticket.status != old_status:
        _announce_status(uow, ticket, old_status, actor_id, now)
    uow.commit()
    return ticket_view(ticket)


def _reschedule_for_priority(uow: UnitOfWork, ticket: Ticket, changed: dict) -> None:
    """Due times follow the new priority's policy, from the ticket's opening, keeping its pauses."""
    policy, clock = _clock(uow, ticket.priority)
    if policy is None:
        return
    first_due, resolution_due = domain.due_times(policy, clock, ticket.created_at)
    resolution_due = domain.add_business_time(clock, resolution_due, timedelta(seconds=ticket.paused_seconds or 0))
    for name, value in (("first_response_due_at", first_due), ("resolution_due_at", resolution_due)):
        if getattr(ticket, name) != value:
            changed[name] = {"old": getattr(ticket, name), "new": value}
            setattr(ticket, name, value)


def _move(uow: UnitOfWork, ticket: Ticket, new_status: str, now: datetime) -> None:
    old_status = ticket.status
    if old_status == "pending" and ticket.pending_since is not None:
        _, clock = _clock(uow, ticket.priority)
        paused = domain.business_time_between(clock, ticket.pending_since, now)
        if ticket.resolution_due_at is not None and ticket.resolution_breached_at is None:
            ticket.resolution_due_at = domain.resume_after_pause(
                clock, ticket.resolution_due_at, ticket.pending_since, now
            )
        ticket.paused_seconds = (ticket.paused_seconds or 0) + paused.total_seconds()
        ticket.pending_since = None
    if new_status == "pending":
        ticket.pending_since = now
    if new_status == "resolved":
        ticket.resolved_at = now
    if new_status == "open" and old_status == "resolved":
        ticket.resolved_at = None  # reopened: it counts as resolved again only when it is
    if new_status == "closed":
        ticket.closed_at = now
    ticket.status = new_status


def _announce_status(uow: UnitOfWork, ticket: Ticket, old_status: str, actor_id: str | None, now: datetime) -> None:
    uow.publish(
        "ticket.status_changed",
        {
            "ticket_id": ticket.id,
            "customer_id": ticket.customer_id,
            "category": ticket.category,
            "old_status": old_status,
            "new_status": ticket.status,
            "actor_id": actor_id,
            "changed_at": now.isoformat(),
        },
    )
    if ticket.status == "resolved":
        uow.publish(
            "ticket.resolved",
            {
                "ticket_id": ticket.id,
                "customer_id": ticket.customer_id,
                "category": ticket.category,
                "priority": ticket.priority,
                "assignee_id": ticket.assignee_id,
                "call_id": ticket.call_id,
                "survey_response_id": ticket.survey_response_id,
                "resolved_at": now.isoformat(),
                "within_sla": None if ticket.resolution_due_at is None else now <= ticket.resolution_due_at,
            },
        )


def _first_response(uow: UnitOfWork, ticket: Ticket, at: datetime, actor_id: str | None, extra: dict) -> None:
    """Mark the first response (a public reply, a connected call) and announce it."""
    changed = {"first_responded_at": {"old": None, "new": at}, **extra}
    ticket.first_responded_at = at
    for name, change in extra.items():
        setattr(ticket, name, change["new"])
    _schedule_sla_check(ticket)
    ticket.updated_at = utcnow()
    for name, change in changed.items():
        _record(uow, ticket, actor_id, at, name, change["old"], change["new"])
    uow.session.flush()
    uow.publish(
        "ticket.updated",
        {
            "ticket_id": ticket.id,
            "customer_id": ticket.customer_id,
            "actor_id": actor_id,
            "changes": {name: {"old": _iso(c["old"]), "new": _iso(c["new"])} for name, c in changed.items()},
        },
    )


def add_comment(
    uow: UnitOfWork, ticket_id: str, body: str, public: bool, actor_id: str | None, from_customer: bool = False
) -> dict:
    """An internal note or a public reply; an agent's first public reply is the first response.

    ``from_customer``: the customer's own words, recorded by an agent or relayed by a channel;
    they are never the desk's first response.
    """
    ticket = _load_ticket(uow, ticket_id, for_update=True)
    comment = append_comment(uow, ticket, body, public, actor_id, from_customer)
    comment["mail"] = None
    if public and not from_customer:
        from . import mail  # the reply goes out by mail, queued in this transaction

        comment["mail"] = mail.queue_reply(uow, ticket, comment)
    uow.commit()
    return comment


def append_comment(
    uow: UnitOfWork, ticket: Ticket, body: str, public: bool, actor_id: str | None, from_customer: bool
) -> dict:
    """add_comment on a loaded (locked) ticket, without the commit."""
    if ticket.status == "closed":
        raise Conflict("A closed ticket takes no more comments.")
    now = utcnow()
    comment = TicketComment(
        id=new_id(), ticket_id=ticket.id, author_id=actor_id, body=body, public=public, created_at=now
    )
    uow.session.add(comment)
    ticket.updated_at = now
    _record(uow, ticket, actor_id, now, "public_reply" if public else "internal_note", None, comment.id)
    if public and ticket.first_responded_at is None and not from_customer:
        _first_response(uow, ticket, now, actor_id, {})
    uow.session.flush()
    return comment_view(comment)


def reopen_on_customer_answer(uow: UnitOfWork, ticket: Ticket, now: datetime) -> bool:
    """The customer answered: a pending (or resolved) ticket is open again and its SLA clock runs."""
    if ticket.status not in ("pending", "resolved"):
        return False
    old_status = ticket.status
    _move(uow, ticket, "open", now)
    _schedule_sla_check(ticket)
    _record(uow, ticket, None, now, "status", old_status, ticket.status)
    ticket.updated_at = now
    uow.session.flush()
    _announce_status(uow, ticket, old_status, None, now)
    return True


def comment_view(comment: TicketComment) -> dict:
    return {
        "id": comment.id,
        "ticket_id": comment.ticket_id,
        "author_id": comment.author_id,
        "body": comment.body,
        "public": comment.public,
        "created_at": comment.created_at,
    }


def list_comments(uow: UnitOfWork, ticket_id: str) -> list[dict]:
    ticket = _load_ticket(uow, ticket_id)
    query = (
        select(TicketComment, Mail.from_address)
        .outerjoin(Mail, and_(Mail.comment_id == TicketComment.id, Mail.direction == "in"))
        .where(TicketComment.ticket_id == ticket.id)
        .order_by(TicketComment.created_at)
    )
    # A comment that came in by mail names its sender (the mail row holds the address; erasure removes it).
    return [comment_view(comment) | {"mailed_from": sender} for comment, sender in uow.session.execute(query)]


def ticket_history(uow: UnitOfWork, ticket_id: str) -> list[dict]:
    ticket = _load_ticket(uow, ticket_id)
    query = select(TicketChange).where(TicketChange.ticket_id == ticket.id).order_by(TicketChange.id)
    return [
        {
            "field": change.field,
            "old": None if change.old_value is None else json.loads(change.old_value),
            "new": None if change.new_value is None else json.loads(change.new_value),
            "actor_id": change.actor_id,
            "changed_at": change.changed_at,
        }
        for change in uow.session.scalars(query)
    ]


PRIORITY_RANK = case({"urgent": 0, "high": 1, "normal": 2, "low": 3}, value=Ticket.priority)
SORTS = {
    "created_at": (Ticket.created_at, Ticket.id),
    "-created_at": (Ticket.created_at.desc(), Ticket.id.desc()),
    "priority": (PRIORITY_RANK, Ticket.created_at),
    "-priority": (PRIORITY_RANK.desc(), Ticket.created_at),
    "due": (Ticket.resolution_due_at.is_(None), Ticket.resolution_due_at, Ticket.id),
    "-due": (Ticket.resolution_due_at.is_(None), Ticket.resolution_due_at.desc(), Ticket.id),
}


def list_tickets(uow: UnitOfWork, filters: dict, sort: str, page: int, per_page: int) -> tuple[list[dict], int]:
    conditions = []
    for name, column in (
        ("status", Ticket.status),
        ("category", Ticket.category),
        ("priority", Ticket.priority),
        ("assignee", Ticket.assignee_id),
        ("customer", Ticket.customer_id),
        ("group", Ticket.group),
        ("channel", Ticket.channel),
    ):
        if filters.get(name):
            values = filters[name]
            conditions.append(column == values[0] if len(values) == 1 else column.in_(values))
    if filters.get("created_from"):
        conditions.append(Ticket.created_at >= filters["created_from"])
    if filters.get("created_to"):
        conditions.append(Ticket.created_at < filters["created_to"])
    if filters.get("breached") is not None:
        conditions.append(Ticket.breached.is_(filters["breached"]))
    if filters.get("unassigned") is not None:
        conditions.append(Ticket.assignee_id.is_(None) if filters["unassigned"] else Ticket.assignee_id.is_not(None))
    if filters.get("due_before"):
        # sla_check_at is the earliest due time still open (null when nothing can breach any more)
        conditions.append(Ticket.sla_check_at < filters["due_before"])
    if filters.get("q"):
        pattern = f"%{_escape_like(filters['q'].strip().lower())}%"
        conditions.append(
            or_(
                func.lower(Ticket.subject).like(pattern, escape="\\"),
                func.lower(Ticket.description).like(pattern, escape="\\"),
            )
        )
    # The page's ids first: with an index on (filter columns, created_at, id) this reads index
    # entries only; then the rows of that page alone.
    offset = (page - 1) * per_page
    page_ids = select(Ticket.id).where(*conditions).order_by(*SORTS[sort]).limit(per_page).offset(offset)
    ids = list(uow.session.scalars(page_ids))
    total = _total(uow, select(func.count()).select_from(Ticket).where(*conditions), ids, offset, per_page)
    # The page's views straight from their columns: loading ORM objects only to read them costs
    # more than the query.
    rows = uow.session.connection().execute(_TICKET_VIEWS, {"ids": ids})
    views = {row.id: _row_view(row) for row in rows}
    return [views[ticket_id] for ticket_id in ids], total


_TICKET_VIEWS = select(
    *(Ticket.__table__.c["group_name" if name == "group" else name].label(name) for name in TICKET_VIEW_FIELDS)
).where(Ticket.__table__.c.id.in_(bindparam("ids", expanding=True)))


def _row_view(row) -> dict:
    """ticket_view of a row of _TICKET_VIEWS."""
    view = row._asdict()
    view["tags"] = list(view["tags"] or [])
    return view


def _total(uow: UnitOfWork, count_query, page: list, offset: int, per_page: int) -> int:
    """The number of matches; counted only when the page does not already tell."""
    if 0 < len(page) < per_page or (not page and offset == 0):
        return offset + len(page)
    return uow.session.scalar(count_query)


# --- consumed events ------------------------------------------------------------------------


def open_service_recovery(uow: UnitOfWork, data: dict) -> None:
    """One urgent service-recovery ticket per low-scored survey response (``survey.low_score``)."""
    response_id = str(data["response_id"])
    if uow.session.scalar(select(Ticket.id).where(Ticket.survey_response_id == response_id)) is not None:
        return  # the same response again (a redelivery, or a republished event)
    customer_id = str(data["customer_id"])
    try:
        customer_id = _load_customer(uow, customer_id, follow=True).id
    except NotFound:
        log.warning("low score of an unknown customer", extra={"customer_id": customer_id})
        customer_id = None
    subject, description = domain.recovery_ticket_text(
        data["low_questions"], data.get("answers") or {}, data.get("product"), data.get("comment")
    )
    body = {
        "subject": subject,
        "description": description,
        "category": "service_recovery",
        "priority": "urgent",
        "channel": "survey",
        "customer_id": customer_id,
        "assignee_id": None,
        "call_id": data.get("call_id"),
        "survey_response_id": response_id,
        "tags": ["low_score"],
    }
    _open_ticket(uow, body, actor_id=None, now=utcnow())  # the consumer commits, with the event's id


def record_call(uow: UnitOfWork, data: dict) -> None:
    """``call.completed``: a connected call linked to a ticket is its first response, if none yet."""
    ticket_id, answered = data.get("ticket_id"), data.get("answered_at")
    if ticket_id is None or answered is None:
        return  # not linked, or never connected
    answered_at = answered if isinstance(answered, datetime) else datetime.fromisoformat(answered)
    if answered_at.tzinfo is None:
        answered_at = answered_at.replace(tzinfo=UTC)
    try:
        ticket = _load_ticket(uow, str(ticket_id), for_update=True)
    except NotFound:
        log.warning("a call linked to an unknown ticket", extra={"ticket_id": str(ticket_id)})
        return
    if ticket.first_responded_at is not None:
        return
    at = max(answered_at.astimezone(UTC), ticket.created_at)  # a ticket opened during the call
    extra = {}
    if ticket.call_id is None:
        extra["call_id"] = {"old": None, "new": data["call_id"]}
    _first_response(uow, ticket, at, data.get("agent_id"), extra)


# --- SLA breaches ---------------------------------------------------------------------------


def flag_sla_breaches(uow: UnitOfWork, now: datetime | None = None, limit: int = 500) -> tuple[int, int]:
    """Flag tickets past a due time and announce each breach once: (tickets looked at, breaches)."""
    now = now or utcnow()
    query = select(Ticket).where(Ticket.sla_check_at <= now).order_by(Ticket.sla_check_at).limit(limit)
    if uow.session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    breaches = examined = 0
    for ticket in uow.session.scalars(query):
        examined += 1
        targets = []
        if (
            ticket.first_response_due_at is not None
            and ticket.first_response_due_at <= now
            and ticket.first_responded_at is None
            and ticket.first_response_breached_at is None
            and ticket.status in domain.UNRESOLVED
        ):
            ticket.first_response_breached_at = now
            targets.append(("first_response", ticket.first_response_due_at))
        if (
            ticket.resolution_due_at is not None
            and ticket.resolution_due_at <= now
            and ticket.resolution_breached_at is None
            and ticket.status in ("new", "open")
        ):
            ticket.resolution_breached_at = now
            targets.append(("resolution", ticket.resolution_due_at))
        for target, due in targets:
            ticket.breached = True
            _record(uow, ticket, None, now, f"{target}_breached_at", None, now)
            uow.publish(
                "ticket.sla_breached",
                {
                    "ticket_id": ticket.id,
                    "customer_id": ticket.customer_id,
                    "category": ticket.category,
                    "priority": ticket.priority,
                    "assignee_id": ticket.assignee_id,
                    "group": ticket.group,
                    "target": target,
                    "due_at": due.isoformat(),
                    "breached_at": now.isoformat(),
                },
            )
            breaches += 1
        _schedule_sla_check(ticket)
    uow.commit()
    return examined, breaches


# --- reports --------------------------------------------------------------------------------


def daily_report(uow: UnitOfWork, start: datetime, end: datetime) -> dict:
    """Tickets of one day [start, end): opened, resolved, backlog, response times, SLA, per agent."""
    from shared.event_catalog import TICKET_CATEGORIES

    opened = dict.fromkeys(TICKET_CATEGORIES, 0)
    for category, count in uow.session.execute(
        select(Ticket.category, func.count())
        .where(Ticket.created_at >= start, Ticket.created_at < end)
        .group_by(Ticket.category)
    ):
        opened[category] = count
    backlog = uow.session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.created_at < end, or_(Ticket.resolved_at.is_(None), Ticket.resolved_at >= end))
        .where(or_(Ticket.closed_at.is_(None), Ticket.closed_at >= end))
    )
    policies = sla_policies(uow)
    calendar = business_calendar(uow)

    def clock(priority: str):
        policy = policies.get(priority)
        return domain.clock_of(policy, calendar) if policy else None

    first_responses = list(
        uow.session.scalars(select(Ticket).where(Ticket.first_responded_at >= start, Ticket.first_responded_at < end))
    )
    resolved = list(uow.session.scalars(select(Ticket).where(Ticket.resolved_at >= start, Ticket.resolved_at < end)))

    def minutes(delta: timedelta) -> float:
        return round(delta.total_seconds() / 60, 2)

    def first_response_minutes(ticket):
        spent = domain.business_time_between(clock(ticket.priority), ticket.created_at, ticket.first_responded_at)
        return minutes(spent)

    def resolution_minutes(ticket):
        spent = domain.business_time_between(clock(ticket.priority), ticket.created_at, ticket.resolved_at)
        return minutes(max(spent - timedelta(seconds=ticket.paused_seconds or 0), timedelta(0)))

    def attainment(tickets, done, due):
        judged = [ticket for ticket in tickets if getattr(ticket, due) is not None]
        met = sum(1 for ticket in judged if getattr(ticket, done) <= getattr(ticket, due))
        return {"met": met, "judged": len(judged), "rate": round(met / len(judged), 4) if judged else None}

    def times(values):
        median, p90 = domain.median_and_p90(values)
        return {"median_minutes": median, "p90_minutes": p90, "count": len(values)}

    agents: dict[str, list[Ticket]] = {}
    for ticket in resolved:
        agents.setdefault(ticket.assignee_id or "(unassigned)", []).append(ticket)
    breaches = uow.session.scalar(
        select(func.count())
        .select_from(Ticket)
        .where(
            or_(
                and_(Ticket.first_response_breached_at >= start, Ticket.first_response_breached_at < end),
                and_(Ticket.resolution_breached_at >= start, Ticket.resolution_breached_at < end),
            )
        )
    )
    return {
        "opened": {"total": sum(opened.values()), "by_category": opened},
        "replacements": opened["replacement"],
        "refunds": opened["refund"],
        "resolved": len(resolved),
        "backlog": backlog,
        "first_response": times([first_response_minutes(ticket) for ticket in first_responses]),
        "resolution": times([resolution_minutes(ticket) for ticket in resolved]),
        "sla": {
            "first_response": attainment(first_responses, "first_responded_at", "first_response_due_at"),
            "resolution": attainment(resolved, "resolved_at", "resolution_due_at"),
            "tickets_breached": breaches,
        },
        "per_agent": [
            {
                "assignee_id": agent,
                "resolved": len(tickets),
                "resolution": times([resolution_minutes(ticket) for ticket in tickets]),
                "sla_resolution": attainment(tickets, "resolved_at", "resolution_due_at"),
            }
            for agent, tickets in sorted(agents.items(), key=lambda item: (-len(item[1]), item[0]))
        ],
        "business_hours": calendar is not None,
    }


# --- the customer overview (the gateway's customer view) -------------------------------------

OPEN_STATUSES = ("new", "open", "pending")
SERVICE_RECOVERY = "service_recovery"
OVERVIEW_LIMIT = 20  # items per list; the totals count them all

_tickets = Ticket.__table__.c
_OVERVIEW_TICKET_COLUMNS = (
    _tickets.id,
    _tickets.number,
    _tickets.subject,
    _tickets.category,
    _tickets.priority,
    _tickets.channel,
    _tickets.status,
    _tickets.assignee_id,
    _tickets.call_id,
    _tickets.survey_response_id,
    _tickets.created_at,
    _tickets.updated_at,
    _tickets.first_responded_at,
    _tickets.resolved_at,
    _tickets.first_response_due_at,
    _tickets.resolution_due_at,
    _tickets.first_response_breached_at,
    _tickets.resolution_breached_at,
    _tickets.breached,
)
# Both read the (customer_id, created_at, id) index newest first; a customer's open tickets
# are a small part of their history, filtered on the way.
_RECENT_TICKETS = (
    select(*_OVERVIEW_TICKET_COLUMNS)
    .where(_tickets.customer_id == bindparam("customer_id"))
    .order_by(_tickets.created_at.desc(), _tickets.id.desc())
    .limit(bindparam("limit"))
)
_OPEN_TICKETS = (
    select(*_OVERVIEW_TICKET_COLUMNS)
    .where(_tickets.customer_id == bindparam("customer_id"), _tickets.status.in_(OPEN_STATUSES))
    .order_by(_tickets.created_at.desc(), _tickets.id.desc())
    .limit(bindparam("limit"))
)
_OPEN_RECOVERY = (
    select(*_OVERVIEW_TICKET_COLUMNS)
    .where(
        _tickets.customer_id == bindparam("customer_id"),
        _tickets.category == SERVICE_RECOVERY,
        _tickets.status.in_(OPEN_STATUSES),
    )
    .order_by(_tickets.created_at.desc(), _tickets.id.desc())
    .limit(bindparam("limit"))
)
# Every total in one pass over the customer's index entries.
_TICKET_TOTALS = select(
    func.count(),
    func.coalesce(func.sum(case((_tickets.status.in_(OPEN_STATUSES), 1), else_=0)), 0),
    func.coalesce(
        func.sum(case((and_(_tickets.status.in_(OPEN_STATUSES), _tickets.category == SERVICE_RECOVERY), 1), else_=0)),
        0,
    ),
).where(_tickets.customer_id == bindparam("customer_id"))
_purchases = Purchase.__table__.c
_RECENT_PURCHASES = (
    select(
        _purchases.id,
        _purchases.sku,
        _purchases.product,
        _purchases.amount,
        _purchases.currency,
        _purchases.purchased_at,
        _purchases.source,
        _purchases.order_ref,
    )
    .where(_purchases.customer_id == bindparam("customer_id"))
    .order_by(_purchases.purchased_at.desc(), _purchases.id.desc())
    .limit(bindparam("limit"))
)
_PURCHASE_TOTALS = select(func.count()).where(_purchases.customer_id == bindparam("customer_id"))


_customers, _customer_phones = Customer.__table__.c, CustomerPhone.__table__.c
_OVERVIEW_CUSTOMER = select(
    _customers.id,
    _customers.name,
    _customers.phone,
    _customers.email,
    _customers.time_zone,
    _customers.do_not_call,
    _customers.marketing_consent,
    _customers.segment,
    _customers.language,
    _customers.created_at,
    _customers.updated_at,
    _customers.merged_into_id,
).where(_customers.id == bindparam("customer_id"))
_CUSTOMER_NUMBERS = (
    select(_customer_phones.phone)
    .where(_customer_phones.customer_id == bindparam("customer_id"))
    .order_by(_customer_phones.position)
)


def _overview_customer(connection, customer_id: str) -> dict:
    """The customer (merges followed) as JSON values, read as columns: no ORM objects to build."""
    if not _looks_like_id(customer_id):
        raise NotFound(customer_id)
    seen = set()
    while True:
        row = connection.execute(_OVERVIEW_CUSTOMER, {"customer_id": customer_id}).first()
        if row is None:
            raise NotFound(customer_id)
        if not row.merged_into_id or row.merged_into_id in seen:
            break
        seen.add(customer_id)
        customer_id = row.merged_into_id
    customer = row._asdict()
    del customer["merged_into_id"]
    customer["created_at"], customer["updated_at"] = _iso(row.created_at), _iso(row.updated_at)
    phones = connection.execute(_CUSTOMER_NUMBERS, {"customer_id": row.id}).scalars().all()
    return {**customer, "phones": phones}


def sla_state(row, now: datetime) -> dict:
    """Where a ticket stands against its SLA now: due times, and breached or not.

    A due time that has passed unmet counts as breached at once, before the breach job (every
    ``SLA_CHECK_SECONDS``) has flagged it. ``state``: ``breached``, ``met`` (resolved in time),
    ``paused`` (pending: the resolution clock stops), ``running``, or ``none`` (no policy).
    """
    resolved = row.resolved_at is not None and row.status in ("resolved", "closed")
    first_breached = row.first_response_breached_at is not None or (
        row.first_responded_at is None
        and not resolved
        and row.first_response_due_at is not None
        and row.first_response_due_at <= now
    )
    resolution_breached = row.resolution_breached_at is not None or (
        not resolved and row.status != "pending" and row.resolution_due_at is not None and row.resolution_due_at <= now
    )
    breached = bool(row.breached or first_breached or resolution_breached)
    if breached:
        state = "breached"
    elif resolved:
        state = "met"
    elif row.first_response_due_at is None and row.resolution_due_at is None:
        state = "none"
    elif row.status == "pending":
        state = "paused"
    else:
        state = "running"
    return {
        "state": state,
        "breached": breached,
        "first_response_due_at": _iso(row.first_response_due_at),
        "first_response_breached": first_breached,
        "resolution_due_at": _iso(row.resolution_due_at),
        "resolution_breached": resolution_breached,
    }


def _overview_ticket(row, now: datetime) -> dict:
    return {
        "id": row.id,
        "number": row.number,
        "subject": row.subject,
        "category": row.category,
        "priority": row.priority,
        "channel": row.channel,
        "status": row.status,
        "assignee_id": row.assignee_id,
        "call_id": row.call_id,
        "survey_response_id": row.survey_response_id,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "first_responded_at": _iso(row.first_responded_at),
        "resolved_at": _iso(row.resolved_at),
        "sla": sla_state(row, now),
    }


def customer_overview(uow: UnitOfWork, customer_id: str, limit: int = OVERVIEW_LIMIT, now: datetime | None = None):
    """What the service desk knows of a customer, for the customer view: the profile and
    segment, the latest purchases, open and recent tickets with their SLA state, and open
    service-recovery cases; each list at most ``limit`` long, with its total.

    A merged customer's overview is the survivor's (``merged_from`` names the id asked for).
    Raises NotFound for an unknown customer. Reads only the customer's index entries.
    """
    now = now or utcnow()
    connection = uow.session.connection()
    customer = _overview_customer(connection, customer_id)
    params = {"customer_id": customer["id"], "limit": limit}
    total, open_total, recovery_total = connection.execute(_TICKET_TOTALS, params).one()
    recent = [_overview_ticket(row, now) for row in connection.execute(_RECENT_TICKETS, params)]
    # When every ticket is on the recent page, the open ones are among them: no second read.
    if total <= limit:
        open_tickets = [ticket for ticket in recent if ticket["status"] in OPEN_STATUSES]
    else:
        open_tickets = [_overview_ticket(row, now) for row in connection.execute(_OPEN_TICKETS, params)]
    if open_total <= len(open_tickets):  # every open ticket is at hand
        recovery = [ticket for ticket in open_tickets if ticket["category"] == SERVICE_RECOVERY]
    else:
        recovery = [_overview_ticket(row, now) for row in connection.execute(_OPEN_RECOVERY, params)]
    purchases = [
        {**row._asdict(), "amount": str(row.amount), "purchased_at": _iso(row.purchased_at)}
        for row in connection.execute(_RECENT_PURCHASES, params)
    ]
    purchases_total = (
        len(purchases) if len(purchases) < limit else connection.execute(_PURCHASE_TOTALS, params).scalar_one()
    )
    from . import mail

    return {
        "customer": customer,
        "mails": mail.customer_mails_json(uow, customer["id"], limit),
        "merged_from": customer_id if customer["id"] != customer_id else None,
        "purchases": {"items": purchases, "total": purchases_total},
        "tickets": {"open": open_tickets, "open_total": open_total, "recent": recent, "total": total},
        "service_recovery": {"open": recovery, "total": recovery_total},
        "as_of": _iso(now),
    }
