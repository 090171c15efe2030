"""Commands over all services: ``python -m services <command>``.

setup                              migrate every service's database, declare the broker topology,
                                   and create the first admin when the gateway has no users
migrate [<service> ...]            migrate the databases only (all services, or those named): the
                                   one-shot job of a deployment, before the replicas roll
alembic <service> <alembic args>   Alembic for one service, e.g.
                                   alembic tickets revision --autogenerate -m "add tickets"
surveys rebuild-rollups            recompute the survey rollups from the stored responses
                                   (idempotent; safe while the service runs: docs/surveys.md)
"""

from __future__ import annotations

import importlib
import sys

from alembic.config import CommandLine

from shared.broker import declare_topology
from shared.config import SERVICES, Settings
from shared.db import Database, migrate


def migrations_of(service: str):
    return importlib.import_module(f"services.{service}.models").MIGRATIONS


def migrate_all(services=SERVICES) -> None:
    for service in services:
        settings = Settings.from_env(service)
        database = Database(settings.database_url)
        migrate(database, migrations_of(service), force=True)
        database.dispose()
        print(f"{service}: database at {database.engine.url.render_as_string()} is migrated")


def setup() -> None:
    migrate_all()
    declare_topology(Settings.from_env(SERVICES[0]))
    print("broker topology declared")
    # The first admin: GATEWAY_ADMIN_USER / GATEWAY_ADMIN_PASSWORD, or a generated password printed once.
    from services.gateway.users import ensure_first_admin

    settings = Settings.from_env("gateway")
    gateway = Database(settings.database_url)
    try:
        ensure_first_admin(gateway, sys.stdout, settings)
    except ValueError as refused:  # GATEWAY_ADMIN_PASSWORD fails the password policy
        raise SystemExit(f"first admin not created: {refused}") from None
    finally:
        gateway.dispose()


def alembic(service: str, args: list[str]) -> None:
    settings = Settings.from_env(service)
    cli = CommandLine(prog=f"python -m services alembic {service}")
    cli.run_cmd(migrations_of(service).config(settings.database_url), cli.parser.parse_args(args))


def main(argv: list[str]) -> None:
    if argv[:1] == ["setup"]:
        setup()
    elif argv[:1] == ["migrate"] and set(argv[1:]) <= set(SERVICES):
        migrate_all(tuple(argv[1:]) or SERVICES)
    elif argv[:1] == ["alembic"] and len(argv) >= 2 and argv[1] in SERVICES:
        alembic(argv[1], argv[2:])
    elif argv[:2] == ["surveys", "rebuild-rollups"] and len(argv) == 2:
        from services.surveys.rebuild import main as surveys_main

        surveys_main(argv[1:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
