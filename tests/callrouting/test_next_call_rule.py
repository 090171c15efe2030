"""Who gets the next follow-up entry: the SQL of the hand-out (``outbound/handout.py``) gives the
same answer as the rule written as a pure function (``outbound/domain.py::next_entry_for``),
on a sample mixing every reason an entry is or is not eligible."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import insert

from services.callrouting.models import CallEntry, CallTimeZone, Campaign
from services.callrouting.outbound import domain, handout, service

ALWAYS = {day: ["00:00", "24:00"] for day in domain.WEEKDAYS}
NEVER = {}
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)  # a Wednesday: 10:30 in Berlin, 04:30 in New York
OFFICE = {day: ["09:00", "17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kolkata")


def _sample(uow, rng: random.Random) -> list[domain.Candidate]:
    campaigns = [
        service.create_campaign(uow, name="always", calling_window=ALWAYS),
        service.create_campaign(uow, name="office hours", calling_window=OFFICE),
        service.create_campaign(uow, name="never", calling_window=NEVER),
        service.create_campaign(uow, name="french only", calling_window=ALWAYS, required_skill="fr"),
        service.create_campaign(uow, name="paused", calling_window=ALWAYS, active=False),
    ]
    rows, candidates = [], []
    for n in range(120):
        campaign: Campaign = campaigns[n % len(campaigns)]
        state = rng.choice(("pending", "pending", "pending", "leased", "completed", "cancelled"))
        due_at = NOW + timedelta(minutes=rng.choice((-600, -1, 0, 1, 600)))
        zone = rng.choice(ZONES)
        entry_id = str(uuid.uuid4())
        leased = state == "leased"
        rows.append(
            {
                "entry_id": entry_id,
                "campaign_id": campaign.campaign_id,
                "customer_id": str(uuid.uuid4()),
                "schedule_key": f"entry:{entry_id}",
                "origin": "api",
                "state": state,
                "due_at": due_at,
                "time_zone": zone,
                "shuffle_key": rng.random(),
                "attempts": 0,
                "leased_by": "someone-else" if leased else None,
                "lease_expires_at": NOW + timedelta(minutes=5) if leased else None,
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
        candidates.append(
            domain.Candidate(
                entry_id=entry_id,
                state=state,
                due_at=due_at,
                time_zone=zone,
                campaign_active=campaign.active,
                calling_window=campaign.calling_window,
                required_skill=campaign.required_skill,
                leased_by=rows[-1]["leased_by"],
                lease_expires_at=rows[-1]["lease_expires_at"],
            )
        )
    uow.session.execute(insert(CallEntry), rows)
    for zone in ZONES:
        uow.session.add(CallTimeZone(time_zone=zone))
    uow.commit()
    return candidates


def _sql_eligible(uow, skills: tuple[str, ...]) -> set[str]:
    """Every entry id the hand-out's SQL may draw for an agent with these skills, now."""
    with uow.database.reader.connect() as reader:
        campaigns = handout._callable_campaigns(reader, uow.database.url, skills, NOW)
        if not campaigns:
            return set()
        parts = tuple((campaign_id, zones) for campaign_id, (_, zones) in sorted(campaigns.items()))
        statements = handout._pick_statements(parts)
        found = reader.execute(statements.slice, {"now": NOW, "low": 0.0, "high": 1.0, "limit": 10_000})
        return set(found.scalars())


def test_the_hand_out_sql_draws_from_exactly_the_entries_the_rule_allows(uow_factory):
    handout.forget_recent()
    uow = uow_factory("callrouting")
    with uow:
        candidates = _sample(uow, random.Random(15))
    for skills in ((), ("fr",), ("fr", "de")):
        agent = SimpleNamespace(agent_id="agent-x", skills=skills)
        expected = {c.entry_id for c in candidates if domain.may_take(skills, c, NOW)}
        assert expected, "the sample should hold eligible entries"
        with uow_factory("callrouting") as reader:
            handout.forget_recent()
            assert _sql_eligible(reader, skills) == expected, skills
        # and the pure rule's draws come from the same set
        draws = {domain.next_entry_for(agent, candidates, NOW, random.Random(n)).entry_id for n in range(50)}
        assert draws <= expected and len(draws) > 1


def test_next_call_hands_out_an_entry_the_rule_allows_and_renews_a_held_lease(uow_factory):
    handout.forget_recent()
    with uow_factory("callrouting") as uow:
        candidates = _sample(uow, random.Random(7))
        service.register_agent(uow, "agent-fr", "Agent Fr", ["fr"])
    agent = SimpleNamespace(agent_id="agent-fr", skills=("fr",))
    allowed = {c.entry_id for c in candidates if domain.may_take(agent.skills, c, NOW)}
    with uow_factory("callrouting") as uow:
        handed = handout.next_call(uow, "agent-fr", now=NOW)
    assert handed is not None and handed.entry.entry_id in allowed and not handed.renewed
    # the rule's first step: the agent's unexpired lease is theirs again
    held = domain.Candidate(
        entry_id=handed.entry.entry_id,
        state="leased",
        due_at=handed.entry.due_at,
        time_zone=handed.entry.time_zone,
        campaign_active=True,
        calling_window=ALWAYS,
        leased_by="agent-fr",
        lease_expires_at=handed.entry.lease_expires_at,
    )
    assert domain.next_entry_for(agent, [*candidates, held], NOW).entry_id == handed.entry.entry_id
    with uow_factory("callrouting") as uow:
        again = handout.next_call(uow, "agent-fr", now=NOW + timedelta(seconds=5))
    assert again.renewed and again.entry.entry_id == handed.entry.entry_id


def test_nothing_eligible_is_none_in_both():
    agent = SimpleNamespace(agent_id="a", skills=())
    paused = domain.Candidate("e1", "pending", NOW - timedelta(hours=1), "Europe/Berlin", False, ALWAYS)
    closed = domain.Candidate("e2", "pending", NOW - timedelta(hours=1), "Europe/Berlin", True, NEVER)
    listed = domain.Candidate("e3", "pending", NOW - timedelta(hours=1), "Europe/Berlin", True, ALWAYS, listed=True)
    assert domain.next_entry_for(agent, [paused, closed, listed], NOW) is None
