"""SLA configuration: each priority's policy and the business calendar, and this process's cache of them."""

from __future__ import annotations

import secrets
import weakref
from dataclasses import dataclass

from sqlalchemy import select

from shared.db import upsert
from shared.errors import Invalid
from shared.event_catalog import TICKET_PRIORITIES
from shared.unit_of_work import UnitOfWork

from . import domain
from .models import (
    BusinessCalendarRow,
    Counter,
    SlaPolicyRow,
)


def sla_policies(uow: UnitOfWork) -> dict[str, domain.SlaPolicy]:
    return {
        row.priority: domain.SlaPolicy(
            row.priority, row.first_response_minutes, row.resolution_minutes, row.business_hours
        )
        for row in uow.session.scalars(select(SlaPolicyRow))
    }


def policy_list(uow: UnitOfWork, limit: int, offset: int) -> tuple[list[dict], int]:
    """A page of the policies, low to urgent, and how many there are (one per priority at most)."""
    policies = sorted(
        (vars(policy) for policy in sla_policies(uow).values()),
        key=lambda policy: TICKET_PRIORITIES.index(policy["priority"]),
    )
    return policies[offset : offset + limit], len(policies)


def set_sla_policy(uow: UnitOfWork, priority: str, body: dict) -> domain.SlaPolicy:
    row = uow.session.get(SlaPolicyRow, priority)
    if row is None:
        row = SlaPolicyRow(priority=priority)
        uow.session.add(row)
    for name, value in body.items():
        setattr(row, name, value)
    sla_config_changed(uow)
    uow.session.flush()
    policy = domain.SlaPolicy(priority, row.first_response_minutes, row.resolution_minutes, row.business_hours)
    uow.commit()
    return policy


def business_calendar(uow: UnitOfWork) -> domain.BusinessCalendar | None:
    row = uow.session.get(BusinessCalendarRow, 1)
    if row is None:
        return None
    return domain.BusinessCalendar.from_json(row.time_zone, row.hours, row.holidays)


def calendar_view(uow: UnitOfWork) -> dict | None:
    row = uow.session.get(BusinessCalendarRow, 1)
    return None if row is None else {"time_zone": row.time_zone, "hours": row.hours, "holidays": row.holidays}


def set_business_calendar(uow: UnitOfWork, body: dict | None) -> dict | None:
    """Set (or with None remove) the calendar; due times of tickets already open stay as they are."""
    row = uow.session.get(BusinessCalendarRow, 1)
    if body is None:
        if row is not None:
            uow.session.delete(row)
            sla_config_changed(uow)
        uow.commit()
        return None
    try:
        domain.BusinessCalendar.from_json(body["time_zone"], body["hours"], body["holidays"])
    except domain.InvalidCalendar as error:
        raise Invalid({"hours": str(error)}) from None
    if row is None:
        row = BusinessCalendarRow(id=1)
        uow.session.add(row)
    row.time_zone, row.hours, row.holidays = body["time_zone"], body["hours"], sorted(set(body["holidays"]))
    sla_config_changed(uow)
    uow.commit()
    return calendar_view(uow)


# The policies and the calendar change rarely but every new ticket needs them, so each process
# keeps them (per database) with the token of the counters row ``sla_config``, which every change
# replaces in its own transaction. A ticket reads that one row in its transaction and reloads only
# when the token moved: a change is seen by every gunicorn worker from its commit on, and the due
# times can be computed before the write transaction opens.
SLA_CONFIG_COUNTER = "sla_config"


_SLA_TOKEN = select(Counter.__table__.c.value).where(Counter.__table__.c.name == SLA_CONFIG_COUNTER)


@dataclass(frozen=True)
class SlaConfig:
    token: int | None  # None until the first change through the API (the migration's seeds)
    policies: dict[str, domain.SlaPolicy]
    calendar: domain.BusinessCalendar | None

    def clock(self, priority: str) -> tuple[domain.SlaPolicy | None, domain.BusinessCalendar | None]:
        """A priority's policy and the calendar its clock runs on (None: wall-clock time)."""
        policy = self.policies.get(priority)
        if policy is None:
            return None, None
        return policy, domain.clock_of(policy, self.calendar)


_sla_configs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Database -> SlaConfig


def cached_sla_config(uow: UnitOfWork) -> SlaConfig | None:
    """This process's last known configuration: a guess, until checked in a transaction."""
    return _sla_configs.get(uow.database)


def current_sla_config(uow: UnitOfWork) -> SlaConfig:
    """The configuration as of this transaction (one primary-key read when the cache is current)."""
    token = uow.session.connection().execute(_SLA_TOKEN).scalar()
    config = _sla_configs.get(uow.database)
    if config is None or config.token != token:
        config = SlaConfig(token, sla_policies(uow), business_calendar(uow))
        _sla_configs[uow.database] = config
    return config


def sla_config_changed(uow: UnitOfWork) -> None:
    """Called in the transaction that changes a policy or the calendar: every process reloads."""
    upsert(
        uow.session,
        Counter.__table__,
        {"name": SLA_CONFIG_COUNTER, "value": secrets.randbelow(2**31 - 1) + 1},
        key=("name",),
    )


def sla_clock(uow: UnitOfWork, priority: str) -> tuple[domain.SlaPolicy | None, domain.BusinessCalendar | None]:
    return current_sla_config(uow).clock(priority)
