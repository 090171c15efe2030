"""The live wall: what is happening now, in type readable across the room.

Calls waiting (per queue) and the longest wait, calls ringing and connected, and every agent by
state with their name and time in that state, from call routing's ``GET /live`` (which applies
timers that ran out first) and its agents registry (the names). The page holds the board;
the board (``/wall/board``, a fragment) is fetched again every 5 seconds by htmx, and at once
when the page's live stream (re)connects or brings an ``agent-state`` event. The gateway's live
stream tells each user only of their own state, so for the whole room the 5-second poll is what
keeps the wall current.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.auth import rule

from .base import Refused, ServiceDown, ask, console, page, render
from .dashboard import NO_VALUE
from .i18n import CENTER_DEFAULTS, N_, center_settings

ACCESS: list = [rule("/wall*", "supervisor")]

# Call routing's agent states (shared.event_catalog.AGENT_STATES), in the order the wall shows them.
STATE_COLUMNS = (
    ("available", N_("Available")),
    ("reserved", N_("Ringing")),
    ("on_call", N_("On call")),
    ("wrap_up", N_("Wrap-up")),
    ("on_break", N_("On break")),
    ("offline", N_("Offline")),
)


def clock(seconds: float | None) -> str:
    """Seconds as a wall clock reads them: 65 -> '1:05', 3725 -> '1:02:05'; unknown -> a dash."""
    if seconds is None:
        return NO_VALUE
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the services' times are UTC


def thresholds() -> dict:
    """The warning colours' thresholds, as an admin set them on /settings (i18n.CENTER_DEFAULTS)."""
    settings = center_settings()

    def number(key: str) -> float:
        try:
            return float(settings[key])
        except (KeyError, ValueError):
            return float(CENTER_DEFAULTS[key])

    return {
        "wait_seconds": number("wall_wait_warn_seconds"),
        "service_level": number("wall_service_level_warn"),
        "abandon_rate": number("wall_abandon_warn"),
    }


def today_figures() -> dict | None:
    """Today's service level, abandon rate, offered and answered: call routing's daily report (UTC day)."""
    try:
        report = ask("callrouting", "GET", "/reports/daily", params={"date": datetime.now(UTC).date().isoformat()})
    except (ServiceDown, Refused):
        return None
    totals = report.get("totals") or {}
    return {
        "service_level": totals.get("service_level"),
        "threshold_seconds": report.get("service_level_threshold_seconds"),
        "abandon_rate": totals.get("abandon_rate"),
        "offered": totals.get("offered", 0),
        "answered": totals.get("answered", 0),
    }


def queue_rows(live: dict) -> list[dict]:
    """Every queue, with 0 waiting too: call routing's queues, and the live view's counts on them."""
    counted = {queue["queue"]: queue for queue in live.get("queues", [])}
    try:
        known = [queue["name"] for queue in ask("callrouting", "GET", "/queues", params={"limit": 500})["items"]]
    except (ServiceDown, Refused):
        known = []
    names = list(dict.fromkeys([*known, *counted]))
    return [
        {
            "queue": name,
            "waiting": counted.get(name, {}).get("waiting", 0),
            "longest_wait_seconds": counted.get(name, {}).get("longest_wait_seconds") or 0.0,
        }
        for name in names
    ]


def board() -> dict:
    """The board's figures: call routing's live view, with names and time in state per agent."""
    live = ask("callrouting", "GET", "/live")
    try:
        agents = ask("callrouting", "GET", "/agents", params={"limit": 500})["items"]
        names = {agent["id"]: agent.get("name") for agent in agents}
    except ServiceDown:
        names = {}  # the live view answered a moment ago: show the ids rather than nothing
    at = _moment(live.get("at")) or datetime.now(UTC)
    columns = {state: [] for state, _ in STATE_COLUMNS}
    for agent in live.get("agents", ()):
        since = _moment(agent.get("since"))
        seconds = max((at - since).total_seconds(), 0.0) if since else None
        row = {
            "agent_id": agent["agent_id"],
            "name": names.get(agent["agent_id"]) or agent["agent_id"],
            "seconds": seconds,
            "in_state": clock(seconds),
            "call_id": agent.get("call_id"),
        }
        columns.setdefault(agent["state"], []).append(row)
    for rows in columns.values():
        rows.sort(key=lambda row: -(row["seconds"] or 0))  # the longest in a state first
    return {
        "at": at,
        "calls_waiting": live.get("calls_waiting", 0),
        "longest_wait": clock(live.get("longest_wait_seconds") or 0.0),
        "longest_wait_seconds": live.get("longest_wait_seconds") or 0.0,
        "calls_ringing": live.get("calls_ringing", 0),
        "calls_connected": live.get("calls_connected", 0),
        "queues": queue_rows(live),
        "columns": [(state, title, columns.get(state, [])) for state, title in STATE_COLUMNS],
        "today": today_figures(),
        "limits": thresholds(),
    }


@console.route("/wall")
@page
def wall_page():
    return render("console/wall/page.html", board=board(), clock=clock)


@console.route("/wall/board")
@page
def wall_board():
    return render("console/wall/board.html", board=board(), clock=clock)
