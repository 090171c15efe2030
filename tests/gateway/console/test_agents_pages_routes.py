"""The agents screen's routes through Flask's test client (real services behind the gateway):
who may onboard whom, what bad input answers, and that changes reach call routing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.gateway.models import UserAccount
from tests.gateway.console.conftest import PASSWORD

pytestmark = pytest.mark.db

HTMX = {"HX-Request": "true"}


def as_role(stack, user_id: str, role: str) -> dict:
    return {**stack.bearer(user_id, role), **HTMX}


def account(stack, user_id: str) -> UserAccount | None:
    with stack.gateway_database.sessions() as session:
        return session.scalar(select(UserAccount).where(UserAccount.id == user_id))


def test_an_agent_is_refused_the_agents_screens(stack):
    agent = as_role(stack, "ag-agent", "agent")
    assert stack.client.get("/agents", headers=agent).status_code == 403
    assert stack.client.get("/agents/new", headers=agent).status_code == 403
    made = stack.client.post("/agents/new", data={"user_id": "ag-x", "name": "X", "password": PASSWORD}, headers=agent)
    assert made.status_code == 403 and account(stack, "ag-x") is None
    state = stack.client.post("/agents/ag-agent/state", data={"state": "offline"}, headers=agent)
    assert state.status_code == 403


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_a_supervisor_cannot_create_a_supervisor_or_an_admin(stack, role):
    supervisor = as_role(stack, "ag-sup", "supervisor")
    answer = stack.client.post(
        "/agents/new",
        data={"user_id": "ag-climber", "name": "Climber", "role": role, "password": PASSWORD},
        headers=supervisor,
    )
    assert answer.status_code == 403 and answer.headers["HX-Retarget"] == "#flash"
    assert account(stack, "ag-climber") is None
    # ...and the form a supervisor gets offers no role at all.
    page = stack.client.get("/agents/new", headers=stack.bearer("ag-sup", "supervisor")).get_data(as_text=True)
    assert 'name="role"' not in page


def test_an_admin_may_create_a_supervisor_with_the_same_form(stack):
    admin = as_role(stack, "ag-admin", "admin")
    assert 'name="role"' in stack.client.get("/agents/new", headers=admin).get_data(as_text=True)
    answer = stack.client.post(
        "/agents/new", data={"user_id": "ag-new-sup", "name": "New Sup", "role": "supervisor"}, headers=admin
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert account(stack, "ag-new-sup").role == "supervisor"
    # Not an agent, so not in call routing's registry.
    known = stack.client.get("/api/callrouting/agents/ag-new-sup", headers=admin)
    assert known.status_code == 404


def test_a_new_agent_is_registered_with_skills_and_a_password_shown_once(stack):
    supervisor = as_role(stack, "ag-sup", "supervisor")
    answer = stack.client.post(
        "/agents/new",
        data={"user_id": "ag-fresh", "name": "Fresh Agent", "skills": "de, returns, de"},
        headers=supervisor,
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 201 and "shown only this once" in text
    assert account(stack, "ag-fresh").role == "agent"
    registered = stack.client.get("/api/callrouting/agents/ag-fresh", headers=supervisor).get_json()
    assert registered["skills"] == ["de", "returns"]
    # A password the supervisor typed is not echoed back.
    typed = stack.client.post(
        "/agents/new", data={"user_id": "ag-typed", "name": "Typed", "password": PASSWORD}, headers=supervisor
    )
    assert typed.status_code == 201 and PASSWORD not in typed.get_data(as_text=True)


def test_bad_new_agents_are_4xx_alerts_naming_the_field(stack):
    supervisor = as_role(stack, "ag-sup", "supervisor")
    weak = stack.client.post(
        "/agents/new", data={"user_id": "ag-weak", "name": "Weak", "password": "short"}, headers=supervisor
    )
    assert weak.status_code == 422 and "password" in weak.get_data(as_text=True)
    bad_id = stack.client.post("/agents/new", data={"user_id": "has space", "name": "Odd"}, headers=supervisor)
    assert bad_id.status_code == 422 and "user_id" in bad_id.get_data(as_text=True)
    stack.client.post("/agents/new", data={"user_id": "ag-twice", "name": "Twice"}, headers=supervisor)
    taken = stack.client.post("/agents/new", data={"user_id": "ag-twice", "name": "Twice"}, headers=supervisor)
    assert taken.status_code == 409 and "already a user" in taken.get_data(as_text=True)
    assert account(stack, "ag-weak") is None
    long_skill = stack.client.post(
        "/agents/new",
        data={"user_id": "ag-skilled", "name": "Skilled", "skills": "de, " + "x" * 65},
        headers=supervisor,
    )
    assert long_skill.status_code == 422 and "skills" in long_skill.get_data(as_text=True)
    assert account(stack, "ag-skilled") is None


def test_skills_routing_and_state_changes_reach_call_routing(stack):
    supervisor = as_role(stack, "ag-sup", "supervisor")
    stack.client.post("/agents/new", data={"user_id": "ag-edit", "name": "Edit Me"}, headers=supervisor)
    client = stack.client
    skills = client.post("/agents/ag-edit/skills", data={"name": "Edit Me", "skills": "fr, vip"}, headers=supervisor)
    assert skills.status_code == 200 and "Skills saved." in skills.get_data(as_text=True)
    routing = client.post(
        "/agents/ag-edit/routing",
        data={"endpoint_kind": "sip", "endpoint": "sip:edit@pbx.example", "queues": "vip"},
        headers=supervisor,
    )
    assert routing.status_code == 200, routing.get_data(as_text=True)
    state = client.post("/agents/ag-edit/state", data={"state": "available"}, headers=supervisor)
    assert state.status_code == 200
    agent = client.get("/api/callrouting/agents/ag-edit", headers=supervisor).get_json()
    assert agent["skills"] == ["fr", "vip"] and agent["state"] == "available"
    route = client.get("/api/callrouting/agents/ag-edit/routing", headers=supervisor).get_json()
    assert route["endpoint"] == "sip:edit@pbx.example" and route["queues"] == ["vip"]
    bad = client.post(
        "/agents/ag-edit/routing", data={"endpoint_kind": "number", "endpoint": "not a number"}, headers=supervisor
    )
    assert bad.status_code == 422 and "endpoint" in bad.get_data(as_text=True)
    nonsense = client.post("/agents/ag-edit/state", data={"state": "asleep"}, headers=supervisor)
    assert nonsense.status_code == 422 and "state" in nonsense.get_data(as_text=True)


def test_the_list_shows_each_agent_with_state_and_account(stack):
    supervisor = as_role(stack, "ag-sup", "supervisor")
    stack.client.post("/agents/new", data={"user_id": "ag-listed", "name": "<b>Listed</b>"}, headers=supervisor)
    page = stack.client.get("/agents", headers=stack.bearer("ag-sup", "supervisor")).get_data(as_text=True)
    assert 'data-agent-id="ag-listed"' in page and "&lt;b&gt;Listed&lt;/b&gt;" in page and "<b>Listed</b>" not in page
    assert "offline" in page and "active" in page
    offline = stack.client.post(
        "/agents/ag-listed/state", data={"state": "offline", "from": "list"}, headers=supervisor
    )
    assert offline.status_code == 200 and 'id="agents-table"' in offline.get_data(as_text=True)
