"""Users, passwords and the tokens that prove a sign-in.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second profile). A
sign-in gives an opaque random token; only its SHA-256 is stored, with an expiry, so a
stolen database yields no usable token and sign-out is a revocation. The console keeps its
token in an HttpOnly cookie and must echo a CSRF token (an HMAC of the session token) on
every write; API clients send theirs as ``Authorization: Bearer``, which needs no CSRF token
because no browser sends it by itself.

Sign-in is throttled per account: an attempt is counted *before* its password is checked, in
one conditional UPDATE (compare-and-set on the failure count), so however many gunicorn
workers race, each attempt is counted once and none slips past a wait another one set. A
success resets the count. After ``slow_after`` failures in a row the next attempt must wait
2^(n - slow_after) seconds; after ``lock_after`` the account is locked ``lock_minutes``.

Failures are also counted per client address (``SIGN_IN_ADDRESS_SLOW_AFTER``, 20: one guess
each at many accounts from one place is slowed too; a success does not reset it, it lapses
``lock_minutes`` after the last failure) and per user id that is no account, like an account's
(``SignInThrottle``), so throttling answers the same whether an id exists or not.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_request_context, request
from sqlalchemy import bindparam, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import Forbidden  # a missing CSRF token: an HTTP-level check, not a use case's

from shared.auth import ALL_ROLES, User
from shared.config import Settings
from shared.db import Database, get_or_not_found
from shared.errors import Conflict
from shared.schemas import page_of

from .models import AuthToken, SignInThrottle, UserAccount
from .upstream import Upstreams, UpstreamUnavailable

SESSION_COOKIE = "cc_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
_hasher = PasswordHasher()
log = logging.getLogger(__name__)

USER_ID_PATTERN = r"^[A-Za-z0-9._@:\-]{1,64}$"  # call routing's agent ids: an agent's user id is theirs
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 would hash a megabyte too, but slowly: a cheap denial of service


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- passwords ------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _decoy_hash() -> str:
    # Checked against for unknown users, so a wrong user id costs as long as a wrong password.
    return _hasher.hash(secrets.token_urlsafe(16))


def password_problems(user_id: str, password: str) -> list[str]:
    """What is wrong with ``password`` as ``user_id``'s new password (nothing: an empty list)."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"A password has at most {MAX_PASSWORD_LENGTH} characters.")
    if password.strip().casefold() == user_id.strip().casefold():
        problems.append("The password must not be the user id.")
    return problems


def generated_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 bits


