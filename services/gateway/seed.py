"""The demo people and the customers the gateway has heard of, in the gateway's database.

Users are made with ``users.create_user`` (each with a generated password, returned once to be
shown: only its hash is stored); the first admin with ``users.ensure_first_admin`` when there
are no users yet. The agents' registration in call routing is the call-routing seed's part (the
gateway's /users API asks call routing the same over HTTP). The customer replica is fed the
demo world's ``customer.created`` events through the gateway's own consumer handler.
"""

from __future__ import annotations

from typing import TextIO

from services.seed import envelopes
from shared.config import Settings
from shared.db import Database
from shared.errors import Conflict
from shared.unit_of_work import UnitOfWork

from . import events, users
from .models import CustomerReplica, UserAccount

SOURCE = "gateway"


def write_users(database: Database, world, out: TextIO, settings: Settings) -> list[tuple[str, str, str, str | None]]:
    """Make the demo staff that is missing: (id, name, role, password, or None if they were there).

    With no users at all the first admin comes first, as ``python -m services setup`` makes it
    (its password printed to ``out`` by ``ensure_first_admin``)."""
    made = []
    users.ensure_first_admin(database, out, settings)
    for user in world.users:
        with database.read_sessions() as session:
            known = session.get(UserAccount, user.id) is not None
        if known:
            made.append((user.id, user.name, user.role, None))
            continue
        password = users.generated_password()
        try:
            users.create_user(database, user.id, user.name, user.role, password)
        except Conflict:  # made meanwhile by another run
            made.append((user.id, user.name, user.role, None))
            continue
        made.append((user.id, user.name, user.role, password))
    return made


def write(database: Database, world) -> bool:
    """The customer replica of ``world``; False (and nothing written) when it is already there."""
    with UnitOfWork(database, SOURCE) as uow:
        if uow.session.get(CustomerReplica, world.marker) is not None:
            return False
        for customer in world.customers:
            events.HANDLERS["customer.created"](uow, envelopes.customer_created(world, customer))
        uow.commit()
    return True
