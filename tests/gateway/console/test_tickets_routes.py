"""The tickets screen's routes through the Flask test client, in front of the real services: the
list asks the tickets API with the filters of its URL, a refused filter or change is an alert
naming the field (with the service's 4xx), an unknown ticket is a 404 page, and what a user typed
is text in the page, never markup."""

from __future__ import annotations

import pytest

from tests.gateway.console.test_dashboard_routes import page_of

pytestmark = pytest.mark.db

AGENT = "tickets-agent"
XSS_SUBJECT = "<script>alert(1)</script>"


def open_ticket(stack, user=AGENT, role="agent", **fields) -> dict:
    body = {"subject": "Kettle leaks", "category": "quality_issue", **fields}
    answer = stack.client.post("/api/tickets/tickets", json=body, headers=stack.bearer(user, role))
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return answer.get_json()


def alert_text(answer) -> str:
    """The whole text of the page's alert: the problem's title, detail and field errors."""
    return page_of(answer).text("class", "alert alert-warn")


def listed_ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [row["attrs"]["data-ticket-id"] for row in page_of(answer).all("data-ticket-id")]


def api_ids(stack, **query) -> list[str]:
    answer = stack.client.get("/api/tickets/tickets", query_string=query, headers=stack.bearer(AGENT))
    assert answer.status_code == 200, answer.get_json()
    return [item["id"] for item in answer.get_json()["items"]]


def test_each_queue_and_filter_lists_what_the_tickets_api_gives_for_the_same_filters(stack):
    mine = open_ticket(stack, assignee_id=AGENT, priority="high")
    mine_urgent = open_ticket(stack, assignee_id=AGENT, priority="urgent", subject="Urgent kettle")
    others = open_ticket(stack, assignee_id="someone-else", category="refund")
    unassigned = open_ticket(stack, category="refund", subject="Refund please")
    done = open_ticket(stack, assignee_id=AGENT)
    stack.client.patch(f"/api/tickets/tickets/{done['id']}", json={"status": "resolved"}, headers=stack.bearer(AGENT))
    headers = stack.bearer(AGENT)

    def shown(**query):
        return listed_ids(stack.client.get("/tickets", query_string=query, headers=headers))

    # my open tickets, soonest resolution due first (the urgent one: 4 h against 24 h)
    assert (
        shown()
        == [mine_urgent["id"], mine["id"]]
        == api_ids(stack, assignee=AGENT, status="new,open,pending", sort="due")
    )
    # a supervisor starts on every open ticket, soonest due first
    supervisor = stack.client.get("/tickets", headers=stack.bearer("tickets-supervisor", "supervisor"))
    assert listed_ids(supervisor) == api_ids(stack, status="new,open,pending", sort="due")
    assert len(listed_ids(supervisor)) == 4
    assert shown(queue="mine", status="resolved") == [done["id"]]
    assert shown(queue="mine", priority="urgent") == [mine_urgent["id"]]
    assert shown(queue="unassigned") == [unassigned["id"]]
    assert shown(queue="open", category="refund", sort="-created_at") == [unassigned["id"], others["id"]]
    assert shown(queue="open", assignee="someone-else") == [others["id"]]
    assert shown(queue="all", q="kettle", sort="created_at") == api_ids(stack, q="kettle", sort="created_at")
    # due within two hours: only the urgent one (its first response is due in one hour)
    assert shown(queue="open", sla="due_soon") == [mine_urgent["id"]]
    assert shown(queue="open", sla="breached") == []
    # paged as the API pages, with links that keep the filters
    first = page_of(stack.client.get("/tickets", query_string={"queue": "all", "per_page": 2}, headers=headers))
    assert first.text("class", "muted results-count") == "5 tickets · page 1 of 3"
    next_link = next(a for a in first.all("href") if "".join(a["text"]).strip() == "Next page")
    assert next_link["attrs"]["href"] == "/tickets?queue=all&sort=-created_at&page=2&per_page=2"
    # htmx asks for the results alone
    fragment = stack.client.get(
        "/tickets?queue=all", headers={**headers, "HX-Request": "true", "HX-Target": "ticket-results"}
    )
    markup = fragment.get_data(as_text=True)
    assert "<html" not in markup and 'id="f-queue"' not in markup
    assert listed_ids(fragment) == api_ids(stack)


def test_a_refused_filter_is_an_alert_naming_the_field_with_the_services_status(stack):
    headers = stack.bearer(AGENT)
    answer = stack.client.get("/tickets?queue=all&status=lost&priority=soon", headers=headers)
    assert answer.status_code == 422
    alert = page_of(answer).one("class", "alert alert-warn")
    assert alert["attrs"]["data-status"] == "422"
    assert "status.0 : Must be one of: new, open" in alert_text(answer)  # each field with its own message
    assert "priority.0 : Must be one of: low, normal" in alert_text(answer)
    # through htmx: the same alert, into the page's #flash
    htmx = stack.client.get("/tickets?queue=nowhere", headers={**headers, "HX-Request": "true"})
    assert htmx.status_code == 422 and htmx.headers["HX-Retarget"] == "#flash"
    assert "queue" in alert_text(htmx) and "One of: mine, unassigned, open, all." in alert_text(htmx)


