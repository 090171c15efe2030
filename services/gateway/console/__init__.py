"""The web console: server-rendered pages for agents and supervisors, served by the gateway at ``/``.

One Flask blueprint (``base.console``); each module holds the pages of one screen and their
htmx actions, and its ``ACCESS`` rules (which role each route needs beyond an agent):

- ``auth_pages``: sign-in and sign-out, and ``/`` which sends each role to its screen;
- ``desk``: the agent's desk: my state, the next follow-up call with its script, outcome and the
  five 1-10 questions, the screen-pop of a ringing call, the wrap-up of an inbound call;
- ``tickets`` and ``customers``: ticket queues and a ticket's history; customer search and one
  customer's timeline;
- ``dashboard`` and ``wall``: the supervisor's daily dashboard and the live wall;
- ``campaigns``, ``agents`` and ``recovery``: call lists, agents and the service-recovery queue;
- ``mail``: a ticket's mail thread and a customer's mails (fragments the ticket and timeline pages load).
- ``preferences``: my language and time zone (``/profile``), the center's settings (``/settings``);
- ``i18n``: the viewer's language and zone (Flask-Babel), and the formatting every template uses.
"""

from __future__ import annotations

from . import (
    agents,
    auth_pages,
    campaigns,
    customers,
    dashboard,
    desk,
    i18n,
    mail,
    preferences,
    privacy_pages,
    recovery,
    tickets,
    wall,
)
from .base import console, denied

SCREENS = (
    auth_pages,
    desk,
    tickets,
    customers,
    dashboard,
    wall,
    campaigns,
    agents,
    recovery,
    preferences,
    privacy_pages,
    mail,
)
ACCESS = [rule for screen in SCREENS for rule in screen.ACCESS]

__all__ = ["ACCESS", "console", "denied", "i18n"]