# --- tokens ---------------------------------------------------------------------------------


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(session_token: str, secret: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def issue_token(
    session, user_id: str, kind: str, lifetime: timedelta, label: str | None = None, now: datetime | None = None
) -> str:
    """A new token for ``user_id`` (added to ``session``; the caller commits). Returns the token."""
    token = secrets.token_urlsafe(32)
    now = now or utcnow()
    session.add(
        AuthToken(
            token_hash=token_digest(token),
            user_id=user_id,
            kind=kind,
            label=label,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


# Built once: every request of the gateway is authenticated by it.
_LIVE_TOKEN_OWNER = (
    select(UserAccount.id, UserAccount.role)
    .join(AuthToken, AuthToken.user_id == UserAccount.id)
    .where(
        AuthToken.token_hash == bindparam("token_hash"),
        AuthToken.revoked_at.is_(None),
        AuthToken.expires_at > bindparam("now", type_=AuthToken.expires_at.type),
        UserAccount.active.is_(True),
    )
)


def user_for_token(database: Database, token: str) -> User | None:
    """The active user a live (unexpired, unrevoked) token belongs to."""
    with database.reader.connect() as connection:  # a read: no write lock on SQLite
        row = connection.execute(_LIVE_TOKEN_OWNER, {"token_hash": token_digest(token), "now": utcnow()}).first()
    if row is None or row.role not in ALL_ROLES:
        return None
    return User(row.id, row.role)


def presented_token() -> tuple[str, str] | None:
    """The token this request presents: ("bearer", token), ("cookie", token) or None."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return "bearer", header[7:].strip()
    session_token = request.cookies.get(SESSION_COOKIE)
    return ("cookie", session_token) if session_token else None


def authenticate() -> User | None:
    """The gateway's way to recognise a caller: a bearer token, or the console's cookie + CSRF."""
    database = current_app.extensions["database"]
    presented = presented_token()
    if presented is None:
        return None
    how, session_token = presented
    if how == "bearer":
        return user_for_token(database, session_token)
    user = user_for_token(database, session_token)
    if user is not None and request.method not in _SAFE_METHODS:
        expected = csrf_token_for(session_token, current_app.extensions["settings"].internal_auth_secret or "")
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), expected):
            raise Forbidden(f"A signed-in console write needs its CSRF token in {CSRF_HEADER}.")
    return user


def revoke_token(database: Database, token: str, now: datetime | None = None) -> None:
    with database.sessions() as session:
        session.execute(
            update(AuthToken)
            .where(AuthToken.token_hash == token_digest(token), AuthToken.revoked_at.is_(None))
            .values(revoked_at=now or utcnow())
        )
        session.commit()


def revoke_tokens_of(session, user_id: str, now: datetime, keep: str | None = None) -> None:
    """Revoke every live token of ``user_id`` (but ``keep``, a token hash) in ``session``'s transaction."""
    statement = update(AuthToken).where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
    if keep is not None:
        statement = statement.where(AuthToken.token_hash != keep)
    session.execute(statement.values(revoked_at=now))


def live_tokens_page(
    database: Database, user_id: str, limit: int, offset: int, now: datetime | None = None
) -> tuple[list[AuthToken], int]:
    """One page of ``user_id``'s live tokens (oldest first) and how many they have in all."""
    query = (
        select(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None), AuthToken.expires_at > (now or utcnow()))
        .order_by(AuthToken.created_at, AuthToken.token_hash)
    )
    with database.read_sessions() as session:
        return page_of(session, query, limit, offset, scalars=True)


def revoke_token_of(database: Database, user_id: str, token_id: str, now: datetime | None = None) -> bool:
    """Revoke ``user_id``'s token whose id (its hash) is ``token_id``; False if they have no such live token."""
    with database.sessions() as session:
        result = session.execute(
            update(AuthToken)
            .where(AuthToken.token_hash == token_id, AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
            .values(revoked_at=now or utcnow())
        )
        session.commit()
    return result.rowcount == 1


# --- sign-in and its throttling -------------------------------------------------------------


@dataclass(frozen=True)
class SignInPolicy:
    slow_after: int = 3  # failures in a row before each further attempt must wait
    lock_after: int = 10  # failures in a row that lock the account
    lock_minutes: float = 15.0
    address_slow_after: int = 20  # failures from one client address before each further attempt waits
    session_hours: float = 12.0  # a console session's lifetime
    api_token_days: float = 30.0  # an API token's default lifetime

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInPolicy:
        return cls(
            slow_after=int(settings.option("SIGN_IN_SLOW_AFTER", "3")),
            lock_after=int(settings.option("SIGN_IN_LOCK_AFTER", "10")),
            lock_minutes=float(settings.option("SIGN_IN_LOCK_MINUTES", "15")),
            address_slow_after=int(settings.option("SIGN_IN_ADDRESS_SLOW_AFTER", "20")),
            session_hours=float(settings.option("SESSION_HOURS", "12")),
            api_token_days=float(settings.option("API_TOKEN_DAYS", "30")),
        )

    @property
    def lock(self) -> timedelta:
        return timedelta(minutes=self.lock_minutes)

    def lifetime(self, kind: str) -> timedelta:
        return timedelta(hours=self.session_hours) if kind == "session" else timedelta(days=self.api_token_days)

    def after_failure(self, failures: int, now: datetime) -> dict:
        """The throttling columns once ``failures`` attempts in a row have failed."""
        if failures >= self.lock_after:
            return {"failed_sign_ins": failures, "locked_until": now + self.lock}
        if failures >= self.slow_after:
            wait = min(2.0 ** (failures - self.slow_after), self.lock.total_seconds())
            return {"failed_sign_ins": failures, "next_attempt_at": now + timedelta(seconds=wait)}
        return {"failed_sign_ins": failures}


class SignInThrottled(Exception):
    """Too many failed sign-ins: no attempt is checked before ``until``."""

    def __init__(self, until: datetime, now: datetime, locked: bool):
        super().__init__(f"throttled until {until.isoformat()}")
        self.until = until
        self.locked = locked
        self.retry_after = max(1, math.ceil((until - now).total_seconds()))


_CLAIM_ROUNDS = 20  # compare-and-set retries before a hot contended account is told to wait a second


def check_password(
    database: Database, user_id: str, password: str, policy: SignInPolicy, now: datetime
) -> UserAccount | None:
    """The active account ``user_id`` if ``password`` is theirs, else None; throttled per account.

    Raises ``SignInThrottled`` (without checking the password) while the account must wait or
    is locked. An unknown or inactive user costs one hash check too, so timing tells nothing.
    """
    address = client_address()
    address_key = f"address:{address}" if address is not None else None
    if address_key:
        _wait_if_throttled(database, address_key, now)
    for _round in range(_CLAIM_ROUNDS):
        with database.read_sessions() as session:
            account = session.get(UserAccount, user_id)
        if account is None or not account.active:
            unknown_key = f"user:{user_id}"
            _wait_if_throttled(database, unknown_key, now)
            password_matches(_decoy_hash(), password)
            _count_failure(database, unknown_key, policy.slow_after, policy, now)
            if address_key:
                _count_failure(database, address_key, policy.address_slow_after, policy, now)
            return None
        if account.locked_until is not None and account.locked_until > now:
            raise SignInThrottled(account.locked_until, now, locked=True)
        if account.next_attempt_at is not None and account.next_attempt_at > now:
            raise SignInThrottled(account.next_attempt_at, now, locked=False)
        if _count_attempt(database, account, policy, now):
            break
    else:
        raise SignInThrottled(now + timedelta(seconds=1), now, locked=False)
    if not password_matches(account.password_hash, password):
        if address_key:
            _count_failure(database, address_key, policy.address_slow_after, policy, now)
        return None  # already counted as the account's failure
    changes = {"failed_sign_ins": 0, "next_attempt_at": None, "locked_until": None}
    if _hasher.check_needs_rehash(account.password_hash):
        changes["password_hash"] = hash_password(password)  # argon2's parameters have grown since
    with database.sessions() as session:
        session.execute(update(UserAccount).where(UserAccount.id == user_id).values(**changes))
        # Sessions pile up (one per sign-in): drop this user's expired ones while we are here.
        session.execute(delete(AuthToken).where(AuthToken.user_id == user_id, AuthToken.expires_at <= now))
        session.commit()
    return account


def client_address() -> str | None:
    """Who is signing in, as far as the network says: the peer, or with ``PROXY_HOPS`` trusted
    proxies the address the outermost of them saw (``X-Forwarded-For``)."""
    if not has_request_context():
        return None
    hops = current_app.extensions["settings"].proxy_hops
    if hops > 0:
        chain = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops][:100]
    return (request.remote_addr or "unknown")[:100]


def _wait_if_throttled(database: Database, key: str, now: datetime) -> None:
    """``SignInThrottled`` while ``key`` must wait (checked before any password)."""
    with database.read_sessions() as session:
        until = session.scalar(select(SignInThrottle.next_attempt_at).where(SignInThrottle.key == key))
    if until is not None and until > now:
        raise SignInThrottled(until, now, locked=False)


def _count_failure(database: Database, key: str, slow_after: int, policy: SignInPolicy, now: datetime) -> None:
    """Count a failed sign-in under ``key``; from ``slow_after`` failures on, the next attempt
    waits 2^(n - slow_after) s (at most ``lock_minutes``). The count lapses ``lock_minutes``
    after its last failure; it grows by one in one UPDATE, so racing workers each count."""
    with database.sessions() as session:
        row = session.get(SignInThrottle, key)
        if row is None:
            try:
                session.add(SignInThrottle(key=key, failures=1, last_failure_at=now))
                session.commit()
                return
            except IntegrityError:
                session.rollback()  # another worker counted the first one: count on theirs
        lapsed = now - policy.lock
        session.execute(
            update(SignInThrottle)
            .where(SignInThrottle.key == key)
            .values(
                failures=case((SignInThrottle.last_failure_at < lapsed, 1), else_=SignInThrottle.failures + 1),
                last_failure_at=now,
            )
        )
        failures = session.scalar(select(SignInThrottle.failures).where(SignInThrottle.key == key))
        if failures >= slow_after:
            wait = min(2.0 ** (failures - slow_after), policy.lock.total_seconds())
            session.execute(
                update(SignInThrottle)
                .where(SignInThrottle.key == key)
                .values(next_attempt_at=now + timedelta(seconds=wait))
            )
        session.commit()


def _count_attempt(database: Database, account: UserAccount, policy: SignInPolicy, now: datetime) -> bool:
    """Count this attempt as a failure (undone on success) if nobody else changed the count meanwhile."""
    statement = (
        update(UserAccount)
        .where(
            UserAccount.id == account.id,
            UserAccount.failed_sign_ins == account.failed_sign_ins,
            or_(UserAccount.next_attempt_at.is_(None), UserAccount.next_attempt_at <= now),
            or_(UserAccount.locked_until.is_(None), UserAccount.locked_until <= now),
        )
        .values(**policy.after_failure(account.failed_sign_ins + 1, now))
    )
    with database.sessions() as session:
        counted = session.execute(statement).rowcount == 1
        session.commit()
    return counted


@dataclass(frozen=True)
class SignedIn:
    account: UserAccount
    token: str
    expires_at: datetime


def sign_in(
    database: Database,
    user_id: str,
    password: str,
    kind: str,
    policy: SignInPolicy,
    now: datetime,
    label: str | None = None,
) -> SignedIn | None:
    """A new session or API token for ``user_id`` if ``password`` is theirs (``check_password``)."""
    account = check_password(database, user_id, password, policy, now)
    if account is None:
        return None
    lifetime = policy.lifetime(kind)
    with database.sessions() as session:
        token = issue_token(session, account.id, kind, lifetime, label=label, now=now)
        session.commit()
    return SignedIn(account, token, now + lifetime)


# --- managing users -------------------------------------------------------------------------


def list_users(database: Database) -> list[UserAccount]:
    with database.read_sessions() as session:
        return list(session.scalars(select(UserAccount).order_by(UserAccount.id)))


def users_page(database: Database, limit: int, offset: int) -> tuple[list[UserAccount], int]:
    """One page of the users, by id, and how many there are."""
    with database.read_sessions() as session:
        return page_of(session, select(UserAccount).order_by(UserAccount.id), limit, offset, scalars=True)


def get_user(database: Database, user_id: str) -> UserAccount:
    with database.read_sessions() as session:
        account = get_or_not_found(session, UserAccount, user_id, "user")
    return account


def create_user(
    database: Database, user_id: str, name: str, role: str, password: str, now: datetime | None = None
) -> UserAccount:
    """A new active user (the caller has checked the password policy); 409 if the id is taken."""
    if role not in ALL_ROLES:
        raise ValueError(f"unknown role {role!r}")
    now = now or utcnow()
    account = UserAccount(
        id=user_id,
        name=name,
        role=role,
        password_hash=hash_password(password),
        active=True,
        failed_sign_ins=0,
        created_at=now,
        password_changed_at=now,
    )
    with database.sessions() as session:
        session.add(account)
        try:
            session.commit()
        except IntegrityError:
            raise Conflict(f"There is already a user {user_id}.") from None
    return account


def update_user(
    database: Database,
    user_id: str,
    *,
    name: str | None = None,
    role: str | None = None,
    active: bool | None = None,
    password: str | None = None,
    now: datetime | None = None,
    keep_token: str | None = None,
) -> UserAccount:
    """Change what is given. Deactivating or a new password revokes their tokens (but ``keep_token``).

    Enabling also lifts a sign-in lock. The last active admin can be neither demoted nor disabled.
    """
    if role is not None and role not in ALL_ROLES:
        raise ValueError(f"unknown role {role!r}")
    now = now or utcnow()
    with database.sessions() as session:
        account = get_or_not_found(session, UserAccount, user_id, "user")
        losing_admin = account.role == "admin" and account.active and (role not in (None, "admin") or active is False)
        if losing_admin and _other_active_admins(session, user_id) == 0:
            raise Conflict(f"{user_id} is the last active admin: make another admin first.")
        if name is not None:
            account.name = name
        if role is not None:
            account.role = role
        if active is True:
            account.active = True
            account.failed_sign_ins, account.next_attempt_at, account.locked_until = 0, None, None
        if active is False:
            account.active = False
            revoke_tokens_of(session, user_id, now)
        if password is not None:
            account.password_hash = hash_password(password)
            account.password_changed_at = now
            account.failed_sign_ins, account.next_attempt_at, account.locked_until = 0, None, None
            revoke_tokens_of(session, user_id, now, keep=token_digest(keep_token) if keep_token else None)
        session.commit()
    return account


def set_preferences(
    database: Database,
    user_id: str,
    *,
    language: str | None,
    time_zone: str | None,
    phone_region: str | None = None,
) -> UserAccount:
    """The user's console language, time zone and the country of numbers typed without a country
    code (None: follow the browser and the center)."""
    with database.sessions() as session:
        account = get_or_not_found(session, UserAccount, user_id, "user")
        account.language, account.time_zone, account.phone_region = language, time_zone, phone_region
        session.commit()
    return account


def _other_active_admins(session, user_id: str) -> int:
    query = select(func.count()).where(
        UserAccount.role == "admin", UserAccount.active.is_(True), UserAccount.id != user_id
    )
    return session.scalar(query.select_from(UserAccount))


# --- agents are known to call routing -------------------------------------------------------


def register_agent(upstreams: Upstreams, user_id: str, name: str, acting: User | None = None) -> bool:
    """Make sure call routing knows agent ``user_id``; whether it now does.

    Call routing's ``POST /agents`` also updates an existing agent (and would reset their skills
    to none), so an agent it already has is left as it is.
    """
    try:
        known = upstreams.call("callrouting", "GET", f"/agents/{quote(user_id, safe='')}", user=acting)
        if known.status_code == 200:
            return True
        if known.status_code != 404:
            log.warning("agent lookup refused", extra={"agent_id": user_id, "status": known.status_code})
            return False
        answer = upstreams.call("callrouting", "POST", "/agents", user=acting, json={"id": user_id, "name": name})
    except UpstreamUnavailable as error:
        log.warning("agent not registered", extra={"agent_id": user_id, "reason": error.reason})
        return False
    if answer.status_code != 200:
        log.warning("agent registration refused", extra={"agent_id": user_id, "status": answer.status_code})
    return answer.status_code == 200


# --- the first admin ------------------------------------------------------------------------


def ensure_first_admin(database: Database, out: TextIO, settings: Settings) -> str | None:
    """With no users at all, create the admin ``GATEWAY_ADMIN_USER`` ("admin"); their id, or None.

    The password is ``GATEWAY_ADMIN_PASSWORD``, or a generated one printed to ``out``: once,
    since from then on there is a user. Both are the gateway's ``settings`` options. Several
    processes may race here; one creates the admin.
    """
    with database.read_sessions() as session:
        if session.scalar(select(func.count()).select_from(UserAccount)):
            return None
    user_id = settings.option("GATEWAY_ADMIN_USER") or "admin"
    password = settings.option("GATEWAY_ADMIN_PASSWORD") or ""
    generated = not password
    if generated:
        password = generated_password()
    elif problems := password_problems(user_id, password):
        raise ValueError("GATEWAY_ADMIN_PASSWORD: " + " ".join(problems))
    try:
        create_user(database, user_id, "Administrator", "admin", password)
    except Conflict:
        return None  # another process made it first
    if generated:
        print(f"first admin: {user_id} / {password} — change it (it is not shown again)", file=out)
    else:
        print(f"first admin: {user_id} (password from GATEWAY_ADMIN_PASSWORD)", file=out)
    return user_id
