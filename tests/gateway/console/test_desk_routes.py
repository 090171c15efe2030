"""The desk's routes through Flask's test client (real services behind the gateway): bad input is a
422 alert naming the fields, an agent cannot act on another agent's entry or call, and a caller's
name is rendered as text in the screen-pop. The helpers set up what the desk works on (agents,
customers, a due follow-up, a call in wrap-up) through the gateway's API; the browser stories
(test_desk.py) use them too."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from services.gateway.console.desk import SURVEY_TEMPLATE_ID
from shared.webhooks import sign_json
from tests.gateway.conftest import PHONE_WEBHOOK_SECRET
from tests.support.services import wait_for

PASSWORD = "correct horse battery staple"
ALWAYS = {day: ["00:00", "24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
SCRIPT = "Hello, this is the kettle team: how is your new kettle?"
TALKING_POINT = "Descaler 3-pack at 20% off with this call."
HTMX = {"HX-Request": "true"}


# --- set-up through the gateway's API (shared with test_desk.py) ---------------------------------


def admin(stack) -> dict:
    return stack.bearer("desk-admin", "admin")


def supervisor(stack) -> dict:
    return stack.bearer("desk-sup", "supervisor")


def register_agent(stack, agent_id: str) -> dict:
    """A user created by the admin API (so call routing knows the agent); their bearer headers."""
    created = stack.client.post(
        "/users",
        json={"id": agent_id, "name": agent_id.title(), "role": "agent", "password": PASSWORD},
        headers=admin(stack),
    )
    assert created.status_code in (201, 409), created.get_json()
    return stack.bearer(agent_id, "agent")


def api(stack, method: str, path: str, headers: dict, body=None, expect=(200, 201)):
    answer = stack.client.open(path, method=method, json=body, headers=headers)
    assert answer.status_code in expect, (method, path, answer.status_code, answer.get_data(as_text=True))
    return answer.get_json()


def make_customer(stack, name: str, phone: str | None = None) -> str:
    """A customer in the directory (tickets), once call routing's replica has them too."""
    body = {"name": name, "phone": phone or f"+1415555{uuid.uuid4().int % 10**4:04d}"}
    customer = api(stack, "POST", "/api/tickets/customers", supervisor(stack), body)

    def replicated():
        known = stack.client.get(f"/api/callrouting/customers/{customer['id']}", headers=supervisor(stack))
        return known.status_code == 200

    wait_for(replicated, what="the customer in call routing's replica")
    return customer["id"]


def due_follow_up(stack, customer_id: str) -> tuple[dict, dict]:
    """A campaign callable at any hour and one entry of the customer on it, due a minute ago."""
    campaign = api(
        stack,
        "POST",
        "/api/callrouting/campaigns",
        supervisor(stack),
        {
            "name": f"Kettle follow-up {uuid.uuid4().hex[:6]}",
            "calling_window": ALWAYS,
            "script": SCRIPT,
            "talking_point": TALKING_POINT,
            "contact_frequency_days": 0,
        },
    )
    due = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    entry = api(
        stack,
        "POST",
        f"/api/callrouting/campaigns/{campaign['id']}/entries",
        supervisor(stack),
        {"customer_id": customer_id, "due_at": due},
    )
    return campaign, entry


def make_available(stack, agent_id: str, headers: dict) -> None:
    api(stack, "PUT", f"/api/callrouting/agents/{agent_id}/state", headers, {"state": "available"})


