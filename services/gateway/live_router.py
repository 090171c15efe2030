"""Who is told what: turns the events live screens need into notices for audiences.

``LiveRouter`` keeps a little state (the calls seen ringing, the event ids seen) and runs only on
the live hub's thread (``live_hub``); it knows nothing of the broker or of streams, so it is
tested on its own. ``customers_named`` says which customers an event is about: the hub drops
their entries from the view cache (``view_cache``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from shared.auth import User
from shared.event_catalog import CATALOG
from shared.events import Envelope

LIVE_EVENT_TYPES = ("call.started", "agent.state_changed", "ticket.created", "ticket.updated")


# Every event type whose data names a customer (``customer_id``, ``merged_customer_id``,
# ``into_customer_id``, ...), by the fields that do: each such event drops those customers' views.
def _customer_fields() -> dict[str, tuple[str, ...]]:
    named: dict[str, dict[str, None]] = {}
    for entry in CATALOG.values():
        for name in entry.receiving_schema.fields:
            if name.endswith("customer_id"):
                named.setdefault(entry.name, {})[name] = None
    return {event_type: tuple(names) for event_type, names in named.items()}


CUSTOMER_FIELDS = _customer_fields()
CUSTOMER_EVENT_TYPES = tuple(sorted(CUSTOMER_FIELDS))
BOUND_EVENT_TYPES = tuple(sorted(set(LIVE_EVENT_TYPES) | set(CUSTOMER_EVENT_TYPES)))
RECOVERY_CATEGORY = "service_recovery"
_REMEMBERED = 10_000  # event ids (duplicates from an at-least-once relay) and calls remembered


@dataclass(frozen=True)
class Notice:
    """One server-sent event: ``event`` name, ``id``, JSON-able ``data``."""

    event: str
    id: str | None
    data: dict


@dataclass(frozen=True)
class Audience:
    """Who a notice is for: one user (``user_id``), or everybody with at least ``role``."""

    user_id: str | None = None
    role: str | None = None

    def includes(self, user: User) -> bool:
        if self.user_id is not None:
            return user.id == self.user_id
        return self.role is not None and user.has_role(self.role)


def to_user(user_id: str) -> Audience:
    return Audience(user_id=user_id)


def to_role(role: str) -> Audience:
    return Audience(role=role)


class _Bounded(OrderedDict):
    """An insertion-ordered dict that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int = _REMEMBERED):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


# --- who is told what ------------------------------------------------------------------------


