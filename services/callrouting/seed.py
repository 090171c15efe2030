"""The demo history in call routing's database: agents, customers heard of, a month of inbound
calls, and the post-purchase follow-up campaign with its entries and attempts.

Agents are registered with ``service.register_agent`` (as the gateway's /users API has call
routing do). The customer replica is fed the ``customer.created`` events of the demo world
through this service's own consumer handler (``events.HANDLERS``), which also puts customers
without consent on the do-not-call list. Calls, entries and attempts are written as rows in
one transaction, dated in the past as the phone system's callbacks and the agents' outcomes
would have left them; nothing goes to the outbox (history is not news).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from sqlalchemy import func, insert, select

from services.seed import envelopes
from services.seed.plan import CENTER_NUMBER, QUEUE
from shared.db import Database
from shared.unit_of_work import UnitOfWork

from . import events
from .inbound import service as inbound
from .models import Agent, AgentStateChange, CallAttempt, CallEntry, Campaign, CustomerContact
from .models import Call as CallRow
from .outbound import domain, service

SOURCE = "callrouting"


def write(database: Database, world) -> bool:
    """Write ``world``'s call-routing part; False (and nothing written) when it is already there."""
    for user in world.users:
        if user.role == "agent":
            with UnitOfWork(database, SOURCE) as uow:
                if uow.session.get(Agent, user.id) is None:
                    service.register_agent(uow, user.id, user.name, list(user.skills))
    with UnitOfWork(database, SOURCE) as uow:
        session = uow.session
        if session.get(Campaign, world.campaigns[0].id) is not None:
            return False
        today = world.now.date().isoformat()
        for user in world.users:
            if user.role == "agent":
                row = inbound.agent_routing(session, user.id)  # the Twilio client named after the agent
                # Today's counters, as the calls already taken today left them (inbound._talk_ended).
                taken = [c for c in world.calls if c.agent_id == user.id and c.ended_at.date().isoformat() == today]
                row.stats_day, row.calls_today = today, len(taken)
                row.talk_seconds_today = sum(call.talk_seconds for call in taken)
        for customer in world.customers:
            events.HANDLERS["customer.created"](uow, envelopes.customer_created(world, customer))
        session.flush()
        inbound.queue_rules(session, QUEUE)  # the queue the calls came in on, with its default rules
        connection = session.connection()
        if world.calls:
            connection.execute(insert(CallRow.__table__), [_call_row(call) for call in world.calls])
            connection.execute(insert(AgentStateChange.__table__), state_history(world.calls, world.now))
        _write_campaigns(uow, world)
        uow.commit()
    return True


def _call_row(call) -> dict:
    return {
        "call_id": call.call_id,
        "source": "twilio",
        "from_number": call.from_number,
        "to_number": CENTER_NUMBER,
        "customer_id": call.customer_id,
        "queue": QUEUE,
        "state": call.state,
        "offered_to": [],
        "agent_id": call.agent_id,
        "enqueued_at": call.enqueued_at,
        "received_at": call.enqueued_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "wrap_up_started_at": call.ended_at if call.answered_at else None,
        "wrapped_up_at": call.wrapped_up_at,
        "result": call.result,
        "wait_seconds": call.wait_seconds,
        "talk_seconds": call.talk_seconds,
        "wrap_up_seconds": call.wrap_up_seconds,
        "reason": call.reason,
        "notes": call.notes,
        "ticket_id": call.ticket_id,
        "last_sequence": None,
        "offer_round": 1 if call.answered_at else 0,
        "day": call.enqueued_at.date().isoformat(),
        "hour": call.enqueued_at.hour,
    }


SIGN_IN_BEFORE = timedelta(minutes=5)  # before the first call of the day
SIGN_OUT_AFTER = timedelta(minutes=10)  # after the last wrap-up
BREAK = timedelta(minutes=15)  # taken in the longest pause between calls, if it is long enough


