"""Tickets over HTTP and through the service layer: creation with SLA due times, the state
machine, comments and first response, history, listing, SLA pauses and breaches, the
daily report; bad input named in a 422, illegal moves answered 409."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.tickets import breaches, domain, ticket_cases
from services.tickets.app import create_app
from services.tickets.models import Ticket, TicketChange
from shared.unit_of_work import UnitOfWork
from tests.support.auth import signed_as, signed_client
from tests.tickets.support import AGENT, count, events, fields_named

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {
    "time_zone": "Europe/Berlin",
    "hours": {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": ["2026-12-24", "2026-12-25"],
}


def open_ticket(client, headers=AGENT, **fields):
    body = {"subject": "Kettle leaks", "description": "Water everywhere", "category": "quality_issue", **fields}
    response = client.post("/tickets", json=body, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def move(client, ticket, status, headers=AGENT):
    return client.patch(f"/tickets/{ticket['id']}", json={"status": status}, headers=headers)


def customer(client, name="Ada"):
    return client.post("/customers", json={"name": name}).json


def test_a_ticket_gets_a_number_due_times_from_its_policy_and_is_announced(client, database):
    ada = customer(client)
    first = open_ticket(client, priority="urgent", customer_id=ada["id"], tags=["leak", "kettle", "leak"])
    second = open_ticket(client)
    assert (first["number"], second["number"]) == (1, 2)
    assert (first["status"], first["channel"], first["tags"]) == ("new", "web", ["kettle", "leak"])
    created = datetime.fromisoformat(first["created_at"])
    # urgent runs around the clock by default: 1 h to first response, 4 h to resolution
    assert datetime.fromisoformat(first["first_response_due_at"]) == created + timedelta(hours=1)
    assert datetime.fromisoformat(first["resolution_due_at"]) == created + timedelta(hours=4)
    announced = events(database, "ticket.created")[0]["data"]
    assert announced["ticket_id"] == first["id"] and announced["number"] == 1
    assert announced["customer_id"] == ada["id"] and announced["priority"] == "urgent"
    assert announced["status"] == "new" and announced["survey_response_id"] is None
    history = client.get(f"/tickets/{first['id']}/history").json["items"]
    assert [(h["field"], h["new"], h["actor_id"]) for h in history] == [("created", 1, "agent-7")]
    assert client.get(f"/tickets/{first['id']}").json == first


def test_every_invalid_ticket_field_is_named_and_nothing_is_stored(client, database):
    response = client.post(
        "/tickets",
        json={
            "subject": "",
            "category": "rant",
            "priority": "asap",
            "channel": "pigeon",
            "customer_id": "not-a-uuid",
            "tags": [""],
            "survey_response_id": 7,
        },
    )
    assert fields_named(response) == {
        "subject",
        "category",
        "priority",
        "channel",
        "customer_id",
        "tags.0",
        "survey_response_id",
    }
    unknown = client.post(
        "/tickets",
        json={"subject": "X", "category": "question", "customer_id": "0b7c9a6e-0000-4000-8000-000000000000"},
    )
    assert fields_named(unknown) == {"customer_id"}
    assert count(database, Ticket) == count(database, TicketChange) == 0
    assert events(database) == []
    assert client.get("/tickets/nope").status_code == 404


def test_the_status_machine_and_the_events_it_announces(client, database):
    ticket = open_ticket(client, assignee_id="agent-7")
    for status in ("open", "pending", "open", "resolved"):
        response = move(client, ticket, status)
        assert response.status_code == 200, response.json
        assert response.json["status"] == status
    changes = [(e["data"]["old_status"], e["data"]["new_status"]) for e in events(database, "ticket.status_changed")]
    assert changes == [("new", "open"), ("open", "pending"), ("pending", "open"), ("open", "resolved")]
    (resolved,) = events(database, "ticket.resolved")
    assert resolved["data"]["within_sla"] is True
    assert resolved["data"]["assignee_id"] == "agent-7"
    assert move(client, ticket, "open").status_code == 200  # reopen
    assert client.get(f"/tickets/{ticket['id']}").json["resolved_at"] is None
    assert move(client, ticket, "resolved").status_code == 200
    assert len(events(database, "ticket.resolved")) == 2, "resolved again after a reopen"
    assert move(client, ticket, "closed").status_code == 200

    before = len(events(database))
    refused = move(client, ticket, "open")
    assert refused.status_code == 409
    assert "closed" in refused.json["detail"]
    assert client.patch(f"/tickets/{ticket['id']}", json={"subject": "Edited"}).status_code == 409
    assert len(events(database)) == before
    fresh = open_ticket(client)
    assert move(client, fresh, "closed").status_code == 409
    assert fields_named(move(client, fresh, "done")) == {"status"}


def test_field_changes_are_kept_in_the_history_and_announced(client, database):
    ticket = open_ticket(client)
    response = client.patch(
        f"/tickets/{ticket['id']}",
        json={"assignee_id": "agent-9", "group": "returns", "status": "open", "tags": ["vip"]},
        headers=signed_as("supervisor-1", "supervisor"),
    )
    assert response.status_code == 200
    (updated,) = events(database, "ticket.updated")
    assert updated["data"]["actor_id"] == "supervisor-1"
    assert updated["data"]["changes"] == {
        "assignee_id": {"old": None, "new": "agent-9"},
        "group": {"old": None, "new": "returns"},
        "tags": {"old": [], "new": ["vip"]},
    }
    history = client.get(f"/tickets/{ticket['id']}/history").json["items"]
    assert [(h["field"], h["old"], h["new"], h["actor_id"]) for h in history[1:]] == [
        ("assignee_id", None, "agent-9", "supervisor-1"),
        ("group", None, "returns", "supervisor-1"),
        ("tags", [], ["vip"], "supervisor-1"),
        ("status", "new", "open", "supervisor-1"),
    ]


def test_a_new_priority_brings_the_due_times_of_its_policy(client, database):
    ticket = open_ticket(client, priority="urgent")
    created = datetime.fromisoformat(ticket["created_at"])
    client.put("/sla-policies/low", json={"first_response_minutes": 600, "resolution_minutes": 6000})
    changed = client.patch(f"/tickets/{ticket['id']}", json={"priority": "low"}).json
    assert datetime.fromisoformat(changed["first_response_due_at"]) == created + timedelta(minutes=600)
    assert events(database, "ticket.updated")[0]["data"]["changes"]["priority"] == {"old": "urgent", "new": "low"}


def test_a_policy_or_calendar_changed_by_another_worker_applies_to_the_next_ticket(app, client):
    # Each process caches the SLA configuration; a second app on the same database stands for
    # another gunicorn worker, whose changes must be seen from their commit on.
    worker_b = signed_client(create_app(app.extensions["settings"]))
    before = open_ticket(client, priority="high")  # worker A has now cached the seeded policies
    created = datetime.fromisoformat(before["created_at"])
    assert datetime.fromisoformat(before["first_response_due_at"]) == created + timedelta(hours=4)

    quick = {"first_response_minutes": 30, "resolution_minutes": 90}
    assert worker_b.put("/sla-policies/high", json={**quick, "business_hours": False}).status_code == 200
    after = open_ticket(client, priority="high")
    created = datetime.fromisoformat(after["created_at"])
    assert datetime.fromisoformat(after["first_response_due_at"]) == created + timedelta(minutes=30)
    assert datetime.fromisoformat(after["resolution_due_at"]) == created + timedelta(minutes=90)

    assert worker_b.put("/sla-policies/high", json={**quick, "business_hours": True}).status_code == 200
    assert worker_b.put("/business-calendar", json={**OFFICE, "holidays": []}).status_code == 200
    on_the_calendar = open_ticket(client, priority="high")
    opened = datetime.fromisoformat(on_the_calendar["created_at"])
    expected = domain.add_business_time(
        domain.BusinessCalendar.from_json(OFFICE["time_zone"], OFFICE["hours"], []),
        opened,
        timedelta(minutes=30),
    )
    assert datetime.fromisoformat(on_the_calendar["first_response_due_at"]) == expected

    assert worker_b.delete("/business-calendar").status_code == 204
    wall_clock = open_ticket(client, priority="high")
    created = datetime.fromisoformat(wall_clock["created_at"])
    assert datetime.fromisoformat(wall_clock["first_response_due_at"]) == created + timedelta(minutes=30)


def test_only_an_agents_first_public_reply_is_the_first_response(client):
    ticket = open_ticket(client)
    note = client.post(f"/tickets/{ticket['id']}/comments", json={"body": "Checking stock"}, headers=AGENT)
    assert note.status_code == 201 and note.json["public"] is False
    assert client.get(f"/tickets/{ticket['id']}").json["first_responded_at"] is None
    customer_words = {"body": "Any news?", "public": True, "from_customer": True}
    client.post(f"/tickets/{ticket['id']}/comments", json=customer_words, headers=AGENT)
    assert client.get(f"/tickets/{ticket['id']}").json["first_responded_at"] is None
    reply = client.post(f"/tickets/{ticket['id']}/comments", json={"body": "On its way", "public": True}, headers=AGENT)
    first_response = client.get(f"/tickets/{ticket['id']}").json["first_responded_at"]
    assert first_response == reply.json["created_at"]
    client.post(f"/tickets/{ticket['id']}/comments", json={"body": "Shipped", "public": True}, headers=AGENT)
    assert client.get(f"/tickets/{ticket['id']}").json["first_responded_at"] == first_response
    comments = client.get(f"/tickets/{ticket['id']}/comments").json["items"]
    assert [(c["body"], c["public"], c["author_id"]) for c in comments] == [
        ("Checking stock", False, "agent-7"),
        ("Any news?", True, "agent-7"),
        ("On its way", True, "agent-7"),
        ("Shipped", True, "agent-7"),
    ]
    history = client.get(f"/tickets/{ticket['id']}/history").json["items"]
    fields = [h["field"] for h in history]
    assert fields == ["created", "internal_note", "public_reply", "public_reply", "first_responded_at", "public_reply"]
    assert history[1]["new"] == note.json["id"] and history[3]["new"] == reply.json["id"]
    assert fields_named(client.post(f"/tickets/{ticket['id']}/comments", json={"body": ""})) == {"body"}


def test_a_retried_ticket_post_with_the_same_idempotency_key_opens_one_ticket(client, database):
    body = {"subject": "Refund please", "category": "refund"}
    headers = {**AGENT, "Idempotency-Key": "ticket-form-1"}
    first = client.post("/tickets", json=body, headers=headers)
    second = client.post("/tickets", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json["id"] == first.json["id"]
    assert count(database, Ticket) == 1
    assert len(events(database, "ticket.created")) == 1


def test_listing_filters_sorts_and_pages_with_a_total(client):
    ada, bob = customer(client, "Ada"), customer(client, "Bob")
    specs = [
        ("Leaking kettle", "quality_issue", "high", "agent-1", ada),
        ("Refund for toaster", "refund", "normal", "agent-1", ada),
        ("Replacement lid", "replacement", "urgent", "agent-2", bob),
        ("How to descale", "question", "low", None, bob),
        ("Kettle switch broken", "complaint", "normal", "agent-2", None),
    ]
    made = [
        open_ticket(client, subject=s, category=c, priority=p, assignee_id=a, customer_id=cu and cu["id"])
        for s, c, p, a, cu in specs
    ]
    move(client, made[0], "open")
    move(client, made[2], "open")

    def numbers(**query):
        response = client.get("/tickets", query_string=query)
        assert response.status_code == 200, response.json
        assert response.headers["X-Total-Count"] == str(response.json["total"])
        return [item["number"] for item in response.json["items"]]

    assert numbers() == [5, 4, 3, 2, 1]
    assert numbers(sort="created_at") == [1, 2, 3, 4, 5]
    assert numbers(status="open") == [3, 1]
    assert numbers(status="new,open", assignee="agent-2") == [5, 3]
    assert numbers(customer=ada["id"]) == [2, 1]
    assert numbers(category="refund,replacement") == [3, 2]
    assert numbers(priority="normal") == [5, 2]
    assert numbers(q="KETTLE") == [5, 1]
    assert numbers(q="water") == [5, 4, 3, 2, 1]  # the description
    assert numbers(sort="priority")[:2] == [3, 1]
    assert numbers(breached="false") == [5, 4, 3, 2, 1]
    assert numbers(breached="true") == []
    assert numbers(unassigned="true") == [4]
    assert numbers(unassigned="false", status="new") == [5, 2]
    # the urgent one (open: 1 h to first response) is due within two hours; the others are not
    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert numbers(due_before=soon) == [3]
    created = datetime.fromisoformat(made[2]["created_at"])
    assert numbers(created_from=created.isoformat(), sort="created_at") == [3, 4, 5]
    assert numbers(created_to=created.isoformat(), sort="created_at") == [1, 2]
    page = client.get("/tickets", query_string={"limit": 2, "offset": 2}).json
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert [item["number"] for item in page["items"]] == [3, 2]
    past_the_end = client.get("/tickets", query_string={"limit": 2, "offset": 10}).json
    assert (past_the_end["total"], past_the_end["items"]) == (5, []), "an honest total past the last page"
    bad = client.get("/tickets", query_string={"status": "lost", "sort": "mood", "created_from": "soon", "limit": 0})
    assert fields_named(bad) == {"status.0", "sort", "created_from", "limit"}
    assert fields_named(client.get("/tickets", query_string={"limit": 501})) == {"limit"}, "no silent clamp"


def test_sla_policies_and_the_business_calendar_are_configurable(client):
    policies = client.get("/sla-policies").json["items"]
    assert [p["priority"] for p in policies] == ["low", "normal", "high", "urgent"]
    assert {p["priority"]: p["first_response_minutes"] for p in policies}["urgent"] == 60
    updated = client.put("/sla-policies/high", json={"first_response_minutes": 120, "resolution_minutes": 480})
    assert updated.json == {
        "priority": "high",
        "first_response_minutes": 120,
        "resolution_minutes": 480,
        "business_hours": True,
    }
    assert (
        client.put("/sla-policies/whenever", json={"first_response_minutes": 1, "resolution_minutes": 1}).status_code
        == 404
    )
    assert fields_named(client.put("/sla-policies/high", json={"first_response_minutes": 0})) == {
        "first_response_minutes",
        "resolution_minutes",
    }
    assert client.get("/business-calendar").status_code == 404
    assert client.put("/business-calendar", json=OFFICE).json == OFFICE
    assert client.get("/business-calendar").json == OFFICE
    bad = client.put(
        "/business-calendar", json={"time_zone": "Mars/Base", "hours": {"someday": [["9", "17:00"]]}, "holidays": ["x"]}
    )
    assert {name.split(".")[0] for name in fields_named(bad)} == {"time_zone", "hours", "holidays"}
    overlapping = client.put(
        "/business-calendar", json={**OFFICE, "hours": {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}}
    )
    assert fields_named(overlapping) == {"hours"}
    assert client.delete("/business-calendar").status_code == 204
    assert client.get("/business-calendar").status_code == 404


def in_berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


def test_due_times_on_business_hours_and_the_pending_pause(client, database):
    client.put("/business-calendar", json=OFFICE)
    opened = in_berlin(2026, 11, 27, 16, 0)  # Friday 16:00; normal: 8 business hours, 3 days
    with UnitOfWork(database, source="tickets") as uow:
        ticket = ticket_cases.create_ticket(uow, {"subject": "S", "category": "question"}, "agent-7", now=opened)
    assert ticket["first_response_due_at"] == in_berlin(2026, 11, 30, 16, 0)
    assert ticket["resolution_due_at"] == in_berlin(2026, 12, 2, 16, 0)
    with UnitOfWork(database, source="tickets") as uow:
        ticket_cases.update_ticket(
            uow, ticket["id"], {"status": "pending"}, "agent-7", now=in_berlin(2026, 11, 30, 15, 0)
        )
    with UnitOfWork(database, source="tickets") as uow:
        resumed = ticket_cases.update_ticket(
            uow, ticket["id"], {"status": "open"}, "agent-7", now=in_berlin(2026, 12, 1, 11, 0)
        )
    # pending Monday 15:00 to Tuesday 11:00 = 4 business hours: resolution moves from Wed 16:00 to Thu 12:00
    assert resumed["resolution_due_at"] == in_berlin(2026, 12, 3, 12, 0)
    assert resumed["first_response_due_at"] == in_berlin(2026, 11, 30, 16, 0), "the first-response clock runs on"


def test_the_breach_job_flags_each_target_once_and_announces_it(client, database):
    start = datetime.now(UTC) - timedelta(hours=5)
    with UnitOfWork(database, source="tickets") as uow:
        late = ticket_cases.create_ticket(
            uow, {"subject": "S", "category": "complaint", "priority": "urgent", "assignee_id": "a1"}, None, now=start
        )
    with UnitOfWork(database, source="tickets") as uow:
        answered = ticket_cases.create_ticket(uow, {"subject": "T", "category": "refund", "priority": "urgent"}, None)
    paused_start = datetime.now(UTC) - timedelta(hours=2)
    with UnitOfWork(database, source="tickets") as uow:
        pending = ticket_cases.create_ticket(
            uow, {"subject": "P", "category": "refund", "priority": "urgent"}, None, now=paused_start
        )
    with UnitOfWork(database, source="tickets") as uow:
        ticket_cases.update_ticket(
            uow, pending["id"], {"status": "pending"}, None, now=paused_start + timedelta(minutes=1)
        )
    client.post(f"/tickets/{answered['id']}/comments", json={"body": "Hello", "public": True}, headers=AGENT)

    with UnitOfWork(database, source="tickets") as uow:
        assert breaches.flag_sla_breaches(uow) == (2, 3)
    with UnitOfWork(database, source="tickets") as uow:
        assert breaches.flag_sla_breaches(uow) == (0, 0), "each breach once"
    flagged = [(e["data"]["ticket_id"], e["data"]["target"]) for e in events(database, "ticket.sla_breached")]
    assert sorted(flagged) == sorted(
        [(late["id"], "first_response"), (late["id"], "resolution"), (pending["id"], "first_response")]
    )
    (first,) = [
        e["data"]
        for e in events(database, "ticket.sla_breached")
        if e["data"]["target"] == "first_response" and e["data"]["ticket_id"] == late["id"]
    ]
    assert first["assignee_id"] == "a1" and first["due_at"] == late["first_response_due_at"].isoformat()
    listed = client.get("/tickets", query_string={"breached": "true", "sort": "created_at"}).json
    assert [t["id"] for t in listed["items"]] == [late["id"], pending["id"]]
    assert client.get(f"/tickets/{answered['id']}").json["breached"] is False
    # a resolution due time paused while pending does not breach until the clock runs again
    with UnitOfWork(database, source="tickets") as uow:
        assert breaches.flag_sla_breaches(uow, now=datetime.now(UTC) + timedelta(days=30)) == (1, 1)
    assert events(database, "ticket.sla_breached")[-1]["data"]["ticket_id"] == answered["id"]


def test_the_daily_report(client, database):
    day = datetime(2026, 11, 23, tzinfo=UTC)

    def at(hours):
        return day + timedelta(hours=hours)

    def make(category, opened, assignee="agent-1", **body):
        with UnitOfWork(database, source="tickets") as uow:
            return ticket_cases.create_ticket(
                uow, {"subject": "S", "category": category, "assignee_id": assignee, **body}, assignee, now=opened
            )

    def change(ticket, status, when):
        with UnitOfWork(database, source="tickets") as uow:
            ticket_cases.update_ticket(uow, ticket["id"], {"status": status}, "x", now=when)

    make("question", day - timedelta(days=1))  # still open: backlog
    refund = make("refund", at(8), priority="urgent")
    replacement = make("replacement", at(9), assignee="agent-2")
    make("replacement", at(10))
    make("refund", day + timedelta(days=1))  # another day
    change(refund, "open", at(8.5))
    change(refund, "resolved", at(10))  # 2 h, within the urgent 4 h
    change(replacement, "pending", at(10))
    change(replacement, "resolved", at(15))  # 6 h of which 1 h active
    report = client.get("/reports/daily", query_string={"date": "2026-11-23"}).json
    assert report["opened"]["total"] == 3
    assert report["opened"]["by_category"]["replacement"] == 2
    assert (report["replacements"], report["refunds"]) == (2, 1)
    assert report["resolved"] == 2
    assert report["backlog"] == 2
    assert report["resolution"] == {"median_minutes": 90.0, "p90_minutes": 114.0, "count": 2}
    assert report["sla"]["resolution"] == {"met": 2, "judged": 2, "rate": 1.0}
    assert [(a["assignee_id"], a["resolved"]) for a in report["per_agent"]] == [("agent-1", 1), ("agent-2", 1)]
    late = client.get("/reports/daily", query_string={"date": "2026-11-23", "tz": "America/Los_Angeles"}).json
    assert late["opened"]["total"] == 4, "the day in Los Angeles runs until 08:00 UTC the next day"
    bad = client.get("/reports/daily", query_string={"date": "23.11.2026", "tz": "Nowhere/Land"})
    assert fields_named(bad) == {"date", "tz"}


@pytest.mark.parametrize("status", ["resolved", "closed"])
def test_an_unknown_ticket_is_a_404_everywhere(client, status):
    missing = "0b7c9a6e-0000-4000-8000-000000000000"
    assert client.patch(f"/tickets/{missing}", json={"status": status}).status_code == 404
    assert client.post(f"/tickets/{missing}/comments", json={"body": "x"}).status_code == 404
    assert client.get(f"/tickets/{missing}/history").status_code == 404


def test_the_worker_job_flags_every_past_due_ticket_in_batches(settings_factory, monkeypatch):
    from dataclasses import replace

    from services.tickets import worker

    settings, database = settings_factory("tickets")
    monkeypatch.setattr(worker, "BATCH", 3)  # several batches in one round
    opened = datetime.now(UTC) - timedelta(hours=2)
    for n in range(7):
        with UnitOfWork(database, source="tickets") as uow:
            ticket_cases.create_ticket(
                uow, {"subject": f"T{n}", "category": "other", "priority": "urgent"}, None, opened
            )
    worker.flag_sla_breaches(database, settings)
    assert len(events(database, "ticket.sla_breached")) == 7
    worker.flag_sla_breaches(database, settings)
    assert len(events(database, "ticket.sla_breached")) == 7
    configured = replace(settings, options={"SLA_CHECK_SECONDS": "5"})
    assert worker.jobs(configured)["sla_breaches"].interval_seconds == 5.0


def test_ticket_numbers_stay_unique_and_gap_free_under_concurrent_creation(database):
    from concurrent.futures import ThreadPoolExecutor

    def create(n):
        with UnitOfWork(database, source="tickets") as uow:
            return ticket_cases.create_ticket(uow, {"subject": f"T{n}", "category": "other"}, None)["number"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        numbers = list(pool.map(create, range(60)))
    assert sorted(numbers) == list(range(1, 61))