@dataclass
class LiveRouter:
    """Turns events into notices for audiences.

    A call rings for an agent when call routing reserves them for it: ``agent.state_changed`` to
    ``reserved`` with a ``call_id``. The caller's details come from that call's ``call.started``.
    When a call is routed straight to an agent, both events are published in one transaction,
    the reservation first, so the reservation waits (``pending``) for the ``call.started`` right
    behind it; a call queued earlier was seen starting and is known at once. A reservation whose
    call was never seen (it started before this process listened) rings after ``grace`` seconds
    with the call id only, and the stream fills in the rest from call routing.
    """

    grace: float = 0.25
    calls: _Bounded = field(default_factory=_Bounded)  # call id -> what call.started said
    pending: dict = field(default_factory=dict)  # call id -> {agent id: (monotonic time, event id)}
    rung: dict = field(default_factory=dict)  # agent id -> the call id they were last told of
    seen: _Bounded = field(default_factory=_Bounded)  # event ids, to drop duplicates

    def route(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        if envelope.id in self.seen:
            return []  # the relay delivers at least once
        self.seen[envelope.id] = True
        handler = getattr(self, "_" + envelope.type.replace(".", "_"), None)
        return handler(envelope) if handler else []

    def overdue(self, now: float | None = None) -> list[tuple[Audience, Notice]]:
        """Reservations whose ``call.started`` did not follow within ``grace`` seconds."""
        now = time.monotonic() if now is None else now
        out = []
        for call_id in list(self.pending):
            waiting = self.pending[call_id]
            for agent_id, (since, event_id) in list(waiting.items()):
                if now - since >= self.grace:
                    del waiting[agent_id]
                    out += self._ring(agent_id, {"call_id": call_id}, event_id)
            if not waiting:
                del self.pending[call_id]
        return out

    # -- call routing ----------------------------------------------------------------------------

    def _call_started(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        data = envelope.data
        call_id = data["call_id"]
        facts = {
            "call_id": call_id,
            "from_number": data.get("from_number"),
            "customer_id": _text(data.get("customer_id")),
            "queue": data.get("queue"),
            "started_at": _text(data.get("started_at")),
        }
        self.calls[call_id] = facts
        agents = list(self.pending.pop(call_id, {}))
        if data.get("agent_id") and data["agent_id"] not in agents:
            agents.append(data["agent_id"])
        out = []
        for agent_id in agents:
            out += self._ring(agent_id, facts, envelope.id)
        return out

    def _agent_state_changed(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        data = envelope.data
        agent_id, call_id, new_state = data["agent_id"], data.get("call_id"), data["new_state"]
        state = {
            "agent_id": agent_id,
            "old_state": data["old_state"],
            "new_state": new_state,
            "reason": data.get("reason"),
            "call_id": call_id,
            "changed_at": _text(data.get("changed_at")),
        }
        notice = Notice("agent.state", f"{envelope.id}:agent.state", state)
        # The agent sees their own state; supervisors see everyone's (the console's live wall).
        out = [(to_user(agent_id), notice), (to_role("supervisor"), notice)]
        if new_state != "reserved":
            self.rung.pop(agent_id, None)  # the offer is over: the same call may be offered again later
            for waiting in self.pending.values():
                waiting.pop(agent_id, None)
            return out
        if call_id is None:
            return out
        facts = self.calls.get(call_id)
        if facts is not None:
            out += self._ring(agent_id, facts, envelope.id)
        else:
            self.pending.setdefault(call_id, {})[agent_id] = (time.monotonic(), envelope.id)
        return out

    def _ring(self, agent_id: str, facts: dict, event_id: str) -> list[tuple[Audience, Notice]]:
        if self.rung.get(agent_id) == facts["call_id"]:
            return []
        self.rung[agent_id] = facts["call_id"]
        return [(to_user(agent_id), Notice("call.ringing", f"{event_id}:call.ringing", dict(facts)))]

    # -- tickets ---------------------------------------------------------------------------------

    def _ticket_created(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        data = envelope.data
        ticket = {
            "ticket_id": _text(data["ticket_id"]),
            "number": data["number"],
            "subject": data["subject"],
            "category": data["category"],
            "priority": data["priority"],
            "status": data["status"],
            "customer_id": _text(data.get("customer_id")),
            "group": data.get("group"),
            "call_id": data.get("call_id"),
            "created_at": _text(data.get("created_at")),
        }
        out = []
        if data.get("assignee_id"):
            assigned = {
                **ticket,
                "assignee_id": data["assignee_id"],
                "assigned_by": data.get("created_by"),  # a ticket I open for myself is not news to me
                "previous_assignee_id": None,
            }
            out.append(
                (to_user(data["assignee_id"]), Notice("ticket.assigned", f"{envelope.id}:ticket.assigned", assigned))
            )
        if data["category"] == RECOVERY_CATEGORY:
            recovery = {
                **ticket,
                "assignee_id": data.get("assignee_id"),
                "survey_response_id": _text(data.get("survey_response_id")),
                "resolution_due_at": _text(data.get("resolution_due_at")),
            }
            out.append((to_role("supervisor"), Notice("recovery.opened", f"{envelope.id}:recovery.opened", recovery)))
        return out

    def _ticket_updated(self, envelope: Envelope) -> list[tuple[Audience, Notice]]:
        data = envelope.data
        change = data["changes"].get("assignee_id")
        if not change or not change.get("new"):
            return []
        assigned = {
            "ticket_id": _text(data["ticket_id"]),
            "customer_id": _text(data.get("customer_id")),
            "assignee_id": change["new"],
            "assigned_by": data.get("actor_id"),
            "previous_assignee_id": change.get("old"),
        }
        return [(to_user(change["new"]), Notice("ticket.assigned", f"{envelope.id}:ticket.assigned", assigned))]


def _text(value) -> str | None:
    """Event data as received (marshmallow validated it but the raw values are kept): text or None."""
    return None if value is None else str(value)


def customers_named(envelope: Envelope) -> list[str]:
    """The customers an event is about (both of a merge), as the event's data names them."""
    data = envelope.data
    return [str(data[name]) for name in CUSTOMER_FIELDS.get(envelope.type, ()) if data.get(name)]
