"""Retention (RETENTION_* settings, docs/privacy.md): the periodic jobs anonymise personal data past
its time and leave what the reports count; an inactive customer is erased like any other request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.callrouting import privacy as callrouting_privacy
from services.callrouting.models import Call
from services.surveys import privacy as surveys_privacy
from services.surveys.models import SurveyResponse
from services.tickets import worker as tickets_worker
from services.tickets.models import Customer, PrivacyRequest, Ticket, TicketComment
from shared.backbone import outbox

NOW = datetime.now(UTC)
OLD, RECENT = NOW - timedelta(days=400), NOW - timedelta(days=3)
OPTIONS = {
    "RETENTION_CALL_NOTES_DAYS": "365",
    "RETENTION_TICKET_COMMENTS_DAYS": "365",
    "RETENTION_SURVEY_COMMENTS_DAYS": "365",
    "RETENTION_INACTIVE_CUSTOMERS_MONTHS": "12",
}


def test_ticket_comments_and_inactive_customers_past_their_retention(settings_factory):
    settings, database = settings_factory("tickets", options=OPTIONS)
    with database.sessions() as session:
        stale = Customer(name="Old Timer", phone="+442079460111", created_at=OLD)
        active = Customer(name="Regular", created_at=OLD)
        session.add_all([stale, active])
        session.flush()
        ticket = Ticket(
            number=1,
            customer_id=active.id,
            subject="Kettle",
            category="question",
            priority="normal",
            channel="web",
            status="closed",
            created_at=RECENT,
            updated_at=RECENT,
        )
        session.add(ticket)
        session.flush()
        session.add_all(
            [
                TicketComment(ticket_id=ticket.id, body="said long ago", public=False, created_at=OLD),
                TicketComment(ticket_id=ticket.id, body="said this week", public=False, created_at=RECENT),
            ]
        )
        session.commit()
        stale_id, active_id = stale.id, active.id
    tickets_worker.apply_retention(database, settings)
    tickets_worker.apply_retention(database, settings)  # a second round changes nothing more
    with database.sessions() as session:
        bodies = sorted(session.scalars(select(TicketComment.body)))
        assert bodies == ["[erased]", "said this week"]
        assert session.get(Customer, stale_id).name == "Erased customer"
        assert session.get(Customer, active_id).name == "Regular"  # a ticket this year: active
        requests = list(session.scalars(select(PrivacyRequest)))
        assert [(r.customer_id, r.requested_by) for r in requests] == [(stale_id, "retention")]
        erased = [row for row in session.execute(select(outbox)) if row.event_type == "customer.erased"]
        assert len(erased) == 1


def test_call_notes_and_survey_comments_past_their_retention(settings_factory):
    settings, database = settings_factory("callrouting", options=OPTIONS)
    with database.sessions() as session:
        for when, notes in ((OLD, "old note"), (RECENT, "new note")):
            session.add(
                Call(
                    call_id=uuid.uuid4().hex,
                    source="json",
                    queue="default",
                    state="completed",
                    enqueued_at=when,
                    received_at=when,
                    result="answered",
                    notes=notes,
                    day=when.date().isoformat(),
                    hour=when.hour,
                )
            )
        session.commit()
    callrouting_privacy.retention_job(database, settings)
    with database.sessions() as session:
        assert sorted(str(n) for n in session.scalars(select(Call.notes))) == ["None", "new note"]
        assert len(list(session.scalars(select(Call.call_id)))) == 2  # the calls stay for the reports

    settings, database = settings_factory("surveys", options=OPTIONS)
    with database.sessions() as session:
        for when, comment in ((OLD, "old words"), (RECENT, "new words")):
            session.add(
                SurveyResponse(
                    response_id=str(uuid.uuid4()),
                    template_id=str(uuid.uuid4()),
                    template_version=1,
                    customer_id=str(uuid.uuid4()),
                    channel="link",
                    status="complete",
                    answers={"service": 9},
                    comment=comment,
                    language="en",
                    started_at=when,
                    completed_at=when,
                    day=when.date().isoformat(),
                )
            )
        session.commit()
    surveys_privacy.retention_job(database, settings)
    with database.sessions() as session:
        rows = {r.comment: r.answers for r in session.scalars(select(SurveyResponse))}
        assert rows == {None: {"service": 9}, "new words": {"service": 9}}
