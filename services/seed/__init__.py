"""Demo data: a month of a call centre's life in every service's database (``make seed``).

``plan.build_world`` draws the world from a seed number; each service's ``seed.py`` writes its
own part into its own database through its own models and handlers (services never write each
other's databases), and skips it when it is already there. See ``python -m services.seed --help``.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TextIO

from shared.db import Database

from .plan import DEFAULT_CUSTOMERS, DEFAULT_DAYS, DEFAULT_SEED, DemoWorld, build_world

__all__ = ["DEFAULT_SEED", "DemoWorld", "build_world", "seed_all"]


def _writers():
    # Imported here: each service's seed module imports this package's plan and envelopes.
    from services.callrouting import seed as callrouting
    from services.gateway import seed as gateway
    from services.surveys import seed as surveys
    from services.tickets import seed as tickets

    return {"tickets": tickets, "callrouting": callrouting, "surveys": surveys, "gateway": gateway}


def is_empty(databases: dict[str, Database]) -> bool:
    """No customers in the directory and no calls: a fresh installation, worth filling with demo data."""
    from sqlalchemy import func, select

    from services.callrouting.models import Call
    from services.tickets.models import Customer

    with databases["tickets"].read_sessions() as session:
        customers = session.scalar(select(func.count()).select_from(Customer))
    with databases["callrouting"].read_sessions() as session:
        calls = session.scalar(select(func.count()).select_from(Call))
    return customers == 0 and calls == 0


def seed_all(
    databases: dict[str, Database],
    *,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    days: int = DEFAULT_DAYS,
    customers: int = DEFAULT_CUSTOMERS,
    out: TextIO = sys.stdout,
) -> tuple[DemoWorld, dict[str, bool], list[tuple[str, str, str, str | None]]]:
    """Write the world of ``seed`` into the four databases (migrated): (the world, per service
    whether it was written now or was already there, the demo users with their new passwords)."""
    started = time.monotonic()
    world = build_world(seed, now, days, customers)
    writers = _writers()
    staff = writers["gateway"].write_users(databases["gateway"], world, out)
    written = {service: writer.write(databases[service], world) for service, writer in writers.items()}
    elapsed = time.monotonic() - started
    for service, done in written.items():
        print(f"{service}: {'demo data written' if done else f'demo data already there (seed {seed})'}", file=out)
    print(
        f"seed {seed}: {len(world.customers)} customers, {len(world.purchases)} purchases, {len(world.calls)} calls,"
        f" {len(world.tickets)} tickets, {len(world.entries)} follow-up entries, {len(world.responses)} survey"
        f" responses from {world.first_day} to {world.now:%Y-%m-%d %H:%M} UTC ({elapsed:.1f} s)",
        file=out,
    )
    return world, written, staff
