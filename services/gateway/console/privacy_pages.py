"""The console's parts for staffing and customer data protection (issue 17), in their own partials:

- the dashboard's staffing panel (``dashboard/_staffing.html``): required vs staffed agents per
  interval as a chart with its table, each agent's activity timeline, and the erasure requests
  that a service has not applied by their due time (overdue);
- the customer page's data protection actions (``customers/_privacy_actions.html``): download the
  export, and erase after a confirmation that says what will happen (privacy role or admin).

The figures are those of the API (``reports.fetch`` carries call routing's staffing part; the
requests are ``privacy.requests_with_progress``), so the console and the API never disagree.
"""

from __future__ import annotations

from datetime import datetime

from shared.auth import acting_user, rule

from .. import privacy
from ..upstream import UpstreamUnavailable
from .base import Refused, console, page, render

ACCESS: list = [rule("/customers/<customer_id>/erase", "privacy")]

STATE_LABELS = {
    "available": "Available",
    "reserved": "Reserved",
    "on_call": "On a call",
    "wrap_up": "Wrap-up",
    "on_break": "On break",
}


@console.app_template_global()
def staffing_chart(staffing: dict | None) -> dict | None:
    """What staffing.js draws: intervals with calls or agents, required vs staffed."""
    if not staffing:
        return None
    rows = [row for row in staffing["intervals"] if row["calls"] or row["staffed"] or row["agents_required"]]
    return {
        "labels": [str(row["start"])[11:16] for row in rows],
        "required": [row["agents_required"] for row in rows],
        "staffed": [round(row["staffed"] or 0, 2) for row in rows],
        "rows": rows,
    }


@console.app_template_global()
def agent_timeline_bars(staffing: dict | None) -> list[dict]:
    """Each agent's day as bars: state, left and width in % of the UTC day, and the times shown."""
    bars = []
    for agent in (staffing or {}).get("agents") or ():
        segments = []
        for segment in agent["segments"]:
            start, end = _moment(segment["from"]), _moment(segment["to"])
            midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
            left = (start - midnight).total_seconds() / 864
            width = max((end - start).total_seconds() / 864, 0.05)
            segments.append(
                {
                    "state": segment["state"],
                    "label": STATE_LABELS.get(segment["state"], segment["state"]),
                    "left": round(left, 3),
                    "width": round(width, 3),
                    "from": start.strftime("%H:%M"),
                    "to": end.strftime("%H:%M"),
                }
            )
        totals = {STATE_LABELS.get(k, k): v for k, v in agent["seconds_in_state"].items() if v}
        bars.append({"agent_id": agent["agent_id"], "segments": segments, "totals": totals})
    return bars


@console.app_template_global()
def overdue_erasures() -> dict:
    """{"requests": [...overdue...]} or {"error": why}: asked only when a panel shows it."""
    if not acting_user().has_role("supervisor") and acting_user().role != "privacy":
        return {"requests": []}
    try:
        return {"requests": [each for each in privacy.requests_with_progress() if each["state"] == "overdue"]}
    except UpstreamUnavailable as error:
        return {"error": f"{error.service}: {error.reason}"}


def _moment(text) -> datetime:
    return text if isinstance(text, datetime) else datetime.fromisoformat(str(text))


@console.route("/customers/<customer_id>/erase", methods=["POST"])
@page
def erase_customer(customer_id: str):
    """The confirmed erasure: the same as ``POST /api/customers/{id}/erase``; answers the request's progress."""
    try:
        progress, status = privacy.erase(customer_id)
    except privacy.Refusal as refusal:
        raise Refused(refusal.status, {"title": refusal.title, "detail": refusal.detail}) from None
    return render("console/customers/_privacy_result.html", request_progress=progress, new=status == 201)
