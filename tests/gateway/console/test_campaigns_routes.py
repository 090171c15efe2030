"""The campaigns screen's routes through Flask's test client (real services behind the gateway):
roles, what bad input answers, what the CSV import refuses before call routing sees it, escaping."""

from __future__ import annotations

import io

import pytest

from services.gateway.console.campaigns import MAX_IMPORT_BYTES, MAX_IMPORT_ROWS

pytestmark = pytest.mark.db

HTMX = {"HX-Request": "true"}


def form(**changes) -> dict:
    """A complete, valid campaign form (call routing's defaults), with ``changes``."""
    fields = {
        "name": "Thirty days after",
        "purpose": "post_purchase",
        "delay_days": "30",
        "contact_frequency_days": "30",
        "required_skill": "",
        "script": "Hello, this is the store.",
        "talking_point": "The care kit",
    }
    for day in ("mon", "tue", "wed", "thu", "fri"):
        fields[f"window_{day}_start"], fields[f"window_{day}_end"] = "09:00", "20:00"
    for outcome, delay, most in (("no_answer", 240, 3), ("busy", 30, 5), ("voicemail", 1440, 2)):
        fields[f"retry_{outcome}_delay"], fields[f"retry_{outcome}_max"] = str(delay), str(most)
    fields["retry_callback_requested_delay"], fields["retry_callback_requested_max"] = "0", "3"
    return {**fields, **changes}


def supervisor(stack) -> dict:
    return {**stack.bearer("camp-sup", "supervisor"), **HTMX}


def create(stack, **changes) -> str:
    answer = stack.client.post("/campaigns/new", data=form(**changes), headers=supervisor(stack))
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return answer.headers["HX-Redirect"].rsplit("/", 1)[1]


def test_an_agent_is_refused_every_campaign_screen_and_action(stack):
    agent = {**stack.bearer("camp-agent", "agent"), **HTMX}
    client = stack.client
    assert client.get("/campaigns", headers=agent).status_code == 403
    assert client.get("/campaigns/new", headers=agent).status_code == 403
    refused = client.post("/campaigns/new", data=form(), headers=agent)
    assert refused.status_code == 403 and refused.headers["HX-Retarget"] == "#flash"
    campaign_id = create(stack)
    assert client.post(f"/campaigns/{campaign_id}/pause", headers=agent).status_code == 403
    listed = stack.client.get("/api/callrouting/campaigns", headers=supervisor(stack)).get_json()["items"]
    assert [each["active"] for each in listed if each["id"] == campaign_id] == [True]


def test_a_form_the_console_cannot_read_is_a_422_alert_naming_each_field(stack):
    answer = stack.client.post(
        "/campaigns/new",
        data=form(delay_days="soon", window_mon_end="", retry_busy_max="0"),
        headers=supervisor(stack),
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 422 and answer.headers["HX-Retarget"] == "#flash"
    assert "delay_days" in text and "not a whole number" in text
    assert "calling_window.mon" in text and "both the start and the end" in text
    assert "retry_busy_max" in text and "between 1 and 100" in text
    assert stack.client.get("/api/callrouting/campaigns", headers=supervisor(stack)).get_json()["items"] == []


def test_what_call_routing_refuses_comes_back_as_its_field_errors(stack):
    answer = stack.client.post(
        "/campaigns/new", data=form(window_tue_start="25:00", name=""), headers=supervisor(stack)
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "calling_window" in text and "HH:MM" in text
    assert "name" in text


def test_pause_resume_and_edit_change_the_campaign_in_call_routing(stack):
    campaign_id = create(stack)
    client, headers = stack.client, supervisor(stack)
    paused = client.post(f"/campaigns/{campaign_id}/pause", headers=headers)
    assert paused.status_code == 200 and "Resume" in paused.get_data(as_text=True)
    assert client.get(f"/api/callrouting/campaigns/{campaign_id}", headers=headers).get_json()["active"] is False
    client.post(f"/campaigns/{campaign_id}/resume", headers=headers)
    edited = client.post(
        f"/campaigns/{campaign_id}",
        data=form(retry_no_answer_delay="90", window_sat_start="", window_sat_end=""),
        headers=headers,
    )
    assert edited.status_code == 200 and "Saved." in edited.get_data(as_text=True)
    stored = client.get(f"/api/callrouting/campaigns/{campaign_id}", headers=headers).get_json()
    assert stored["active"] is True
    assert stored["retry_policy"]["no_answer"] == {"delay_minutes": 90, "max_attempts": 3}
    assert "sat" not in stored["calling_window"]


def upload(stack, campaign_id: str, content: bytes, name: str = "entries.csv"):
    return stack.client.post(
        f"/campaigns/{campaign_id}/import",
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
        headers=supervisor(stack),
    )


def test_a_csv_without_a_customer_id_column_is_a_422_alert_and_imports_nothing(stack):
    campaign_id = create(stack)
    answer = upload(stack, campaign_id, b"customer,due_at\n8d0f7f0e-6a55-4d43-9a4c-6b1b8f4a7f3e,\n")
    assert answer.status_code == 422 and answer.headers["HX-Retarget"] == "#flash"
    assert "customer_id" in answer.get_data(as_text=True)
    entries = stack.client.get(f"/api/callrouting/campaigns/{campaign_id}/entries", headers=supervisor(stack))
    assert entries.get_json()["total"] == 0


def test_a_csv_too_large_or_not_utf8_or_missing_is_refused_with_a_4xx_alert(stack):
    campaign_id = create(stack)
    row = b"8d0f7f0e-6a55-4d43-9a4c-6b1b8f4a7f3e\n"
    too_many = upload(stack, campaign_id, b"customer_id\n" + row * (MAX_IMPORT_ROWS + 1))
    assert too_many.status_code == 413 and "split the file" in too_many.get_data(as_text=True)
    too_big = upload(stack, campaign_id, b"customer_id\n" + b"x" * (MAX_IMPORT_BYTES + 1))
    assert too_big.status_code == 413 and too_big.headers["HX-Retarget"] == "#flash"
    latin1 = upload(stack, campaign_id, "customer_id,note\nMüller\n".encode("latin-1"))
    assert latin1.status_code == 422 and "UTF-8" in latin1.get_data(as_text=True)
    nothing = stack.client.post(f"/campaigns/{campaign_id}/import", data={}, headers=supervisor(stack))
    assert nothing.status_code == 422 and "Choose a CSV file" in nothing.get_data(as_text=True)


def test_a_campaign_name_is_shown_as_text_never_as_markup(stack):
    create(stack, name="<script>alert(1)</script>")
    page = stack.client.get("/campaigns", headers=stack.bearer("camp-sup", "supervisor")).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_unknown_campaign_is_a_404_page_not_a_500(stack):
    answer = stack.client.get(
        "/campaigns/6a1f3c0e-0000-4000-8000-000000000000", headers=stack.bearer("camp-sup", "supervisor")
    )
    assert answer.status_code == 404
