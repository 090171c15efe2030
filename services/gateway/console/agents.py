"""The agents screen (supervisors): who is on, in which state and for how long, their skills and
routing, and onboarding a new agent.

- ``GET /agents`` (and ``GET /agents/table``, the table alone, polled): call routing's agents
  registry with each agent's state and time in it, skills, queues and calls today, and their
  gateway account (active or not); a state can be set from the row (e.g. force offline);
- ``GET /agents/<id>``: one agent's skills, routing (where they are dialled, which queues) and
  state, each an htmx form: ``POST /agents/<id>/skills``, ``/routing``, ``/state``;
- ``GET/POST /agents/new``: a supervisor onboards an agent: a gateway user with role *agent*,
  registered in call routing, with a password shown once. Only an admin may pick another role
  (the same rules as the admins' ``/users`` API, whose schema and functions this reuses), so a
  supervisor can never make a supervisor or an admin.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from flask import current_app, request
from marshmallow import ValidationError

from shared.auth import ROLES, acting_user, rule

from .. import users
from ..auth_api import UserIn, now
from ..upstream import upstreams
from .base import Refused, ask, console, page, render
from .i18n import N_

ACCESS: list = [rule("/agents*", "supervisor")]

# States a supervisor may set (call routing's own: the others belong to its routing engine).
SETTABLE_STATES = ("available", "on_break", "offline")
ENDPOINT_KINDS = (
    ("client", N_("Browser phone (Twilio client)")),
    ("sip", N_("SIP address")),
    ("number", N_("Phone number")),
)
STATE_BADGES = {
    "available": "badge-ok",
    "on_call": "badge-ok",
    "reserved": "badge-warn",
    "wrap_up": "badge-warn",
    "on_break": "badge-warn",
    "offline": "",
}
ROUTING_DEADLINE_SECONDS = 3.0
MAX_SKILL_LENGTH = 64  # call routing's limit


def _path(agent_id: str) -> str:
    return "/agents/" + quote(agent_id, safe="")


def _names(text: str) -> list[str]:
    """A comma-separated list as call routing takes skills and queues: trimmed, no blanks or repeats."""
    seen: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if name and name not in seen:
            seen.append(name)
    return seen


def time_in_state(changed_at: str | None, at: datetime) -> str:
    """How long since ``changed_at`` (ISO 8601), said briefly: "45 s", "12 min", "3 h 5 min", "2 d"."""
    if not changed_at:
        return "—"
    since = datetime.fromisoformat(changed_at)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    seconds = max(0, int((at - since).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d"


# --- the list ----------------------------------------------------------------------------------


def _routing_of(agent_ids: list[str]) -> tuple[dict, dict]:
    """Each agent's routing and today's counters, asked in parallel; (found, missing reasons)."""
    front = upstreams()

    def reader(agent_id: str):
        def read(user, request_id):
            answer = front.call("callrouting", "GET", _path(agent_id) + "/routing", user=user, request_id=request_id)
            return answer.json() if answer.status_code == 200 else None

        return read

    return front.fan_out({agent_id: reader(agent_id) for agent_id in agent_ids}, ROUTING_DEADLINE_SECONDS)


def _agents_table_context() -> dict:
    agents = ask("callrouting", "GET", "/agents", params={"limit": 500})["items"]
    routing, missing = _routing_of([agent["id"] for agent in agents])
    accounts = {account.id: account for account in users.list_users(current_app.extensions["database"])}
    at = datetime.now(UTC)
    for agent in agents:
        agent["in_state"] = time_in_state(agent.get("state_changed_at"), at)
        agent["routing"] = routing.get(agent["id"])
        agent["account"] = accounts.get(agent["id"])
    by_state: dict[str, int] = {}
    for agent in agents:
        by_state[agent["state"]] = by_state.get(agent["state"], 0) + 1
    return {
        "agents": agents,
        "by_state": by_state,
        "routing_missing": bool(missing),
        "settable_states": SETTABLE_STATES,
        "state_badges": STATE_BADGES,
        "at": at,
    }


@console.route("/agents")
@page
def agents_page():
    return render("console/agents/list.html", **_agents_table_context())


@console.route("/agents/table")
@page
def agents_table():
    return render("console/agents/_table.html", **_agents_table_context())


# --- onboarding --------------------------------------------------------------------------------


def _may_pick_role() -> bool:
    return acting_user().has_role("admin")


@console.route("/agents/new", methods=["GET"])
@page
def new_agent_page():
    return render("console/agents/new.html", roles=ROLES if _may_pick_role() else ("agent",))


@console.route("/agents/new", methods=["POST"])
@page
def create_agent():
    form = request.form
    role = form.get("role", "agent")
    if role != "agent" and not _may_pick_role():
        # Checked before anything else: a supervisor's form has no role field, so this is a forged one.
        raise Refused(403, {"title": "Not allowed", "detail": "A supervisor creates agents only; ask an admin."})
    user_id, name = form.get("user_id", "").strip(), form.get("name", "").strip()
    typed_password = form.get("password", "")
    password = typed_password or users.generated_password()
    try:
        body = UserIn().load({"id": user_id, "name": name, "role": role, "password": password})
    except ValidationError as error:
        errors = {("user_id" if field == "id" else field): messages for field, messages in error.messages.items()}
        raise Refused(
            422, {"title": "Not created", "detail": "Check the fields named below.", "errors": errors}
        ) from None
    skills = _names(form.get("skills", ""))
    if any(len(skill) > MAX_SKILL_LENGTH for skill in skills):
        # Checked here, not left to call routing: by then the user would exist without their skills.
        errors = {"skills": f"A skill has at most {MAX_SKILL_LENGTH} characters."}
        raise Refused(422, {"title": "Not created", "detail": "Check the fields named below.", "errors": errors})
    account = users.create_user(
        current_app.extensions["database"], body["id"], body["name"], body["role"], body["password"], now()
    )
    registered = None
    if account.role == "agent":
        # As the /users API does: the user exists even when call routing is down (a later edit retries).
        registered = users.register_agent(upstreams(), account.id, account.name)
        if registered and skills:
            ask("callrouting", "POST", "/agents", json={"id": account.id, "name": account.name, "skills": skills})
    return render(
        "console/agents/_created.html",
        201,
        account=account,
        registered=registered,
        skills=skills,
        generated_password=None if typed_password else password,
    )


# --- one agent -----------------------------------------------------------------------------------


def _agent_context(agent_id: str) -> dict:
    agent = ask("callrouting", "GET", _path(agent_id))
    agent["in_state"] = time_in_state(agent.get("state_changed_at"), datetime.now(UTC))
    return {
        "agent": agent,
        "routing": ask("callrouting", "GET", _path(agent_id) + "/routing"),
        "queues": ask("callrouting", "GET", "/queues", params={"limit": 500})["items"],
        "settable_states": SETTABLE_STATES,
        "state_badges": STATE_BADGES,
        "endpoint_kinds": ENDPOINT_KINDS,
    }


@console.route("/agents/<agent_id>", methods=["GET"])
@page
def agent_page(agent_id: str):
    return render("console/agents/detail.html", **_agent_context(agent_id))


@console.route("/agents/<agent_id>/skills", methods=["POST"])
@page
def update_skills(agent_id: str):
    known = ask("callrouting", "GET", _path(agent_id))
    name = request.form.get("name", "").strip() or known["name"]
    # Call routing's POST /agents updates an existing agent's name and skills; its state is kept.
    ask(
        "callrouting",
        "POST",
        "/agents",
        json={"id": agent_id, "name": name, "skills": _names(request.form.get("skills", ""))},
    )
    context = _agent_context(agent_id)
    return render("console/agents/_skills.html", saved=True, **context)


@console.route("/agents/<agent_id>/routing", methods=["POST"])
@page
def update_routing(agent_id: str):
    form = request.form
    body = {
        "endpoint_kind": form.get("endpoint_kind", ""),
        "endpoint": form.get("endpoint", "").strip(),
        "queues": _names(form.get("queues", "")),
    }
    ask("callrouting", "PUT", _path(agent_id) + "/routing", json=body)
    return render("console/agents/_routing.html", saved=True, **_agent_context(agent_id))


@console.route("/agents/<agent_id>/state", methods=["POST"])
@page
def set_state(agent_id: str):
    state = request.form.get("state", "")
    ask("callrouting", "PUT", _path(agent_id) + "/state", json={"state": state})
    if request.form.get("from") == "list":
        return render("console/agents/_table.html", **_agents_table_context())
    return render("console/agents/_state.html", saved=True, **_agent_context(agent_id))
