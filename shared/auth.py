"""Who is making a request, and whether they may.

Agents, supervisors and admins sign in at the gateway (``services/gateway/users.py``). The
gateway then calls a service with an *internal token* in ``X-Internal-Token``: the user's id
and role, signed with ``INTERNAL_AUTH_SECRET`` (itsdangerous, HMAC-SHA256, timestamped, so a
token lives ``INTERNAL_TOKEN_MAX_AGE`` seconds). A service believes nothing else: a request
without a valid token is 401, except on views marked ``@public`` (health checks, and the phone
webhooks and survey links, which carry signatures of their own).

Each app lists its :class:`AccessRule` s: which role a route needs (roles are ranked, agent <
supervisor < admin) and, for agents, which URL argument must be their own id. Every rule-less
route needs an agent. Service code asks ``acting_user()`` and never reads headers itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import Flask, g, has_request_context, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.exceptions import Forbidden

from shared.problems import problem

ROLES = ("agent", "supervisor", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
# A duty role stands beside the ranks: its holder ranks as the role named here for every other
# route, and rules naming the duty are met by it and by admins only. ``privacy`` answers customers'
# requests to see or erase their data (services/*/privacy.py).
DUTY_ROLES = {"privacy": "agent"}
ALL_ROLES = (*ROLES, *DUTY_ROLES)
INTERNAL_TOKEN_HEADER = "X-Internal-Token"  # noqa: S105 - a header name
_INTERNAL_TOKEN_ENVIRON = "HTTP_X_INTERNAL_TOKEN"  # noqa: S105 - a header name
_SALT = "callcenter.internal.v1"


@dataclass(frozen=True)
class User:
    id: str | None
    role: str | None

    def has_role(self, role: str) -> bool:
        if role in DUTY_ROLES:
            return self.role in (role, "admin")
        rank = _RANK.get(DUTY_ROLES.get(self.role, self.role))
        return rank is not None and rank >= _RANK[role]

    @property
    def acts_only_for_self(self) -> bool:
        """Agents (and duty roles ranked as agents) may act only as themselves."""
        return DUTY_ROLES.get(self.role, self.role) == "agent"


ANONYMOUS = User(None, None)


def acting_user() -> User:
    """The signed-in user this request acts for (anonymous outside a request or on public views)."""
    if not has_request_context():
        return ANONYMOUS
    return g.get("user", ANONYMOUS)


def ensure_acting_for(agent_id: str | None) -> None:
    """An agent may act only as themselves (403 otherwise); supervisors and admins for anyone."""
    user = acting_user()
    if user.acts_only_for_self and agent_id != user.id:
        raise Forbidden("An agent may only act for themselves here.")


def acting_agent(named: str | None) -> str | None:
    """The agent a write is made in the name of (a survey response, a link, an outcome ...).

    An agent acts as themselves: naming nobody means themselves, naming someone else is 403.
    A supervisor or admin may act for the agent they name (or for none).
    """
    user = acting_user()
    if user.role == "agent":
        if named is not None and named != user.id:
            raise Forbidden(f"An agent acts only in their own name; you are {user.id}, not {named}.")
        return user.id
    return named


# --- the internal token -------------------------------------------------------------------


class InternalTokens:
    """Signs and checks the gateway's per-request token; one instance per secret."""

    def __init__(self, secret: str, max_age: float = 60.0):
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age = max_age

    def sign(self, user: User) -> str:
        return self._serializer.dumps([user.id, user.role])

    def verify(self, token: str) -> User | None:
        try:
            user_id, role = self._serializer.loads(token, max_age=self.max_age)
        except (SignatureExpired, BadSignature, ValueError, TypeError):
            return None
        if role not in ALL_ROLES or not isinstance(user_id, str) or not user_id:
            return None
        return User(user_id, role)

    def headers(self, user: User) -> dict[str, str]:
        return {INTERNAL_TOKEN_HEADER: self.sign(user)}