def phone_event(stack, event: str, call_id: str, sequence: int, **fields) -> dict:
    """The phone system's signed JSON webhook, through the gateway as a PBX adapter sends it."""
    body = {
        "event": event,
        "call_id": call_id,
        "sequence": sequence,
        "timestamp": datetime.now(UTC).isoformat(),
        **fields,
    }
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Signature": sign_json(PHONE_WEBHOOK_SECRET, raw)}
    answer = stack.client.post("/webhooks/events", data=raw, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def call_in_wrap_up(stack, agent_id: str, caller: str) -> str:
    """A call from ``caller`` routed to ``agent_id`` (the only agent available), answered and ended."""
    call_id = f"pbx-{uuid.uuid4().hex[:12]}"
    routed = phone_event(stack, "call.ringing", call_id, 0, **{"from": caller, "to": "+14155550199"})
    assert routed["offers"][0]["agent_id"] == agent_id, routed
    phone_event(stack, "call.answered", call_id, 1, agent_id=agent_id)
    phone_event(stack, "call.ended", call_id, 2, agent_id=agent_id)
    return call_id


def alert_of(answer) -> str:
    text = answer.get_data(as_text=True)
    assert 'class="alert' in text, text
    return text


# --- validation ------------------------------------------------------------------------------------


def test_a_bad_wrap_up_is_a_422_alert_naming_each_field_and_changes_nothing(stack):
    agent = register_agent(stack, "wrap-ann")
    make_available(stack, "wrap-ann", agent)
    call_id = call_in_wrap_up(stack, "wrap-ann", "+14155550142")

    bad = stack.client.post(
        f"/desk/calls/{call_id}/wrap-up",
        data={"reason": "because", "notes": "x", "open_ticket": "on", "subject": "  ", "priority": "whenever"},
        headers={**agent, **HTMX},
    )

    assert bad.status_code == 422
    assert bad.headers["HX-Retarget"] == "#flash"
    text = alert_of(bad)
    for field in ("reason", "subject", "priority"):
        assert f"<code>{field}</code>" in text
    call = api(stack, "GET", f"/api/callrouting/calls/{call_id}", supervisor(stack))
    assert call["state"] == "wrap_up" and call["reason"] is None
    tickets = api(stack, "GET", "/api/tickets/tickets", supervisor(stack))
    assert tickets["total"] == 0


def test_a_bad_outcome_or_state_is_a_422_naming_it_and_a_bad_score_is_refused_by_surveys_by_question(stack):
    agent = register_agent(stack, "val-ann")
    customer_id = make_customer(stack, "Vera Valid")
    _campaign, entry = due_follow_up(stack, customer_id)

    state = stack.client.post("/desk/state", data={"state": "on_call"}, headers={**agent, **HTMX})
    assert state.status_code == 422 and "<code>state</code>" in alert_of(state)
    handed = stack.client.post("/desk/next-call", headers={**agent, **HTMX})
    assert handed.status_code == 200 and entry["id"] in handed.get_data(as_text=True)
    outcome = stack.client.post(
        f"/desk/entries/{entry['id']}/outcome", data={"outcome": "maybe"}, headers={**agent, **HTMX}
    )
    assert outcome.status_code == 422 and "<code>outcome</code>" in alert_of(outcome)
    callback = stack.client.post(
        f"/desk/entries/{entry['id']}/outcome",
        data={"outcome": "callback_requested", "callback_at": "tomorrow-ish"},
        headers={**agent, **HTMX},
    )
    assert callback.status_code == 422 and "<code>callback_at</code>" in alert_of(callback)
    reached = stack.client.post(
        f"/desk/entries/{entry['id']}/outcome", data={"outcome": "reached"}, headers={**agent, **HTMX}
    )
    assert reached.status_code == 200 and 'name="answer-recommend_store"' in reached.get_data(as_text=True)

    scores = {"answer-product": "11", "answer-service": "8", "answer-purchase": "ten", "answer-recommend_product": "9"}
    survey = stack.client.post(
        "/desk/surveys",
        data={"entry_id": entry["id"], "template_id": SURVEY_TEMPLATE_ID, **scores},
        headers={**agent, **HTMX},
    )

    assert survey.status_code == 422
    text = alert_of(survey)
    for question in ("product", "purchase", "recommend_store"):  # out of range, not a number, missing
        assert f"answers.{question}" in text
    assert api(stack, "GET", f"/api/surveys/responses?customer_id={customer_id}", supervisor(stack))["items"] == []


# --- one agent, not another ---------------------------------------------------------------------------


def test_an_agent_cannot_record_an_outcome_or_survey_on_another_agents_entry(stack):
    ann, bob = register_agent(stack, "own-ann"), register_agent(stack, "own-bob")
    customer_id = make_customer(stack, "Olga Owned")
    _campaign, entry = due_follow_up(stack, customer_id)
    assert stack.client.post("/desk/next-call", headers={**ann, **HTMX}).status_code == 200

    taken = stack.client.post(
        f"/desk/entries/{entry['id']}/outcome", data={"outcome": "reached"}, headers={**bob, **HTMX}
    )
    assert taken.status_code == 409 and "does not hold this entry" in alert_of(taken)
    assert api(stack, "GET", f"/api/callrouting/entries/{entry['id']}", supervisor(stack))["leased_by"] == "own-ann"

    reached = stack.client.post(
        f"/desk/entries/{entry['id']}/outcome", data={"outcome": "reached"}, headers={**ann, **HTMX}
    )
    assert reached.status_code == 200
    answers = {
        f"answer-{key}": "9" for key in ("product", "service", "purchase", "recommend_product", "recommend_store")
    }
    survey = stack.client.post("/desk/surveys", data={"entry_id": entry["id"], **answers}, headers={**bob, **HTMX})
    assert survey.status_code == 403 and "did not reach the customer" in alert_of(survey)
    assert api(stack, "GET", f"/api/surveys/responses?customer_id={customer_id}", supervisor(stack))["items"] == []


def test_an_agent_cannot_open_or_finish_another_agents_wrap_up_and_no_ticket_is_opened(stack):
    ann, bob = register_agent(stack, "call-ann"), register_agent(stack, "call-bob")
    make_available(stack, "call-ann", ann)
    call_id = call_in_wrap_up(stack, "call-ann", "+14155550177")

    form = stack.client.get(f"/desk/calls/{call_id}/wrap-up", headers=bob)
    assert form.status_code == 403 and "only their own calls" in form.get_data(as_text=True)
    finish = stack.client.post(
        f"/desk/calls/{call_id}/wrap-up",
        data={"reason": "question", "open_ticket": "on", "subject": "Not mine", "priority": "normal"},
        headers={**bob, **HTMX},
    )
    assert finish.status_code == 403 and "only their own calls" in alert_of(finish)
    assert api(stack, "GET", f"/api/callrouting/calls/{call_id}", supervisor(stack))["state"] == "wrap_up"
    assert api(stack, "GET", "/api/tickets/tickets", supervisor(stack))["total"] == 0
    own = stack.client.get(f"/desk/calls/{call_id}/wrap-up", headers=ann)
    assert own.status_code == 200 and 'name="reason"' in own.get_data(as_text=True)


# --- escaping ------------------------------------------------------------------------------------------


def test_a_callers_name_holding_markup_is_rendered_as_text_in_the_screen_pop(stack):
    agent = register_agent(stack, "pop-ann")
    customer_id = make_customer(stack, '<script>alert("pwned")</script> Mallory', "+14155550166")

    pop = stack.client.get(
        f"/desk/pop?call_id=CA-pop-1&customer_id={customer_id}&from_number=%2B14155550166&queue=default",
        headers={**agent, **HTMX},
    )

    text = pop.get_data(as_text=True)
    assert pop.status_code == 200 and "Incoming call" in text
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; Mallory" in text
    assert f'href="/customers/{customer_id}/timeline"' in text and 'class="dismiss"' in text
    assert 'href="/desk/calls/CA-pop-1/wrap-up"' in text
    assert "Content-Security-Policy" in pop.headers


def test_a_pop_for_a_caller_nobody_knows_says_so_with_the_number_and_a_pop_without_a_call_is_a_422(stack):
    agent = register_agent(stack, "pop-bob")
    unknown = stack.client.get(
        f"/desk/pop?call_id=CA-pop-2&customer_id={uuid.uuid4()}&from_number=%2B14155550999", headers={**agent, **HTMX}
    )
    text = unknown.get_data(as_text=True)
    assert unknown.status_code == 200 and "Unknown caller" in text and "+14155550999" in text
    missing = stack.client.get("/desk/pop?from_number=%2B14155550999", headers={**agent, **HTMX})
    assert missing.status_code == 422 and "<code>call_id</code>" in alert_of(missing)
