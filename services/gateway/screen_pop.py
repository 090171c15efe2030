"""The screen-pop: a call rings for an agent, and their screen shows who is calling.

A use case of its own, not the live stream's route (``live``): it asks call routing for the
call's facts when the hub never saw the call start, and assembles the caller's view for the
receiving agent within a deadline. It is also the one thing ``GET /api/live`` causes to be
written (see :func:`caller_view`).
"""

from __future__ import annotations

import logging
import time

from shared.auth import User

from . import view
from .live_router import Notice
from .upstream import UpstreamUnavailable, upstreams

log = logging.getLogger(__name__)


def with_caller(notice: Notice, user: User, view_seconds: float) -> Notice:
    """The ringing call with who is calling: the call's facts (from call routing when the hub
    never saw the call start) and the caller's view, assembled for this agent within the deadline."""
    started = time.monotonic()
    data = dict(notice.data)
    if "customer_id" not in data:
        data.update(call_facts(data["call_id"], user, view_seconds))
    customer_id = data.get("customer_id")
    data["view_url"] = f"/api/customers/{customer_id}/view" if customer_id else None
    if customer_id:
        remaining = max(view_seconds - (time.monotonic() - started), 0.05)
        data["view"] = caller_view(customer_id, remaining)
    return Notice(notice.event, notice.id, data)


def call_facts(call_id: str, user: User, timeout: float) -> dict:
    """What call routing knows of the call: the number, the customer, the queue (None when it cannot say)."""
    try:
        response = upstreams().call("callrouting", "GET", f"/calls/{call_id}", user=user, timeout=timeout)
    except UpstreamUnavailable:
        return {"customer_id": None}
    if response.status_code != 200:
        return {"customer_id": None}
    call = response.json()
    return {name: call.get(name) for name in ("from_number", "customer_id", "queue")}


def caller_view(customer_id: str, deadline: float) -> dict | None:
    """The caller's view for the receiving agent (``g.user``); None when nobody knows the customer.

    Why a GET writes here: showing an agent the caller's view is a look at a customer's personal
    data, and every such look is in the audit log (``customer.viewed``, ``privacy.audit``), be it
    the customer's page, ``GET /api/customers/{id}/view`` or this screen-pop; otherwise the log
    could not answer who saw whose data. ``view.customer_view`` records it in a unit of work of
    its own (never the stream's request, which reads only), and nothing else is written.
    """
    try:
        return view.customer_view(customer_id, deadline=deadline)
    except view.CustomerNotFound:
        return None
    except Exception:  # the call rings all the same; the console can open the view itself
        log.exception("live updates: the caller's view failed", extra={"customer_id": customer_id})
        return None
