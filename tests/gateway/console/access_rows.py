"""The console's rows of the role matrix (tests/gateway/test_access.py), one list per screen:
(app, method, URL rule, minimum role). A console route without a row fails the coverage test."""

from __future__ import annotations

BASE = [
    ("gateway", "GET", "/", "agent"),
    ("gateway", "POST", "/sign-out", "agent"),
]
DESK = [
    ("gateway", "GET", "/desk", "agent"),
]
TICKETS = [
    ("gateway", "GET", "/tickets", "agent"),
]
CUSTOMERS = [
    ("gateway", "GET", "/customers", "agent"),
]
DASHBOARD = [
    ("gateway", "GET", "/dashboard", "supervisor"),
]
WALL = [
    ("gateway", "GET", "/wall", "supervisor"),
]
CAMPAIGNS = [
    ("gateway", "GET", "/campaigns", "supervisor"),
]
AGENTS = [
    ("gateway", "GET", "/agents", "supervisor"),
]
RECOVERY = [
    ("gateway", "GET", "/recovery", "supervisor"),
]

CONSOLE_ROWS = BASE + DESK + TICKETS + CUSTOMERS + DASHBOARD + WALL + CAMPAIGNS + AGENTS + RECOVERY
