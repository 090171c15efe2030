"""The console's rows of the role matrix (tests/gateway/test_access.py), one list per screen:
(app, method, URL rule, minimum role). A console route without a row fails the coverage test."""

from __future__ import annotations

BASE = [
    ("gateway", "GET", "/", "agent"),
    ("gateway", "POST", "/sign-out", "agent"),
]
DESK = [
    ("gateway", "GET", "/desk", "agent"),
    ("gateway", "GET", "/desk/state", "agent"),
    ("gateway", "POST", "/desk/state", "agent"),
    ("gateway", "GET", "/desk/wrap-ups", "agent"),
    ("gateway", "GET", "/desk/strip", "agent"),
    ("gateway", "POST", "/desk/next-call", "agent"),
    ("gateway", "POST", "/desk/entries/<entry_id>/outcome", "agent"),
    ("gateway", "POST", "/desk/surveys", "agent"),
    ("gateway", "GET", "/desk/surveys/<response_id>/recovery", "agent"),
    ("gateway", "GET", "/desk/pop", "agent"),
    ("gateway", "GET", "/desk/calls/<call_id>/wrap-up", "agent"),
    ("gateway", "POST", "/desk/calls/<call_id>/wrap-up", "agent"),
]
TICKETS = [
    ("gateway", "GET", "/tickets", "agent"),
    ("gateway", "GET", "/tickets/new", "agent"),
    ("gateway", "POST", "/tickets/new", "agent"),
    ("gateway", "GET", "/tickets/<ticket_id>", "agent"),
    ("gateway", "POST", "/tickets/<ticket_id>", "agent"),
    ("gateway", "POST", "/tickets/<ticket_id>/comments", "agent"),
]
CUSTOMERS = [
    ("gateway", "GET", "/customers", "agent"),
    ("gateway", "GET", "/customers/<customer_id>/timeline", "agent"),
    ("gateway", "GET", "/customers/new", "agent"),
    ("gateway", "POST", "/customers/new", "agent"),
]
DASHBOARD = [
    ("gateway", "GET", "/dashboard", "supervisor"),
]
WALL = [
    ("gateway", "GET", "/wall", "supervisor"),
    ("gateway", "GET", "/wall/board", "supervisor"),
]
CAMPAIGNS = [
    ("gateway", "GET", "/campaigns", "supervisor"),
    ("gateway", "GET", "/campaigns/new", "supervisor"),
    ("gateway", "POST", "/campaigns/new", "supervisor"),
    ("gateway", "GET", "/campaigns/<campaign_id>", "supervisor"),
    ("gateway", "POST", "/campaigns/<campaign_id>", "supervisor"),
    ("gateway", "POST", "/campaigns/<campaign_id>/pause", "supervisor"),
    ("gateway", "POST", "/campaigns/<campaign_id>/resume", "supervisor"),
    ("gateway", "GET", "/campaigns/<campaign_id>/entries", "supervisor"),
    ("gateway", "POST", "/campaigns/<campaign_id>/import", "supervisor"),
]
AGENTS = [
    ("gateway", "GET", "/agents", "supervisor"),
    ("gateway", "GET", "/agents/table", "supervisor"),
    ("gateway", "GET", "/agents/new", "supervisor"),
    ("gateway", "POST", "/agents/new", "supervisor"),
    ("gateway", "GET", "/agents/<agent_id>", "supervisor"),
    ("gateway", "POST", "/agents/<agent_id>/skills", "supervisor"),
    ("gateway", "POST", "/agents/<agent_id>/routing", "supervisor"),
    ("gateway", "POST", "/agents/<agent_id>/state", "supervisor"),
]
RECOVERY = [
    ("gateway", "GET", "/recovery", "supervisor"),
    ("gateway", "GET", "/recovery/queue", "supervisor"),
    ("gateway", "POST", "/recovery/<ticket_id>/assign", "supervisor"),
]

PREFERENCES = [
    ("gateway", "GET", "/profile", "agent"),
    ("gateway", "POST", "/profile", "agent"),
    ("gateway", "GET", "/settings", "admin"),
    ("gateway", "POST", "/settings", "admin"),
]

CONSOLE_ROWS = BASE + DESK + TICKETS + CUSTOMERS + DASHBOARD + WALL + CAMPAIGNS + AGENTS + RECOVERY + PREFERENCES