def internal_token_authenticator(tokens: InternalTokens) -> Callable[[], User | None]:
    """How a service (not the gateway) learns who calls: only from a valid internal token."""

    def authenticate() -> User | None:
        token = request.environ.get(_INTERNAL_TOKEN_ENVIRON)
        return tokens.verify(token) if token else None

    return authenticate


# --- which routes need whom ---------------------------------------------------------------


def public(view):
    """Mark a view as reachable without a signed-in user (it must check something else)."""
    view.public = True
    return view


def is_public(view) -> bool:
    return bool(getattr(view, "public", False) or getattr(getattr(view, "view_class", None), "public", False))


@dataclass(frozen=True)
class AccessRule:
    """``role`` is needed for ``methods`` on the URL rule ``rule`` (exact, or a prefix ending in ``*``).

    ``own``: the URL argument that must equal an agent's own id (supervisors act for anyone).
    ``also``: roles that may pass besides (a duty role on a supervisor's route).
    """

    rule: str
    role: str
    methods: frozenset[str] = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
    own: str | None = None
    also: tuple[str, ...] = ()

    def matches(self, method: str, rule: str) -> bool:
        if method not in self.methods:
            return False
        if self.rule.endswith("*"):
            return rule.startswith(self.rule[:-1])
        return rule == self.rule


def rule(path: str, role: str, *methods: str, own: str | None = None, also: tuple[str, ...] = ()) -> AccessRule:
    return AccessRule(path, role, frozenset(methods) if methods else AccessRule.methods, own, also)


WRITES = ("POST", "PUT", "PATCH", "DELETE")


class AccessControl:
    """Checks every request of an app before any other work (installed by ``shared.web``)."""

    def __init__(
        self,
        app: Flask,
        authenticate: Callable[[], User | None],
        rules: Iterable[AccessRule] = (),
        scrape_token: str | None = None,
        denied: Callable[[object, int, str], object | None] | None = None,
    ):
        self.app = app
        # An app may answer a refusal its own way for some views (the console's pages redirect
        # to the sign-in page): ``denied(view, status, detail)`` returns that answer, or None.
        self.denied = denied
        self.authenticate = authenticate
        self.rules = tuple(rules)
        for each in self.rules:
            if each.role not in ALL_ROLES or not set(each.also) <= set(ALL_ROLES):
                raise ValueError(f"unknown role {each.role!r} in access rule {each.rule}")
        self.scrape_token = scrape_token.encode() if scrape_token else None

    def required_role(self, method: str, url_rule: str) -> AccessRule | None:
        for each in self.rules:
            if each.matches(method, url_rule):
                return each
        return None

    def check(self):
        """None to go on, or the 401/403 problem answer."""
        current = request._get_current_object()
        url_rule = current.url_rule
        if url_rule is None:
            return None  # no such route: Flask answers 404/405 itself
        view = self.app.view_functions.get(current.endpoint)
        if view is None or is_public(view):
            return None
        if url_rule.rule == "/metrics" and self._scraper():
            return None
        user = self.authenticate()
        if user is None:
            if self.denied and (own := self.denied(view, 401, "Sign in first.")) is not None:
                return own
            answer = problem(401, "Unauthorized", "Sign in first: this route needs a signed-in user.")
            answer.headers["WWW-Authenticate"] = 'Bearer realm="callcenter"'
            return answer
        g.user = user
        method = "GET" if current.method in ("HEAD", "OPTIONS") else current.method
        needed = self.required_role(method, url_rule.rule)
        role = needed.role if needed else "agent"
        if not (user.has_role(role) or (needed and user.role in needed.also)):
            detail = f"This needs the {role} role; you are signed in as {user.role}."
            if self.denied and (own := self.denied(view, 403, detail)) is not None:
                return own
            return problem(403, "Forbidden", detail)
        if needed and needed.own and user.acts_only_for_self:
            if (current.view_args or {}).get(needed.own) != user.id:
                return problem(403, "Forbidden", "An agent may only act for themselves here.")
        return None

    def _scraper(self) -> bool:
        # Prometheus scrapes /metrics with `authorization: {credentials: METRICS_TOKEN}`.
        if self.scrape_token is None:
            return False
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), self.scrape_token)
