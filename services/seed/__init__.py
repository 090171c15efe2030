"""Demo data: a month of a call centre's life in every service's database (``make seed``).

A ``Plan`` (the seed number, the moment, the days, the customers) is all the services share:
``plan.build_world`` draws the same world from it anywhere. Each service's seed step
(``seed_service``) runs that service's own ``services/<service>/seed.py`` on that service's own
database, the one its own ``Settings`` name, and opens nothing else: the replicas a service
keeps of other services' records come from the events the demo history would have sent
(``envelopes``), applied by its own consumer handlers, never from another service's database.
So the steps can run in one process (``seed_all``) or one per service, each where only its
database is reachable (``python -m services.seed --service tickets``). Each step skips what it
finds already written. See ``python -m services.seed --help``.
"""

from __future__ import annotations

import functools
import importlib
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from shared.config import Settings
from shared.db import Database, migrate

from .plan import DEFAULT_CUSTOMERS, DEFAULT_DAYS, DEFAULT_SEED, DemoWorld, build_world

__all__ = ["DEFAULT_SEED", "STEPS", "DemoWorld", "Plan", "build_world", "holds_data", "seed_all", "seed_service"]

# The order the steps run in; each is independent of the others (the plan carries what they share).
STEPS = ("tickets", "callrouting", "surveys", "gateway")
# The steps whose data tells a fresh installation (``--if-empty``): the directory's customers, the calls.
FRESH_IF_EMPTY = ("tickets", "callrouting")

Staff = list[tuple[str, str, str, str | None]]  # (user id, name, role, new password or None)


@dataclass(frozen=True)
class Plan:
    """What every service's seed step is given: the world is drawn from it, the same everywhere."""

    seed: int = DEFAULT_SEED
    now: datetime | None = None
    days: int = DEFAULT_DAYS
    customers: int = DEFAULT_CUSTOMERS

    def fixed(self) -> Plan:
        """This plan with its moment fixed (now, unless given), so every step draws the same world."""
        return self if self.now is not None else Plan(self.seed, datetime.now(UTC), self.days, self.customers)

    def world(self) -> DemoWorld:
        return _world(self.fixed())


@functools.lru_cache(maxsize=2)
def _world(plan: Plan) -> DemoWorld:  # one draw per plan in a process that runs several steps
    return build_world(plan.seed, plan.now, plan.days, plan.customers)


def _seed_module(service: str):
    return importlib.import_module(f"services.{service}.seed")


@contextmanager
def own_database(settings: Settings) -> Iterator[Database]:
    """The database of ``settings.service`` (its own URL), migrated; disposed afterwards."""
    from services.__main__ import migrations_of

    database = Database(settings.database_url)
    try:
        migrate(database, migrations_of(settings.service))
        yield database
    finally:
        database.dispose()


def seed_service(settings: Settings, plan: Plan, out: TextIO = sys.stdout) -> tuple[bool, Staff]:
    """One service's step: its part of ``plan``'s world written by its own seed code into its own
    database. (Whether it was written now rather than found, the demo staff: the gateway's.)"""
    module = _seed_module(settings.service)
    world = plan.world()
    with own_database(settings) as database:
        staff = module.write_users(database, world, out, settings) if hasattr(module, "write_users") else []
        return module.write(database, world), staff


def holds_data(settings: Settings) -> bool:
    """Whether the service already holds data of its own (not a fresh installation); only the
    steps in ``FRESH_IF_EMPTY`` say, from their own database."""
    module = _seed_module(settings.service)
    if not hasattr(module, "holds_data"):
        return False
    with own_database(settings) as database:
        return module.holds_data(database)


def seed_all(
    settings: Mapping[str, Settings],
    *,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    days: int = DEFAULT_DAYS,
    customers: int = DEFAULT_CUSTOMERS,
    out: TextIO = sys.stdout,
) -> tuple[DemoWorld, dict[str, bool], Staff]:
    """Run the step of every service in ``settings`` (service -> its own settings), each on its
    own database: (the world, per service whether it was written now or was already there, the
    demo users with their new passwords)."""
    started = time.monotonic()
    plan = Plan(seed, now, days, customers).fixed()
    world = plan.world()
    written, staff = {}, []
    for service in STEPS:
        if service in settings:
            written[service], made = seed_service(settings[service], plan, out)
            staff += made
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
