"""Users at the gateway: admin-only management, the password policy, agents registered in call
routing (the real service from ``stack``), the CLI (run in-process) and the first admin.
"""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
import requests

from services.gateway import cli, users
from services.gateway.app import create_app as create_gateway
from tests.support.auth import gateway_user, signed_as

PASSWORD = "correct horse battery staple"


@pytest.fixture
def gateway(settings_factory):
    settings, _database = settings_factory("gateway")
    return create_gateway(settings)


def bearer(app, user_id: str, role: str) -> dict[str, str]:
    """An API token for ``user_id`` (made with ``role`` if new)."""
    return {"Authorization": f"Bearer {gateway_user(app.extensions['database'], user_id, role, PASSWORD)}"}


def sign_in(app, user_id: str, password: str = PASSWORD) -> int:
    return app.test_client().post("/auth/sign-in", json={"user_id": user_id, "password": password}).status_code


def new_user(**fields) -> dict:
    return {"id": "agent-9", "name": "Agent Nine", "role": "agent", "password": PASSWORD, **fields}


# --- who may manage users ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_users_routes_are_403_for_agents_and_supervisors(gateway, role):
    headers = bearer(gateway, f"{role}-1", role)
    client = gateway.test_client()

    answers = [
        client.get("/users", headers=headers),
        client.post("/users", json=new_user(role="supervisor"), headers=headers),
        client.get(f"/users/{role}-1", headers=headers),
        client.patch(f"/users/{role}-1", json={"role": "admin"}, headers=headers),
    ]

    assert [answer.status_code for answer in answers] == [403] * 4
    assert users.get_user(gateway.extensions["database"], f"{role}-1").role == role


def test_an_admin_creates_lists_and_reads_users(gateway):
    admin = bearer(gateway, "root", "admin")
    client = gateway.test_client()

    made = client.post("/users", json=new_user(id="sup-1", name="Sue Pervisor", role="supervisor"), headers=admin)

    assert made.status_code == 201
    assert made.json["agent_registered"] is None  # not an agent
    assert {"id": "sup-1", "name": "Sue Pervisor", "role": "supervisor", "active": True}.items() <= made.json.items()
    assert "password" not in made.json and "password_hash" not in made.json
    listed = client.get("/users", headers=admin).json
    assert [user["id"] for user in listed["items"]] == ["root", "sup-1"]
    assert (listed["total"], listed["limit"], listed["offset"]) == (2, 50, 0)
    second = client.get("/users?limit=1&offset=1", headers=admin).json
    assert ([user["id"] for user in second["items"]], second["total"]) == (["sup-1"], 2)
    assert client.get("/users?limit=501", headers=admin).status_code == 422
    assert client.get("/users/sup-1", headers=admin).json["name"] == "Sue Pervisor"
    assert client.get("/users/nobody", headers=admin).status_code == 404
    assert sign_in(gateway, "sup-1") == 200


def test_creating_a_user_whose_id_is_taken_is_409(gateway):
    admin = bearer(gateway, "root", "admin")

    answer = gateway.test_client().post("/users", json=new_user(id="root", role="supervisor"), headers=admin)

    assert answer.status_code == 409


# --- the password policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "says"),
    [("eleven char", "at least 12"), ("Agent-9", "user id")],
)
def test_a_weak_password_is_422_naming_the_password_field(gateway, password, says):
    admin = bearer(gateway, "root", "admin")

    answer = gateway.test_client().post("/users", json=new_user(password=password), headers=admin)

    assert answer.status_code == 422
    assert {error["field"] for error in answer.json["errors"]} == {"password"}
    assert says in str(answer.json["errors"])


def test_a_password_equal_to_a_long_id_is_422(gateway):
    admin = bearer(gateway, "root", "admin")

    answer = gateway.test_client().post(
        "/users", json=new_user(id="agent.with.a.long.id", password="Agent.With.A.Long.Id"), headers=admin
    )

    assert answer.status_code == 422
    assert "must not be the user id" in answer.json["errors"][0]["detail"]


def test_a_bad_user_id_or_role_is_422(gateway):
    admin = bearer(gateway, "root", "admin")

    answer = gateway.test_client().post("/users", json=new_user(id="has space", role="boss"), headers=admin)

    assert answer.status_code == 422
    assert {error["field"] for error in answer.json["errors"]} == {"id", "role"}


def test_patching_in_a_weak_password_is_422(gateway):
    admin = bearer(gateway, "root", "admin")
    users.create_user(gateway.extensions["database"], "agent-9", "Agent Nine", "supervisor", PASSWORD)

    answer = gateway.test_client().patch("/users/agent-9", json={"password": "short"}, headers=admin)

    assert answer.status_code == 422
    assert answer.json["errors"][0]["field"] == "password"


# --- changing users ---------------------------------------------------------------------------


