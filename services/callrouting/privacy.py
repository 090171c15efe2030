"""What call routing holds about a customer, to export it and to erase it (``customer.erased``).

Erasure keeps every call and attempt the reports count (queue, agent, times, outcome, reason,
talk and wrap-up seconds) and removes who called and what was noted: the caller's number, the
notes, the phone system's raw callbacks (they carry the numbers), and the customer replica's
details. Their open call-list entries are cancelled, and they go on the do-not-call list by
customer id and by the keyed hashes of their numbers, never the numbers: a customer created
later with one of those numbers is put on the list when call routing first hears of them
(``recheck_erased_numbers``), so a new purchase does not bring them back onto a call list.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.privacy import (
    as_record,
    erased_customer_ids,
    erasure_handler,
    hash_secret,
    number_hash,
    records,
    scrub_customer_replicas,
)
from shared.replicas import merged_customer_ids

from .models import (
    Call,
    CallAttempt,
    CallCallback,
    CallEntry,
    CustomerContact,
    CustomerReplica,
    CustomerReplicaPhone,
    DoNotCall,
    PrivacyErasure,
)

OPEN_ENTRY_STATES = ("pending", "leased")


def export_customer(session: Session, customer_id: str) -> dict:
    ids = merged_customer_ids(session, CustomerReplica, customer_id)
    calls = list(session.scalars(select(Call).where(Call.customer_id.in_(ids)).order_by(Call.received_at)))
    call_ids = [call.call_id for call in calls]
    return {
        "customer_replicas": records(session, select(CustomerReplica).where(CustomerReplica.customer_id.in_(ids))),
        "calls": [as_record(call) for call in calls],
        "call_callbacks": records(
            session,
            select(CallCallback).where(CallCallback.record_call_id.in_(call_ids)).order_by(CallCallback.callback_id),
        ),
        "call_entries": records(
            session, select(CallEntry).where(CallEntry.customer_id.in_(ids)).order_by(CallEntry.created_at)
        ),
        "call_attempts": records(
            session, select(CallAttempt).where(CallAttempt.customer_id.in_(ids)).order_by(CallAttempt.ended_at)
        ),
        "do_not_call": records(session, select(DoNotCall).where(DoNotCall.customer_id.in_(ids))),
        "customer_contacts": records(session, select(CustomerContact).where(CustomerContact.customer_id.in_(ids))),
    }


def erase_customer(session: Session, data: dict) -> None:
    ids = erased_customer_ids(data)
    now = datetime.now(UTC)
    session.flush()
    scrub_customer_replicas(session, CustomerReplica, CustomerReplicaPhone, ids)
    # the list: by id, and by hashes of the numbers in place of the numbers themselves
    session.execute(delete(DoNotCall).where(DoNotCall.customer_id.in_(ids), DoNotCall.phone.is_not(None)))
    held = set(session.scalars(select(DoNotCall.phone_hash).where(DoNotCall.phone_hash.is_not(None))))
    for customer_id in ids:
        session.add(DoNotCall(customer_id=customer_id, source="erasure"))
    for digest in sorted(set(data.get("number_hashes") or ()) - held):
        session.add(DoNotCall(phone_hash=digest, source="erasure"))
    session.execute(
        update(CallEntry)
        .where(CallEntry.customer_id.in_(ids), CallEntry.state.in_(OPEN_ENTRY_STATES))
        .values(state="cancelled", leased_by=None, leased_at=None, lease_expires_at=None, closed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(CallAttempt)
        .where(CallAttempt.customer_id.in_(ids))
        .values(notes=None)
        .execution_options(synchronize_session=False)
    )
    call_ids = select(Call.call_id).where(Call.customer_id.in_(ids)).scalar_subquery()
    session.execute(
        update(CallCallback)
        .where(CallCallback.record_call_id.in_(call_ids))
        .values(payload={})
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Call)
        .where(Call.customer_id.in_(ids))
        .values(from_number=None, notes=None)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


on_customer_erased = erasure_handler(PrivacyErasure, erase_customer)


def apply_retention(session: Session, settings, now: datetime) -> dict:
    """Call notes older than RETENTION_CALL_NOTES_DAYS removed (the calls stay, as the reports count them)."""
    from datetime import timedelta

    from shared.privacy import retention

    done = {"call_notes": 0}
    if days := retention(settings, "call_notes"):
        cutoff = now - timedelta(days=days)
        done["call_notes"] = (
            session.execute(
                update(Call)
                .where(Call.received_at < cutoff, Call.notes.is_not(None))
                .values(notes=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            + session.execute(
                update(CallAttempt)
                .where(CallAttempt.ended_at < cutoff, CallAttempt.notes.is_not(None))
                .values(notes=None)
                .execution_options(synchronize_session=False)
            ).rowcount
        )
    return done


def retention_job(database, settings) -> None:
    from shared.unit_of_work import UnitOfWork

    with UnitOfWork(database, source=settings.service) as uow:
        apply_retention(uow.session, settings, datetime.now(UTC))
        uow.commit()


def recheck_erased_numbers(session: Session, customer_id: str) -> bool:
    """A customer call routing hears of (created or updated) with a number an erased customer had
    goes on the do-not-call list too; True when they did."""
    numbers = list(
        session.scalars(select(CustomerReplicaPhone.phone).where(CustomerReplicaPhone.customer_id == customer_id))
    )
    if not numbers or not session.scalar(select(DoNotCall.dnc_id).where(DoNotCall.phone_hash.is_not(None)).limit(1)):
        return False  # nobody was ever erased: no hashing on the hot path
    secret = hash_secret()
    digests = [number_hash(number, secret) for number in numbers]
    if not session.scalar(select(DoNotCall.dnc_id).where(DoNotCall.phone_hash.in_(digests)).limit(1)):
        return False
    already = session.scalar(
        select(DoNotCall.dnc_id).where(
            DoNotCall.customer_id == customer_id, DoNotCall.source == "erasure", DoNotCall.phone.is_(None)
        )
    )
    if already is None:
        session.add(DoNotCall(customer_id=customer_id, source="erasure"))
        session.flush()
    return True
