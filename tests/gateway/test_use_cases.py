"""The gateway's own use cases on their own, with a collecting unit of work (no app, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from services.gateway.models import AuditEntry
from services.gateway.privacy import record_audit
from shared.auth import User

AT = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


def test_an_audit_row_lands_with_its_commit_and_announces_nothing(uow_factory):
    dpo = User("dpo-1", "privacy")
    with uow_factory("gateway") as uow:
        record_audit(uow, dpo, "customer.exported", "c-1", request_id="r-1", at=AT, kinds={"tickets": ["customer"]})
        uow.commit()
    assert uow.committed == []  # the audit log is the gateway's own: no event
    with uow_factory("gateway", read_only=True) as look:
        rows = list(look.session.scalars(select(AuditEntry)))
    assert [(r.actor_id, r.actor_role, r.action, r.customer_id, r.request_id) for r in rows] == [
        ("dpo-1", "privacy", "customer.exported", "c-1", "r-1")
    ]
    assert rows[0].at == AT and rows[0].detail == {"kinds": {"tickets": ["customer"]}}


def test_an_audit_row_not_committed_is_not_kept(uow_factory):
    with uow_factory("gateway") as uow:
        record_audit(uow, User("agent-7", "agent"), "customer.viewed", "c-2")
    with uow_factory("gateway", read_only=True) as look:
        assert look.session.scalar(select(AuditEntry)) is None
