"""``python -m services.seed``: fill every service's database with demo data (``make seed``).

Each service's step runs that service's own seed code on its own database (``Settings.from_env``
of that service), migrated first; ``--service`` runs only the steps named, e.g. one per
container where only that service's database is reachable (give them the same ``--now``).
Deterministic: the same --seed on the same day gives the same
data. Idempotent: a service that already holds the seed's data is left as it is, and users that
exist keep their passwords. The demo users' new passwords are printed once and kept in
``$VAR_DIR/demo-users.txt`` (readable by you only).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from shared.config import Settings, var_dir

from . import DEFAULT_SEED, FRESH_IF_EMPTY, STEPS, holds_data, seed_all
from .plan import DEFAULT_CUSTOMERS, DEFAULT_DAYS


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"the seed number (default {DEFAULT_SEED})")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of history before today")
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--now", type=_moment, help="the moment the history ends (RFC 3339; default now)")
    parser.add_argument(
        "--service", action="append", choices=STEPS, help="only this service's step (repeatable; default all)"
    )
    parser.add_argument(
        "--if-empty", action="store_true", help="only when the directory has no customers and there are no calls"
    )
    args = parser.parse_args(argv)
    if args.days < 1 or args.customers < 1:
        parser.error("--days and --customers must be at least 1")

    settings = {service: Settings.from_env(service) for service in args.service or STEPS}
    # Each of these steps says from its own database whether it holds data already.
    if args.if_empty and any(holds_data(settings[service]) for service in FRESH_IF_EMPTY if service in settings):
        print("demo data: the databases already hold data; not seeding (make seed adds the demo data anyway)")
        return 0
    _world, _written, staff = seed_all(settings, seed=args.seed, now=args.now, days=args.days, customers=args.customers)
    new = [(user_id, name, role, password) for user_id, name, role, password in staff if password]
    for user_id, name, role, password in staff:
        shown = password or "(existed already: password unchanged)"
        print(f"  {role:<10} {user_id:<8} {name:<18} {shown}")
    if new:
        path = var_dir() / "demo-users.txt"
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as kept:
            kept.writelines(f"{user_id} {role} {password}\n" for user_id, _name, role, password in new)
        print(f"new demo passwords are also in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