def test_deactivating_a_user_revokes_their_tokens_and_enabling_lets_them_sign_in_again(gateway):
    admin = bearer(gateway, "root", "admin")
    theirs = bearer(gateway, "sup-1", "supervisor")
    client = gateway.test_client()

    disabled = client.patch("/users/sup-1", json={"active": False}, headers=admin)

    assert disabled.status_code == 200 and disabled.json["active"] is False
    assert client.get("/auth/me", headers=theirs).status_code == 401
    assert sign_in(gateway, "sup-1") == 401
    assert client.patch("/users/sup-1", json={"active": True}, headers=admin).json["active"] is True
    assert sign_in(gateway, "sup-1") == 200
    assert client.get("/auth/me", headers=theirs).status_code == 401  # revoked stays revoked


def test_an_admin_setting_a_password_revokes_the_users_tokens(gateway):
    admin = bearer(gateway, "root", "admin")
    theirs = bearer(gateway, "sup-1", "supervisor")
    client = gateway.test_client()

    answer = client.patch("/users/sup-1", json={"password": "set by the admin!", "name": "Sue"}, headers=admin)

    assert answer.status_code == 200 and answer.json["name"] == "Sue"
    assert client.get("/auth/me", headers=theirs).status_code == 401
    assert sign_in(gateway, "sup-1") == 401
    assert sign_in(gateway, "sup-1", "set by the admin!") == 200


def test_a_role_change_applies_to_the_users_live_tokens_at_once(gateway):
    admin = bearer(gateway, "root", "admin")
    theirs = bearer(gateway, "sup-1", "supervisor")
    client = gateway.test_client()

    client.patch("/users/sup-1", json={"role": "admin"}, headers=admin)

    assert client.get("/users", headers=theirs).status_code == 200


def test_the_last_active_admin_can_be_neither_disabled_nor_demoted(gateway):
    admin = bearer(gateway, "root", "admin")
    client = gateway.test_client()

    disabled = client.patch("/users/root", json={"active": False}, headers=admin)
    demoted = client.patch("/users/root", json={"role": "supervisor"}, headers=admin)

    assert disabled.status_code == demoted.status_code == 409
    bearer(gateway, "root-2", "admin")
    assert client.patch("/users/root", json={"role": "supervisor"}, headers=admin).status_code == 200


# --- agents are call routing's agents ---------------------------------------------------------


def callrouting_agent(stack, agent_id: str) -> requests.Response:
    return requests.get(
        f"{stack.servers['callrouting'].url}/agents/{agent_id}", headers=dict(signed_as("test", "admin")), timeout=5
    )


def test_creating_an_agent_user_registers_the_agent_in_call_routing(stack):
    admin = stack.bearer("root", "admin")

    made = stack.client.post("/users", json=new_user(), headers=admin)

    assert made.status_code == 201
    assert made.json["agent_registered"] is True
    agent = callrouting_agent(stack, "agent-9")
    assert agent.status_code == 200
    assert agent.json()["name"] == "Agent Nine"


def test_an_agent_call_routing_knows_already_keeps_their_skills(stack):
    admin = stack.bearer("root", "admin")
    requests.post(
        f"{stack.servers['callrouting'].url}/agents",
        json={"id": "agent-9", "name": "Agent 9", "skills": ["billing"]},
        headers=dict(signed_as("test", "admin")),
        timeout=5,
    ).raise_for_status()

    made = stack.client.post("/users", json=new_user(), headers=admin)

    assert made.json["agent_registered"] is True
    assert callrouting_agent(stack, "agent-9").json()["skills"] == ["billing"]


def test_an_agent_user_is_created_even_when_call_routing_is_down_and_registered_by_a_later_patch(stack):
    admin = stack.bearer("root", "admin")
    stack.servers["callrouting"].stop()

    made = stack.client.post("/users", json=new_user(), headers=admin)

    assert made.status_code == 201
    assert made.json["agent_registered"] is False
    assert stack.client.get("/users/agent-9", headers=admin).status_code == 200
    # A supervisor made an agent is registered by that PATCH (call routing still down here: false).
    supervisor = stack.client.post("/users", json=new_user(id="sup-1", role="supervisor"), headers=admin)
    assert supervisor.json["agent_registered"] is None
    assert stack.client.patch("/users/sup-1", json={"role": "agent"}, headers=admin).json["agent_registered"] is False


# --- the CLI ----------------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli_env(stack, monkeypatch):
    """The CLI's environment: the stack's gateway database and its call routing."""
    monkeypatch.setenv("GATEWAY_DATABASE_URL", stack.gateway_database.url)
    monkeypatch.setenv("CALLROUTING_URL", stack.servers["callrouting"].url)
    return stack


@pytest.fixture
def cli_database(gateway, monkeypatch):
    """The CLI's environment for commands that need no service: the gateway app's database."""
    monkeypatch.setenv("GATEWAY_DATABASE_URL", gateway.extensions["database"].url)
    return gateway


