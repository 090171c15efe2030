"""The live wall's routes through the Flask test client, in front of the real services: a waiting
call and the agents by state with their names (escaped), the board as an htmx fragment, and a
stopped call routing said in the alert."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.gateway.console.test_dashboard_routes import page_of
from tests.gateway.test_reports import phone_env, phone_event  # noqa: F401 - the webhook secrets, a signed event


def test_the_wall_shows_a_waiting_call_and_each_agent_by_state_with_their_name(stack):
    client, supervisor = stack.client, stack.bearer("sue", "supervisor")
    for agent_id, name in (("wall-ann", "Ann <b>Wall</b>"), ("wall-bob", "Bob Wall")):
        registered = client.post("/api/callrouting/agents", json={"id": agent_id, "name": name}, headers=supervisor)
        assert registered.status_code == 200, registered.get_json()
    on_break = client.put(
        "/api/callrouting/agents/wall-bob/state", json={"state": "on_break"}, headers=stack.bearer("wall-bob", "agent")
    )
    assert on_break.status_code == 200, on_break.get_json()
    # Nobody is available: the caller waits in the queue.
    queued = phone_event(client, "call.ringing", "WALL1", 0, datetime.now(UTC), **{"from": "+14155550142"})
    assert queued["action"] == "queue"

    answer = client.get("/wall", headers=supervisor)
    assert answer.status_code == 200
    page = page_of(answer)
    assert page.text("data-figure", "calls-waiting") == "Calls waiting 1"
    assert page.text("data-figure", "longest-wait").startswith("Longest wait 0:0")
    assert page.text("data-queue", "default").startswith("default 1 0:0")  # queue, waiting, longest wait
    offline, breaks = page.one("data-state", "offline"), page.one("data-state", "on_break")
    assert " ".join(" ".join(breaks["text"]).split()).startswith("On break 1 Bob Wall 0:0")
    assert "Ann <b>Wall</b>" in "".join(offline["text"])  # the name as text ...
    markup = answer.get_data(as_text=True)
    assert "Ann &lt;b&gt;Wall&lt;/b&gt;" in markup and "<b>Wall</b>" not in markup  # ... never as markup
    assert (
        page.one("id", "wall-board")["attrs"]["hx-trigger"] == "every 5s, agent-state from:body, live-ready from:body"
    )


def test_the_board_is_a_fragment_for_htmx_and_follows_a_state_change(stack):
    client, supervisor = stack.client, stack.bearer("sue", "supervisor")
    registered = client.post("/api/callrouting/agents", json={"id": "wall-cy", "name": "Cy"}, headers=supervisor)
    assert registered.status_code == 200, registered.get_json()
    htmx = {**supervisor, "HX-Request": "true"}
    before = client.get("/wall/board", headers=htmx)
    assert before.status_code == 200 and "<html" not in before.get_data(as_text=True)
    assert "Cy" in "".join(page_of(before).one("data-state", "offline")["text"])
    changed = client.put(
        "/api/callrouting/agents/wall-cy/state", json={"state": "available"}, headers=stack.bearer("wall-cy", "agent")
    )
    assert changed.status_code == 200
    after = page_of(client.get("/wall/board", headers=htmx))
    assert "Cy" in "".join(after.one("data-state", "available")["text"])
    assert "Cy" not in "".join(after.one("data-state", "offline")["text"])
    assert after.text("data-figure", "calls-waiting") == "Calls waiting 0"


def test_with_call_routing_stopped_the_wall_says_so_in_the_alert(stack):
    supervisor = stack.bearer("sue", "supervisor")
    stack.servers["callrouting"].stop()
    page = stack.client.get("/wall", headers=supervisor)
    assert page.status_code == 503 and "callrouting service is not answering" in page.get_data(as_text=True)
    board = stack.client.get("/wall/board", headers={**supervisor, "HX-Request": "true"})
    assert board.status_code == 503 and board.headers["HX-Retarget"] == "#flash"
    assert "callrouting service is not answering" in board.get_data(as_text=True)