def state_history(demo_calls, now) -> list[dict]:
    """The agents' state changes their calls imply (the staffing report reads them): each agent's
    day runs from sign-in before the first call to sign-out after the last wrap-up, available
    between calls, on a call and in wrap-up for each call, and one break in the longest pause."""
    by_agent_day: dict[tuple[str, str], list] = {}
    for call in demo_calls:
        if call.agent_id and call.answered_at and call.wrapped_up_at and call.wrapped_up_at <= now:
            by_agent_day.setdefault((call.agent_id, call.answered_at.date().isoformat()), []).append(call)
    rows = []
    for (agent_id, _day), day_calls in sorted(by_agent_day.items()):
        day_calls.sort(key=lambda call: call.answered_at)
        pauses = [(b.answered_at - a.wrapped_up_at, a.wrapped_up_at) for a, b in itertools.pairwise(day_calls)]
        longest = max(pauses, default=(timedelta(0), None))
        steps = [(day_calls[0].answered_at - SIGN_IN_BEFORE, "available")]
        for call in day_calls:
            steps += [(call.answered_at, "on_call"), (call.ended_at, "wrap_up"), (call.wrapped_up_at, "available")]
            if longest[1] == call.wrapped_up_at and longest[0] >= BREAK + timedelta(minutes=5):
                steps += [
                    (call.wrapped_up_at + timedelta(minutes=2), "on_break"),
                    (call.wrapped_up_at + timedelta(minutes=2) + BREAK, "available"),
                ]
        sign_out = day_calls[-1].wrapped_up_at + SIGN_OUT_AFTER
        if sign_out <= now:
            steps.append((sign_out, "offline"))
        state = "offline"
        for at, new_state in steps:
            if new_state != state:
                rows.append(
                    {"agent_id": agent_id, "old_state": state, "new_state": new_state, "at": at, "reason": "seed"}
                )
                state = new_state
    return rows


def _write_campaigns(uow: UnitOfWork, world) -> None:
    session = uow.session
    for campaign in world.campaigns:
        created = min((entry.created_at for entry in world.entries), default=world.now) - timedelta(days=1)
        session.add(
            Campaign(
                campaign_id=campaign.id,
                name=campaign.name,
                purpose=campaign.purpose,
                delay_days=campaign.delay_days,
                script=campaign.script,
                talking_point=campaign.talking_point,
                retry_policy=domain.complete_retry_policy(None),
                calling_window=dict(domain.DEFAULT_CALLING_WINDOW),
                contact_frequency_days=campaign.contact_frequency_days,
                required_skill=None,
                survey_delivery=campaign.survey_delivery,
                active=True,
                created_at=created,
                updated_at=created,
            )
        )
    session.flush()
    entries, attempts, contacts = [], [], []
    for entry in world.entries:
        time_zone = service.customer_time_zone(session, entry.customer_id)
        service._remember_time_zone(session, time_zone)
        last = entry.attempts[-1] if entry.attempts else None
        entries.append(
            {
                "entry_id": entry.id,
                "campaign_id": entry.campaign_id,
                "customer_id": entry.customer_id,
                "purchase_id": entry.purchase_id,
                "followup_request_id": None,
                "schedule_key": f"purchase:{entry.purchase_id}",
                "origin": "purchase",
                "state": entry.state,
                "due_at": entry.due_at,
                "time_zone": time_zone,
                "shuffle_key": int(entry.id[:8], 16) / 0x1_0000_0000,  # uniform, and the same every run
                "attempts": len(entry.attempts),
                "leased_by": None,
                "leased_at": None,
                "lease_expires_at": None,
                "last_outcome": entry.last_outcome,
                "offer_accepted": entry.offer_accepted,
                "created_at": entry.created_at,
                "updated_at": last.ended_at if last else entry.created_at,
                "closed_at": entry.closed_at,
            }
        )
        for attempt in entry.attempts:
            attempts.append(
                {
                    "attempt_id": attempt.id,
                    "entry_id": entry.id,
                    "campaign_id": entry.campaign_id,
                    "customer_id": entry.customer_id,
                    "agent_id": attempt.agent_id,
                    "attempt": attempt.number,
                    "outcome": attempt.outcome,
                    "offer_accepted": attempt.offer_accepted,
                    "notes": attempt.notes,
                    "callback_at": None,
                    "started_at": attempt.started_at,
                    "ended_at": attempt.ended_at,
                }
            )
            if attempt.outcome in domain.CONVERSATION_OUTCOMES:
                contacts.append(_contact(f"call:{attempt.id}", entry.customer_id, "call", attempt.ended_at))
            if attempt.outcome == "do_not_call":
                service._put_on_do_not_call(session, entry.customer_id, "outcome")
    # A completed survey is a contact too (call routing hears of it from survey.completed).
    contacts += [
        _contact(f"survey:{response.id}", response.customer_id, "survey", response.completed_at)
        for response in world.responses
        if response.completed_at is not None
    ]
    connection = session.connection()
    if entries:
        connection.execute(insert(CallEntry.__table__), entries)
    if attempts:
        connection.execute(insert(CallAttempt.__table__), attempts)
    if contacts:
        connection.execute(insert(CustomerContact.__table__), contacts)


def _contact(contact_id: str, customer_id: str, kind: str, at) -> dict:
    return {"contact_id": contact_id, "customer_id": customer_id, "kind": kind, "contacted_at": at}


def holds_data(database: Database) -> bool:
    """Whether this database has calls already (then it is no fresh installation: ``--if-empty``)."""
    with database.read_sessions() as session:
        return session.scalar(select(func.count()).select_from(CallRow)) > 0