def test_changes_and_comments_are_checked_by_the_service_and_shown_in_the_history(stack):
    ticket = open_ticket(stack)
    headers = {**stack.bearer(AGENT), "HX-Request": "true"}
    bad = stack.client.post(f"/tickets/{ticket['id']}", data={"status": "lost"}, headers=headers)
    assert bad.status_code == 422 and bad.headers["HX-Retarget"] == "#flash"
    assert "status" in alert_text(bad) and "Must be one of: new, open" in alert_text(bad)
    illegal = stack.client.post(f"/tickets/{ticket['id']}", data={"status": "closed"}, headers=headers)
    assert illegal.status_code == 409  # new -> closed is not a move the service allows
    empty = stack.client.post(
        f"/tickets/{ticket['id']}/comments", data={"body": "", "visibility": "public"}, headers=headers
    )
    assert empty.status_code == 422 and "invalid field(s): body" in alert_text(empty)

    changed = stack.client.post(
        f"/tickets/{ticket['id']}", data={"status": "open", "priority": "normal", "assignee_id": "me"}, headers=headers
    )
    assert changed.status_code == 200
    detail = page_of(changed)
    assert detail.text("role", "status").startswith("Saved: Status, Assignee.")  # priority was already normal
    now = stack.client.get(f"/api/tickets/tickets/{ticket['id']}", headers=stack.bearer(AGENT)).get_json()
    assert (now["status"], now["assignee_id"]) == ("open", AGENT)
    fields = [item["attrs"]["data-field"] for item in detail.all("data-field") if item["tag"] == "li"]
    # newest first: the two changes of this PATCH (one row per field), then the creation
    assert sorted(fields[:2]) == ["assignee_id", "status"] and fields[2:] == ["created"]


def test_unknown_tickets_are_404_pages_and_subjects_are_text(stack):
    headers = stack.bearer(AGENT)
    missing = stack.client.get("/tickets/no-such-ticket", headers=headers)
    assert missing.status_code == 404 and "No ticket no-such-ticket." in missing.get_data(as_text=True)
    assert stack.client.post("/tickets/no-such-ticket", data={"status": "open"}, headers=headers).status_code == 404

    customer = stack.client.post("/api/tickets/customers", json={"name": "<b>Bold</b> Customer"}, headers=headers)
    assert customer.status_code == 201, customer.get_data(as_text=True)
    ticket = open_ticket(
        stack,
        subject=XSS_SUBJECT,
        description='<img src=x onerror="alert(2)">',
        assignee_id=AGENT,
        customer_id=customer.get_json()["id"],
    )
    for url in ("/tickets", f"/tickets/{ticket['id']}"):
        markup = stack.client.get(url, headers=headers).get_data(as_text=True)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup and XSS_SUBJECT not in markup
    ticket_page = page_of(stack.client.get(f"/tickets/{ticket['id']}", headers=headers))
    assert ticket_page.text("class", "pre ticket-description") == '<img src=x onerror="alert(2)">'
    # the Linked card and the customer side panel ("Customer page") both lead to the customer
    links = ticket_page.all("href", f"/customers/{customer.get_json()['id']}/timeline")
    assert ["".join(link["text"]) for link in links] == ["Customer page", "<b>Bold</b> Customer"]  # the name, as text
    assert ticket_page.text("class", "customer-name") == "<b>Bold</b> Customer"


def test_a_new_ticket_is_prefilled_from_the_link_and_its_errors_are_named(stack):
    headers = stack.bearer(AGENT)
    form = page_of(
        stack.client.get(
            "/tickets/new?subject=Lid+leaks&category=complaint&call_id=CA123&customer_id=", headers=headers
        )
    )
    assert form.one("id", "n-subject")["attrs"]["value"] == "Lid leaks"
    assert form.one("id", "n-call")["attrs"]["value"] == "CA123"
    assert form.one("value", "complaint")["attrs"].keys() >= {"selected"}
    assert form.one("value", "phone")["attrs"].keys() >= {"selected"}  # a call's ticket came by phone

    bad = stack.client.post(
        "/tickets/new", data={"subject": "", "category": "moods", "customer_id": "nobody"}, headers=headers
    )
    assert bad.status_code == 422
    assert "invalid field(s): category, customer_id, subject" in alert_text(bad)

    made = stack.client.post(
        "/tickets/new",
        data={"subject": "Lid leaks", "category": "complaint", "assignee_id": "me", "idempotency_key": "k-1"},
        headers=headers,
    )
    assert made.status_code == 303
    ticket_id = made.headers["Location"].rsplit("/", 1)[1]
    # the same form again (a double submit: the same idempotency key) opens nothing new; htmx is sent on
    again = stack.client.post(
        "/tickets/new",
        data={"subject": "Lid leaks", "category": "complaint", "assignee_id": "me", "idempotency_key": "k-1"},
        headers={**headers, "HX-Request": "true"},
    )
    assert again.status_code == 201 and again.headers["HX-Redirect"] == f"/tickets/{ticket_id}"
    created = stack.client.get(f"/api/tickets/tickets/{ticket_id}", headers=headers).get_json()
    assert (created["subject"], created["assignee_id"], created["created_by"]) == ("Lid leaks", AGENT, AGENT)
