"""Gateway users from a shell: ``python -m services.gateway.cli <command>`` (or ``python -m services.gateway``).

    ensure-admin                                 with no users yet, create the first admin (see below)
    users list
    users create ID --role R --name N [--password P]
    users set-password ID [--password P]
    users set-role ID ROLE
    users disable ID                             revokes their sessions and tokens
    users enable ID                              also lifts a sign-in lock
    tokens create ID --label L [--days D]        prints a new API token (only the token, for $(...))

Without ``--password`` a password is asked for on a terminal, else generated and printed.
Agents created (or made agents) here are registered in call routing (``CALLROUTING_URL``).
``ensure-admin`` takes ``GATEWAY_ADMIN_USER`` (default admin) and ``GATEWAY_ADMIN_PASSWORD``,
or prints a generated password once. The database is the gateway's (``Settings.from_env``),
migrated first.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import timedelta
from typing import TextIO

from werkzeug.exceptions import HTTPException

from shared.auth import ALL_ROLES, InternalTokens, User
from shared.config import Settings
from shared.db import Database, migrate
from shared.errors import DomainError

from . import users
from .models import MIGRATIONS
from .upstream import Upstreams

CLI_USER = User("gateway-cli", "admin")  # who call routing sees registering an agent


class CommandFailed(Exception):
    """A sentence for the user; the command exits 1."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m services.gateway.cli",
        description="Gateway users and API tokens.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("ensure-admin", help="create the first admin if there are no users")

    users_parser = commands.add_parser("users", help="list, create and change users").add_subparsers(
        dest="action", required=True
    )
    users_parser.add_parser("list", help="every user")
    create = users_parser.add_parser("create", help="a new user")
    create.add_argument("id")
    create.add_argument("--role", required=True, choices=ALL_ROLES)
    create.add_argument("--name", required=True)
    create.add_argument("--password", help="asked for on a terminal, else generated and printed")
    set_password = users_parser.add_parser("set-password", help="a new password (revokes their tokens)")
    set_password.add_argument("id")
    set_password.add_argument("--password", help="asked for on a terminal, else generated and printed")
    set_role = users_parser.add_parser("set-role", help="a new role")
    set_role.add_argument("id")
    set_role.add_argument("role", choices=ALL_ROLES)
    for action, what in (("disable", "no more sign-ins; their tokens are revoked"), ("enable", "active again")):
        users_parser.add_parser(action, help=what).add_argument("id")

    tokens_parser = commands.add_parser("tokens", help="API tokens").add_subparsers(dest="action", required=True)
    token = tokens_parser.add_parser("create", help="a new API token for a user, printed")
    token.add_argument("id")
    token.add_argument("--label", required=True)
    token.add_argument("--days", type=float, help="lifetime (default API_TOKEN_DAYS, 30)")
    return top


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = parser().parse_args(argv)
    settings = Settings.from_env("gateway")
    database = Database(settings.database_url)
    try:
        migrate(database, MIGRATIONS)
        Command(settings, database, out).run(args)
    except (CommandFailed, ValueError) as error:
        print(f"error: {error}", file=err)
        return 1
    except DomainError as error:  # NotFound, Conflict from users
        print(f"error: {error.detail}", file=err)
        return 1
    except HTTPException as error:
        print(f"error: {error.description}", file=err)
        return 1
    finally:
        database.dispose()
    return 0


class Command:
    def __init__(self, settings: Settings, database: Database, out: TextIO):
        self.settings = settings
        self.database = database
        self.out = out

    def run(self, args: argparse.Namespace) -> None:
        name = args.command if args.command == "ensure-admin" else f"{args.command}-{args.action}"
        getattr(self, name.replace("-", "_"))(args)

    def say(self, line: str) -> None:
        print(line, file=self.out)

    def ensure_admin(self, _args) -> None:
        if users.ensure_first_admin(self.database, self.out, self.settings) is None:
            self.say("there are users already: no first admin created")

    def users_list(self, _args) -> None:
        accounts = users.list_users(self.database)
        width = max((len(account.id) for account in accounts), default=2)
        self.say(f"{'ID':<{width}}  {'ROLE':<10}  {'ACTIVE':<6}  NAME")
        for account in accounts:
            active = "yes" if account.active else "no"
            if account.locked_until is not None and account.locked_until > users.utcnow():
                active += " (locked)"
            self.say(f"{account.id:<{width}}  {account.role:<10}  {active:<6}  {account.name}")

    def users_create(self, args) -> None:
        password = self.new_password(args.id, args.password)
        account = users.create_user(self.database, args.id, args.name, args.role, password)
        self.say(f"created {account.role} {account.id} ({account.name})")
        self.register_if_agent(account)

    def users_set_password(self, args) -> None:
        password = self.new_password(args.id, args.password)
        users.update_user(self.database, args.id, password=password)
        self.say(f"new password for {args.id}; their sessions and tokens are revoked")

    def users_set_role(self, args) -> None:
        account = users.update_user(self.database, args.id, role=args.role)
        self.say(f"{account.id} is now {account.role}")
        self.register_if_agent(account)

    def users_disable(self, args) -> None:
        users.update_user(self.database, args.id, active=False)
        self.say(f"{args.id} is disabled; their sessions and tokens are revoked")

    def users_enable(self, args) -> None:
        users.update_user(self.database, args.id, active=True)
        self.say(f"{args.id} is enabled")

    def tokens_create(self, args) -> None:
        account = users.get_user(self.database, args.id)
        if not account.active:
            raise CommandFailed(f"{account.id} is disabled: enable them first")
        days = args.days if args.days is not None else users.SignInPolicy.from_settings(self.settings).api_token_days
        with self.database.sessions() as session:
            token = users.issue_token(session, account.id, "api", timedelta(days=days), label=args.label)
            session.commit()
        self.say(token)

    # -- helpers -------------------------------------------------------------------------------

    def new_password(self, user_id: str, given: str | None) -> str:
        if given is None and sys.stdin.isatty():
            given = getpass.getpass(f"password for {user_id}: ")
            if getpass.getpass("again: ") != given:
                raise CommandFailed("the passwords differ")
        if given is None:
            password = users.generated_password()
            self.say(f"password for {user_id}: {password}")
            return password
        if problems := users.password_problems(user_id, given):
            raise CommandFailed(" ".join(problems))
        return given

    def register_if_agent(self, account) -> None:
        if account.role != "agent" or not account.active:
            return
        if not self.settings.internal_auth_secret:
            self.say("not registered in call routing: INTERNAL_AUTH_SECRET is unset")
            return
        tokens = InternalTokens(self.settings.internal_auth_secret, self.settings.internal_token_max_age)
        if users.register_agent(Upstreams(self.settings, tokens), account.id, account.name, acting=CLI_USER):
            self.say(f"{account.id} is an agent in call routing")
        else:
            self.say(
                f"NOT registered in call routing (unreachable or refused): "
                f"retry with `users set-role {account.id} agent` once it runs"
            )


if __name__ == "__main__":
    sys.exit(main())
