"""Alembic for one service: ``python -m shared.migrations <service> <alembic args>``.

    python -m shared.migrations tickets revision --autogenerate -m "add tickets"
    python -m shared.migrations tickets current
    python -m shared.migrations tickets upgrade head
"""

from __future__ import annotations

import importlib
import sys

from alembic.config import CommandLine

from shared.config import SERVICES, database_url_for


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in SERVICES:
        raise SystemExit(f"usage: python -m shared.migrations {{{','.join(SERVICES)}}} <alembic command>")
    service, alembic_args = argv[0], argv[1:]
    migrations = importlib.import_module(f"services.{service}.models").MIGRATIONS
    cli = CommandLine(prog=f"python -m shared.migrations {service}")
    options = cli.parser.parse_args(alembic_args)
    cli.run_cmd(migrations.config(database_url_for(service)), options)


if __name__ == "__main__":
    main(sys.argv[1:])
