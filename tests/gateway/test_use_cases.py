"""The gateway's own use cases on their own, with a collecting unit of work (no app, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway import users
from services.gateway.privacy import audit_row
from shared.auth import User
from shared.errors import Conflict, NotFound

AT = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


def test_an_audit_row_says_who_did_what_to_whom_and_when():
    dpo = User("dpo-1", "privacy")
    row = audit_row(dpo, "customer.exported", "c-1", request_id="r-1", at=AT, kinds={"tickets": ["customer"]})
    assert row == {
        "at": AT,
        "actor_id": "dpo-1",
        "actor_role": "privacy",
        "action": "customer.exported",
        "customer_id": "c-1",
        "request_id": "r-1",
        "detail": {"kinds": {"tickets": ["customer"]}},
    }
    assert audit_row(User("agent-7", "agent"), "customer.viewed", "c-2")["at"].tzinfo is not None


def test_user_admin_pages_users_and_raises_plain_domain_errors(uow_factory):
    database = uow_factory("gateway").database  # the use cases open their own transactions on it
    for user_id, role in (("root", "admin"), ("agent-2", "agent"), ("agent-1", "agent")):
        users.create_user(database, user_id, user_id.title(), role, "a long enough password", AT)

    items, total = users.users_page(database, limit=2, offset=1)
    assert ([account.id for account in items], total) == (["agent-2", "root"], 3)
    assert users.users_page(database, limit=2, offset=5) == ([], 3)
    with pytest.raises(NotFound, match="No user nobody"):
        users.get_user(database, "nobody")
    with pytest.raises(NotFound):
        users.update_user(database, "nobody", name="X")
    with pytest.raises(Conflict, match="last active admin"):
        users.update_user(database, "root", role="agent")
    with pytest.raises(Conflict):
        users.create_user(database, "root", "Again", "admin", "a long enough password", AT)


def test_a_users_live_tokens_come_a_page_at_a_time_oldest_first(uow_factory):
    database = uow_factory("gateway").database
    users.create_user(database, "agent-7", "Agent 7", "agent", "a long enough password", AT)
    with database.sessions() as session:
        for minutes in (3, 1, 2):
            at = AT + timedelta(minutes=minutes)
            users.issue_token(session, "agent-7", "api", timedelta(days=1), label=f"t{minutes}", now=at)
        users.issue_token(session, "agent-7", "api", timedelta(seconds=1), label="expired", now=AT)
        session.commit()

    items, total = users.live_tokens_page(database, "agent-7", limit=2, offset=0, now=AT + timedelta(hours=1))
    assert ([token.label for token in items], total) == (["t1", "t2"], 3)
