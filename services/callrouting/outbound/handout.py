"""The hand-out: which due entry an agent gets next, and its lease.

The rule itself is :func:`.domain.next_entry_for` (pure, no I/O); this module is its SQL form,
fast enough to run for every agent all day: the eligible set (``_pick_statements``: pending,
due, an active campaign the agent's skills may work, a zone inside its calling window now) and
the uniform draw over it (``_pick``, ``domain.pick_uniformly``), then one conditional UPDATE
that leases the entry (``next_call``).
"""

from __future__ import annotations

import bisect
import functools
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, and_, bindparam, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session

from shared.errors import NotFound
from shared.models import utcnow
from shared.unit_of_work import UnitOfWork

from ..models import Agent, CallEntry, CallTimeZone, Campaign, CustomerReplica, CustomerReplicaPhone, DoNotCall
from . import domain

DEFAULT_LEASE_SECONDS = 900
_RNG = random.SystemRandom()  # the hand-out's randomness: os.urandom, never a fixed seed, fork-safe


@dataclass
class HandOut:
    """Rows of the entry, its campaign and its customer (read-only, as handed out)."""

    entry: Any
    campaign: Any
    customer: Any
    attempt: int
    renewed: bool  # the agent already held this lease


class _ShortCache:
    """Values this process may reuse for a second: the pool's size (it only sets the slice width,
    see domain.pick_uniformly), the active campaigns and zones. A campaign
    paused in another process therefore stops handing out within a second."""

    def __init__(self, seconds: float = 1.0):
        self.seconds = seconds
        self.values: dict[tuple, tuple[float, Any]] = {}

    def get(self, key: tuple) -> Any:
        held = self.values.get(key)
        return held[1] if held and held[0] > time.monotonic() else None

    def put(self, key: tuple, value: Any) -> None:
        if len(self.values) > 10_000:
            self.values.clear()
        self.values[key] = (time.monotonic() + self.seconds, value)

    def clear(self) -> None:
        self.values.clear()


_POOL_SIZES = _ShortCache()
_RECENT = _ShortCache()  # campaigns and zones


def forget_recent() -> None:
    """This process changed campaigns or agents: read them afresh."""
    _RECENT.clear()


# The hand-out runs for every agent all day long, so it speaks SQLAlchemy Core to the tables
# (the ORM's per-statement bookkeeping costs more than these small indexed statements).
_ENTRIES = CallEntry.__table__
_AGENTS = Agent.__table__
_CAMPAIGNS = Campaign.__table__
_REPLICAS = CustomerReplica.__table__
_REPLICA_PHONES = CustomerReplicaPhone.__table__
_DO_NOT_CALL = DoNotCall.__table__


def _callable_campaigns(reader: Connection, url: str, skills: tuple[str, ...], now: datetime) -> dict[str, tuple]:
    """{campaign id: (its row, zones callable now)} for every active campaign these skills may work."""
    key = ("campaigns", url)
    known = _RECENT.get(key)
    if known is None:
        zones = reader.execute(select(CallTimeZone.__table__.c.time_zone)).scalars().all()
        active = reader.execute(select(_CAMPAIGNS).where(_CAMPAIGNS.c.active.is_(True))).all()
        known = (zones, active)
        _RECENT.put(key, known)
    zones, active = known
    found = {}
    for campaign in active:
        if campaign.required_skill and campaign.required_skill not in skills:
            continue
        callable_now = domain.callable_time_zones(campaign.calling_window, zones, now)
        if callable_now:
            found[campaign.campaign_id] = (campaign, tuple(callable_now))
    return found


def sweep_lapsed_leases_job(database, _settings) -> None:
    """The worker's periodic job: lapsed leases back to the pool even when nobody asks for a call,
    so that lists and reports do not show them as leased. (The hand-out sweeps them too.)"""
    with UnitOfWork(database, source="callrouting") as uow:
        while _sweep_expired_leases(uow.session, utcnow()):
            pass
        uow.commit()


