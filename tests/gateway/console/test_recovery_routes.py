"""The service-recovery queue's routes through Flask's test client (real services behind the
gateway), and how the queue judges a case's SLA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.console.recovery import sla_of

pytestmark = pytest.mark.db

HTMX = {"HX-Request": "true"}


def as_role(stack, user_id: str, role: str) -> dict:
    return {**stack.bearer(user_id, role), **HTMX}


def new_ticket(stack, category: str = "service_recovery", subject: str = "Service recovery: low score") -> dict:
    answer = stack.client.post(
        "/api/tickets/tickets",
        json={"subject": subject, "description": "low scores", "category": category, "priority": "urgent"},
        headers=stack.bearer("rec-setup", "admin"),
    )
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_an_agent_is_refused_the_queue_and_its_actions(stack):
    case = new_ticket(stack)
    agent = as_role(stack, "rec-agent", "agent")
    assert stack.client.get("/recovery", headers=agent).status_code == 403
    assert stack.client.get("/recovery/queue", headers=agent).status_code == 403
    taken = stack.client.post(f"/recovery/{case['id']}/assign", data={"take": "me"}, headers=agent)
    assert taken.status_code == 403
    stored = stack.client.get(f"/api/tickets/tickets/{case['id']}", headers=stack.bearer("rec-setup", "admin"))
    assert stored.get_json()["assignee_id"] is None


def test_the_queue_lists_open_recovery_cases_only_and_a_supervisor_takes_one(stack):
    case = new_ticket(stack, subject="Service recovery: <i>service 2</i>")
    other = new_ticket(stack, category="complaint", subject="Not a recovery case")
    supervisor = as_role(stack, "rec-sup", "supervisor")
    page = stack.client.get("/recovery", headers=stack.bearer("rec-sup", "supervisor")).get_data(as_text=True)
    assert f'data-ticket-id="{case["id"]}"' in page and f'data-ticket-id="{other["id"]}"' not in page
    assert "&lt;i&gt;service 2&lt;/i&gt;" in page and "<i>service 2</i>" not in page
    assert f'href="/tickets/{case["id"]}"' in page
    taken = stack.client.post(f"/recovery/{case['id']}/assign", data={"take": "me"}, headers=supervisor)
    assert taken.status_code == 200 and 'id="recovery-queue"' in taken.get_data(as_text=True)
    stored = stack.client.get(f"/api/tickets/tickets/{case['id']}", headers=supervisor).get_json()
    assert stored["assignee_id"] == "rec-sup" and stored["status"] == "open"
    mine = stack.client.get("/recovery/queue?view=mine", headers=supervisor).get_data(as_text=True)
    assert f'data-ticket-id="{case["id"]}"' in mine


def test_assigning_needs_an_agent_and_a_recovery_case(stack):
    supervisor = as_role(stack, "rec-sup", "supervisor")
    case = new_ticket(stack)
    nobody = stack.client.post(f"/recovery/{case['id']}/assign", data={"assignee_id": ""}, headers=supervisor)
    assert nobody.status_code == 422 and "assignee_id" in nobody.get_data(as_text=True)
    complaint = new_ticket(stack, category="complaint")
    wrong = stack.client.post(f"/recovery/{complaint['id']}/assign", data={"assignee_id": "x"}, headers=supervisor)
    assert wrong.status_code == 404 and wrong.headers["HX-Retarget"] == "#flash"
    unknown_filter = stack.client.get("/recovery/queue?view=everything", headers=supervisor)
    assert unknown_filter.status_code == 422


def ticket(**fields) -> dict:
    base = {
        "status": "open",
        "first_responded_at": None,
        "first_response_breached_at": None,
        "resolution_breached_at": None,
        "breached": False,
    }
    return {**base, **fields}


def test_a_due_time_passed_unmet_is_breached_before_the_breach_job_says_so():
    at = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    soon = ticket(first_response_due_at=(at + timedelta(minutes=30)).isoformat(), resolution_due_at=None)
    assert sla_of(soon, at)["breached"] is False and sla_of(soon, at)["left"] == "in 30 min"
    assert sla_of(soon, at)["target"] == "first response"
    late = ticket(first_response_due_at=(at - timedelta(minutes=5)).isoformat(), resolution_due_at=None)
    assert sla_of(late, at)["breached"] is True and sla_of(late, at)["left"] == "5 min ago"
    answered = ticket(
        first_response_due_at=(at - timedelta(minutes=5)).isoformat(),
        first_responded_at=(at - timedelta(minutes=10)).isoformat(),
        resolution_due_at=(at + timedelta(hours=3)).isoformat(),
    )
    assert sla_of(answered, at)["breached"] is False and sla_of(answered, at)["target"] == "resolution"
    flagged = ticket(first_response_due_at=None, resolution_due_at=None, breached=True)
    assert sla_of(flagged, at)["breached"] is True


def test_the_loop_closure_figure_counts_cases_resolved_within_their_sla(stack):
    admin = stack.bearer("rec-setup", "admin")
    resolved = new_ticket(stack)
    stack.client.patch(f"/api/tickets/tickets/{resolved['id']}", json={"status": "resolved"}, headers=admin)
    new_ticket(stack)  # still open: not in the figure
    page = stack.client.get("/recovery/queue", headers=as_role(stack, "rec-sup", "supervisor")).get_data(as_text=True)
    assert "100 %" in page and "1 of 1 resolved" in page