def test_cli_creates_lists_disables_and_enables_users(cli_env):
    stack = cli_env

    code, out, _ = run_cli("users", "create", "agent-9", "--role", "agent", "--name", "Agent Nine")

    assert code == 0
    password = re.search(r"password for agent-9: (\S+)", out).group(1)  # no terminal: generated, printed
    assert "agent-9 is an agent in call routing" in out
    assert callrouting_agent(stack, "agent-9").status_code == 200
    assert sign_in(stack.gateway, "agent-9", password) == 200
    code, out, _ = run_cli("users", "create", "sup-1", "--role", "supervisor", "--name", "Sue", "--password", PASSWORD)
    assert code == 0 and "created supervisor sup-1 (Sue)" in out
    code, out, _ = run_cli("users", "list")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["ID", "ROLE", "ACTIVE", "NAME"]
    assert rows[1:] == [["agent-9", "agent", "yes", "Agent", "Nine"], ["sup-1", "supervisor", "yes", "Sue"]]
    token = stack.bearer("agent-9")  # a live token, revoked by disabling
    assert run_cli("users", "disable", "agent-9")[0] == 0
    assert sign_in(stack.gateway, "agent-9", password) == 401
    assert stack.client.get("/auth/me", headers=token).status_code == 401
    assert "agent-9  agent       no" in run_cli("users", "list")[1]
    assert run_cli("users", "enable", "agent-9")[0] == 0
    assert sign_in(stack.gateway, "agent-9", password) == 200


def test_cli_sets_passwords_and_roles_and_makes_api_tokens(cli_env):
    stack = cli_env
    run_cli("users", "create", "sup-1", "--role", "supervisor", "--name", "Sue", "--password", PASSWORD)

    assert run_cli("users", "set-password", "sup-1", "--password", "another long password")[0] == 0
    assert sign_in(stack.gateway, "sup-1", "another long password") == 200
    code, out, _ = run_cli("users", "set-role", "sup-1", "agent")
    assert code == 0 and "sup-1 is now agent" in out and "is an agent in call routing" in out
    code, out, _ = run_cli("tokens", "create", "sup-1", "--label", "simulator")
    assert code == 0
    token = out.strip()
    me = stack.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json["user"] == {"id": "sup-1", "name": "Sue", "role": "agent"}


def test_cli_refuses_weak_passwords_unknown_users_and_taken_ids(cli_database):
    code, _, err = run_cli("users", "create", "sup-1", "--role", "supervisor", "--name", "S", "--password", "short")
    assert code == 1 and "at least 12" in err
    run_cli("users", "create", "sup-1", "--role", "supervisor", "--name", "Sue", "--password", PASSWORD)
    code, _, err = run_cli("users", "create", "sup-1", "--role", "supervisor", "--name", "Sue", "--password", PASSWORD)
    assert code == 1 and "already a user sup-1" in err
    code, _, err = run_cli("users", "disable", "nobody")
    assert code == 1 and "No user nobody" in err
    with pytest.raises(SystemExit):  # argparse: not a role
        run_cli("users", "set-role", "sup-1", "boss")


# --- the first admin --------------------------------------------------------------------------


def with_options(gateway, **options):
    """The gateway's settings with these options (GATEWAY_ADMIN_USER and _PASSWORD none unless given)."""
    options = {"GATEWAY_ADMIN_USER": "", "GATEWAY_ADMIN_PASSWORD": "", **options}
    return dataclasses.replace(gateway.extensions["settings"], options=options)


def test_first_admin_takes_the_password_from_the_environment(gateway):
    database = gateway.extensions["database"]
    out = io.StringIO()
    settings = with_options(gateway, GATEWAY_ADMIN_USER="chief", GATEWAY_ADMIN_PASSWORD="the chief's own password")

    assert users.ensure_first_admin(database, out, settings) == "chief"

    assert "the chief's own password" not in out.getvalue()
    assert "first admin: chief" in out.getvalue()
    assert users.get_user(database, "chief").role == "admin"
    assert sign_in(gateway, "chief", "the chief's own password") == 200


def test_first_admin_gets_a_generated_password_printed_only_once(gateway):
    database = gateway.extensions["database"]
    out = io.StringIO()

    assert users.ensure_first_admin(database, out, with_options(gateway)) == "admin"
    assert users.ensure_first_admin(database, out, with_options(gateway)) is None

    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    match = re.fullmatch(r"first admin: admin / (\S+) — change it.*", lines[0])
    assert match
    assert sign_in(gateway, "admin", match.group(1)) == 200


def test_first_admin_refuses_a_weak_password_from_the_environment(gateway):
    with pytest.raises(ValueError, match="GATEWAY_ADMIN_PASSWORD"):
        users.ensure_first_admin(
            gateway.extensions["database"], io.StringIO(), with_options(gateway, GATEWAY_ADMIN_PASSWORD="admin")
        )

    assert users.list_users(gateway.extensions["database"]) == []


def test_cli_ensure_admin_creates_the_first_admin_once(cli_database, monkeypatch):
    monkeypatch.delenv("GATEWAY_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("GATEWAY_ADMIN_USER", "boss")

    code, out, _ = run_cli("ensure-admin")
    again = run_cli("ensure-admin")

    assert code == 0 and out.startswith("first admin: boss / ")
    assert again == (0, "there are users already: no first admin created\n", "")