def _sweep_expired_leases(session: Session, now: datetime) -> int:
    """Entries whose agent let the lease lapse go back to the pool (no attempt is counted)."""
    expired = (
        select(_ENTRIES.c.entry_id)
        .where(_ENTRIES.c.state == "leased", _ENTRIES.c.lease_expires_at <= now)
        .limit(100)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return session.execute(
        update(_ENTRIES)
        .where(_ENTRIES.c.entry_id.in_(expired))
        .values(state="pending", leased_by=None, leased_at=None, lease_expires_at=None, updated_at=now)
    ).rowcount


def next_call(
    uow: UnitOfWork, agent_id: str, now: datetime | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> HandOut | None:
    """Lease one due, callable entry to the agent, chosen uniformly at random; None when none is.

    An agent who already holds an unexpired lease gets that entry again (asking twice, say after
    a reload, must not take a second customer out of the pool). Lapsed leases go back to the
    pool first.

    The pick reads a snapshot (a deferred read transaction: on SQLite it neither takes nor waits
    for the write lock), and the lease is one conditional UPDATE in the unit of work's short write
    transaction: ``WHERE entry_id = (the pick, if still pending)``, whose sub-select on PostgreSQL
    is ``FOR UPDATE SKIP LOCKED``. If another agent took that entry meanwhile, nothing is updated
    and the draw is repeated on a fresh snapshot, so no entry ever goes to two agents and each
    hand-out is uniform over the entries still free. (On SQLite the write transaction is BEGIN
    IMMEDIATE: one writer at a time, holding the lock for two short statements.) A customer found
    on the do-not-call list at this point has the entry cancelled, and the draw is repeated.
    """
    now = now or utcnow()
    session = uow.session
    picked = None
    for _ in range(50):
        # A bare Core connection, not a Session: the snapshot's few statements need no ORM, and
        # the Session's per-statement bookkeeping costs more than running them.
        with uow.database.reader.connect() as reader:
            if picked is None:  # the first snapshot: what the agent holds, lapsed leases
                agent = reader.execute(_AGENT_HELD_AND_LAPSED, {"agent": agent_id, "now": now}).first()
                if agent is None:
                    raise NotFound(f"No agent {agent_id}.")
                skills, held_id, lapsed = tuple(agent.skills or ()), agent.held_id, agent.lapsed
                campaigns = _callable_campaigns(reader, uow.database.url, skills, now)
                if held_id is not None:
                    held = reader.execute(select(_ENTRIES).where(_ENTRIES.c.entry_id == held_id)).one()
                    # On PostgreSQL each statement reads a fresh snapshot: the lease may have been
                    # released (None) since the query above. Then it is not held; draw as usual.
                    if held.lease_expires_at is not None and held.lease_expires_at > now:
                        customer = reader.execute(
                            select(_REPLICAS).where(_REPLICAS.c.customer_id == held.customer_id)
                        ).first()
                        return _hand_out(reader, held, customer, campaigns, renewed=True)
                if lapsed:
                    with UnitOfWork(uow.database, uow.source) as sweep:
                        _sweep_expired_leases(sweep.session, now)
                        sweep.commit()
                    continue  # a fresh snapshot that sees them back in the pool
                if not campaigns:
                    return None
                parts = tuple((campaign_id, zones) for campaign_id, (_, zones) in sorted(campaigns.items()))
                statements = _pick_statements(parts)
                cache_key = (uow.database.url, parts)
            picked = _pick(reader, statements, cache_key, now)
        if picked is None:
            return None
        lease = {"picked": picked, "agent": agent_id, "now": now, "until": now + timedelta(seconds=lease_seconds)}
        # The lease and the re-check are Core statements on the write transaction's connection
        # (the same transaction as the Session's, without its per-statement work).
        entry = session.connection().execute(_LEASE, lease).first()
        if entry is None:
            continue  # another agent took it since the snapshot: draw again
        customer, do_not_call = _customer_and_consent(session.connection(), entry.customer_id)
        if do_not_call:
            session.execute(
                update(_ENTRIES)
                .where(_ENTRIES.c.entry_id == entry.entry_id)
                .values(state="cancelled", leased_by=None, leased_at=None, lease_expires_at=None, closed_at=now)
            )
            uow.commit()
            continue
        uow.commit()
        return _hand_out(session, entry, customer, campaigns, renewed=False)
    return None


def _customer_and_consent(session: Session | Connection, customer_id: str):
    """The replicated customer (or None) and whether they are on the do-not-call list, in one read."""
    row = session.execute(_CUSTOMER_AND_CONSENT, {"customer": customer_id}).first()
    if row is None:  # not replicated (yet): only the list can say
        return None, bool(session.execute(_CONSENT_ONLY, {"customer": customer_id}).scalar())
    return row, bool(row.do_not_call or row.listed)


# The hand-out's fixed statements, built once (building a statement costs more than running it).
# The first snapshot's reads in one statement (each statement costs ~100 µs of Python): the
# agent's skills (no row: an unknown agent), the entry they hold, whether any lease lapsed.
# Only a leased entry has a holder (every way out of "leased" clears it): the partial index.
_AGENT_HELD_AND_LAPSED = select(
    _AGENTS.c.skills,
    select(_ENTRIES.c.entry_id)
    .where(_ENTRIES.c.leased_by == bindparam("agent"))
    .limit(1)
    .scalar_subquery()
    .label("held_id"),
    exists().where(_ENTRIES.c.state == "leased", _ENTRIES.c.lease_expires_at <= bindparam("now")).label("lapsed"),
).where(_AGENTS.c.agent_id == bindparam("agent"))
_LEASE = (
    update(_ENTRIES)
    .where(
        _ENTRIES.c.entry_id
        == select(_ENTRIES.c.entry_id)
        .where(_ENTRIES.c.entry_id == bindparam("picked"), _ENTRIES.c.state == "pending")
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    .values(
        state="leased",
        leased_by=bindparam("agent"),
        leased_at=bindparam("now"),
        lease_expires_at=bindparam("until"),
        updated_at=bindparam("now"),
    )
    .returning(*_ENTRIES.c)
)
_LISTED = exists().where(
    or_(
        _DO_NOT_CALL.c.customer_id == bindparam("customer"),
        _DO_NOT_CALL.c.phone.in_(
            select(_REPLICA_PHONES.c.phone).where(_REPLICA_PHONES.c.customer_id == bindparam("customer"))
        ),
    )
)
_CUSTOMER_AND_CONSENT = select(*_REPLICAS.c, _LISTED.label("listed")).where(
    _REPLICAS.c.customer_id == bindparam("customer")
)
_CONSENT_ONLY = select(_LISTED)


@dataclass(frozen=True)
class _PickStatements:
    """The pick's queries for one set of (campaign, callable zones), built once per process."""

    count: Any
    slice: Any
    slices: Any
    nth: Any


_SLICE_PARTS = 2 * domain.SLICES_PER_READ  # each slice may wrap past 1 into two ranges


@functools.lru_cache(maxsize=256)
def _pick_statements(parts: tuple[tuple[str, tuple[str, ...]], ...]) -> _PickStatements:
    eligible = and_(
        _ENTRIES.c.state == "pending",
        _ENTRIES.c.due_at <= bindparam("now"),
        or_(
            *(
                # One bound value per zone: a plain in_(zones) is an "expanding" parameter, whose
                # SQL SQLAlchemy renders again at every execution (~50 µs a pick); the SQL is the same.
                and_(_ENTRIES.c.campaign_id == campaign_id, _ENTRIES.c.time_zone.in_([literal(z) for z in zones]))
                for campaign_id, zones in parts
            )
        ),
    )
    key = _ENTRIES.c.shuffle_key
    return _PickStatements(
        count=select(func.count()).select_from(_ENTRIES).where(eligible),
        slice=select(_ENTRIES.c.entry_id)
        .where(eligible, key >= bindparam("low"), key < bindparam("high"))
        .limit(bindparam("limit", type_=Integer)),
        slices=select(_ENTRIES.c.entry_id, key)
        .where(
            eligible,
            or_(*(and_(key >= bindparam(f"low{n}"), key < bindparam(f"high{n}")) for n in range(_SLICE_PARTS))),
        )
        .limit(bindparam("limit", type_=Integer)),
        nth=select(_ENTRIES.c.entry_id)
        .where(eligible)
        .order_by(key)
        .offset(bindparam("offset", type_=Integer))
        .limit(1),
    )


def _pick(reader: Connection, statements: _PickStatements, cache_key: tuple, now: datetime) -> str | None:
    """A uniformly random eligible entry id (domain.pick_uniformly), read from one snapshot."""

    def count() -> int:
        size = reader.execute(statements.count, {"now": now}).scalar()
        _POOL_SIZES.put(cache_key, size)
        return size

    def one_slice(low: float, high: float, limit: int) -> list[str]:
        ids: list[str] = []
        for start, end in domain.key_ranges(low, high):
            parameters = {"now": now, "low": start, "high": end, "limit": limit - len(ids)}
            ids += reader.execute(statements.slice, parameters).scalars().all()
            if len(ids) >= limit:
                break
        return ids

    def fetch_slices(slices: list[tuple[float, float]], limit: int) -> list[list[str]]:
        if len(slices) == 1:
            return [one_slice(*slices[0], limit)]
        ranges = [part for low, high in slices for part in domain.key_ranges(low, high)]
        parameters = {"now": now, "limit": limit * len(slices)}
        for n in range(_SLICE_PARTS):
            low, high = ranges[n] if n < len(ranges) else (0.0, 0.0)  # an empty range
            parameters[f"low{n}"], parameters[f"high{n}"] = low, high
        rows = reader.execute(statements.slices, parameters).all()
        if len(rows) >= limit * len(slices):  # maybe cut short: read them one by one
            return [one_slice(low, high, limit) for low, high in slices]
        rows.sort(key=lambda row: row[1])
        keys = [row[1] for row in rows]
        found = []
        for low, high in slices:
            ids = []
            for start, end in domain.key_ranges(low, high):
                ids += [row[0] for row in rows[bisect.bisect_left(keys, start) : bisect.bisect_left(keys, end)]]
            found.append(ids[:limit])
        return found

    def draw_exactly(rng) -> str | None:
        size = count()
        if not size:
            return None
        return reader.execute(statements.nth, {"now": now, "offset": rng.randrange(size)}).scalar()

    estimate = _POOL_SIZES.get(cache_key)
    if estimate is None:
        estimate = count()
    if estimate == 0:
        return None
    return domain.pick_uniformly(estimate, fetch_slices, draw_exactly, _RNG)


def _hand_out(session: Session | Connection, entry, customer, campaigns: dict, *, renewed: bool) -> HandOut:
    if entry.campaign_id in campaigns:
        campaign = campaigns[entry.campaign_id][0]
    else:  # a lease held on a campaign paused since, or outside its window now
        campaign = session.execute(select(_CAMPAIGNS).where(_CAMPAIGNS.c.campaign_id == entry.campaign_id)).first()
    return HandOut(entry=entry, campaign=campaign, customer=customer, attempt=entry.attempts + 1, renewed=renewed)
