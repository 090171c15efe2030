"""Sign-in, sign-out, tokens and user management.

``POST /auth/sign-in`` gives the console an HttpOnly cookie (and the CSRF token it must echo in
``X-CSRF-Token`` on every write) or, with ``"kind": "api"``, a bearer token. A wrong user id and
a wrong password get the same 401. Too many failures in a row answer 429 with ``Retry-After``
(``users.check_password``). Admins manage users under ``/users``; an agent's user id is their
agent id in call routing, where a new agent is registered.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import after_this_request, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.auth import ALL_ROLES, acting_user, public, rule
from shared.errors import Invalid
from shared.problems import problem
from shared.schemas import Timestamp, page, page_args, page_schema

from . import users
from .upstream import upstreams

auth = Blueprint("auth", __name__, description="Sign-in, sign-out, tokens and user management.")

# Which role these routes need beyond an agent (shared.auth rules; collected by app.py).
ACCESS = [rule("/users*", "admin")]


@auth.record_once
def _warm_decoy_hash(_state):
    users.password_matches(users._decoy_hash(), "")  # so the first unknown user is not slower than the rest


def now() -> datetime:
    """The time, from ``app.extensions["clock"]`` when a test set one (the throttle's waits are seconds)."""
    clock = current_app.extensions.get("clock")
    return clock() if clock is not None else users.utcnow()


def policy() -> users.SignInPolicy:
    return users.SignInPolicy.from_settings(current_app.extensions["settings"])


def csrf_token(session_token: str) -> str:
    return users.csrf_token_for(session_token, current_app.extensions["settings"].internal_auth_secret or "")


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"  # answers carrying tokens must not be cached
    return response


# --- schemas ----------------------------------------------------------------------------------


def password_field(**kwargs) -> fields.String:
    return fields.String(validate=validate.Length(max=users.MAX_PASSWORD_LENGTH), **kwargs)


class SignInIn(Schema):
    user_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = password_field(required=True)
    kind = fields.String(
        load_default="session",
        validate=validate.OneOf(("session", "api")),
        metadata={"description": "session: the console's cookie; api: a bearer token in the answer"},
    )
    remember = fields.Boolean(
        load_default=False,
        metadata={"description": "Keep the session cookie after the browser closes (until the session expires)"},
    )
    label = fields.String(validate=validate.Length(min=1, max=200), metadata={"description": "API sign-ins"})


class UserBrief(Schema):
    id = fields.String()
    name = fields.String()
    role = fields.String()


class SignInOut(Schema):
    user = fields.Nested(UserBrief, metadata={"description": "console sessions"})
    csrf_token = fields.String(metadata={"description": "console sessions: send it as X-CSRF-Token on writes"})
    token = fields.String(metadata={"description": "API sign-ins: send it as Authorization: Bearer"})
    expires_at = Timestamp()


class MeOut(Schema):
    user = fields.Nested(UserBrief)
    via = fields.String(metadata={"description": "cookie (the console) or bearer"})
    csrf_token = fields.String(metadata={"description": "cookie sessions only"})


class TokenIn(Schema):
    label = fields.String(required=True, validate=validate.Length(min=1, max=200))
    days = fields.Float(validate=validate.Range(min=0.01, max=366), metadata={"description": "default API_TOKEN_DAYS"})


class TokenOut(Schema):
    id = fields.String(attribute="token_hash")
    kind = fields.String()
    label = fields.String(allow_none=True)
    created_at = Timestamp()
    expires_at = Timestamp()


class NewTokenOut(Schema):
    id = fields.String()
    token = fields.String(metadata={"description": "shown once; send it as Authorization: Bearer"})
    label = fields.String()
    expires_at = Timestamp()


class PasswordChangeIn(Schema):
    current_password = password_field(required=True)
    new_password = password_field(required=True)


def _check_policy(user_id: str, password: str, field: str) -> None:
    if problems := users.password_problems(user_id, password):
        raise ValidationError({field: problems})


class UserIn(Schema):
    id = fields.String(
        required=True, validate=validate.Regexp(users.USER_ID_PATTERN, error="1-64 letters, digits or . _ @ : -")
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(required=True, validate=validate.OneOf(ALL_ROLES))
    password = password_field(required=True)

    @validates_schema
    def password_policy(self, data, **_kwargs):
        if "id" in data and "password" in data:
            _check_policy(data["id"], data["password"], "password")


class UserPatch(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    role = fields.String(validate=validate.OneOf(ALL_ROLES))
    active = fields.Boolean()
    password = password_field()


class UserOut(Schema):
    id = fields.String()
    name = fields.String()
    role = fields.String()
    active = fields.Boolean()
    created_at = Timestamp()
    password_changed_at = Timestamp()
    failed_sign_ins = fields.Integer(metadata={"description": "failed sign-ins in a row"})
    locked_until = Timestamp(allow_none=True)


TokenPage = page_schema(TokenOut, "TokenPage")
UserPage = page_schema(UserOut, "UserPage")
TokenListArgs = page_args(default=50, maximum=500, name="TokenListArgs")
UserListArgs = page_args(default=50, maximum=500, name="UserListArgs")


class UserChangedOut(UserOut):
    agent_registered = fields.Boolean(
        allow_none=True,
        metadata={"description": "agents: whether call routing now knows them (null for other roles)"},
    )


# --- signing in and out -----------------------------------------------------------------------


@auth.route("/auth/sign-in")
@public  # the password is the credential
class SignIn(MethodView):
    @auth.arguments(SignInIn)
    @auth.response(200, SignInOut)
    @auth.alt_response(401, description="Wrong user id or password (the same answer for both).")
    @auth.alt_response(429, description="Too many failed sign-ins: wait Retry-After seconds (also while locked).")
    def post(self, body):
        """Sign in: a console session (cookie + CSRF token) or an API token."""
        at = now()
        try:
            signed_in = users.sign_in(
                current_app.extensions["database"],
                body["user_id"],
                body["password"],
                body["kind"],
                policy(),
                at,
                label=body.get("label"),
            )
        except users.SignInThrottled as throttled:
            what = "locked after too many failed sign-ins" if throttled.locked else "slowed after failed sign-ins"
            answer = problem(
                429,
                "Too Many Requests",
                f"This account is {what}: try again in {throttled.retry_after} s.",
                retry_after=throttled.retry_after,
            )
            answer.headers["Retry-After"] = str(throttled.retry_after)
            return answer
        if signed_in is None:
            return problem(401, "Unauthorized", "Wrong user id or password.")
        after_this_request(_no_store)
        if body["kind"] == "api":
            return {"token": signed_in.token, "expires_at": signed_in.expires_at}
        set_session_cookie(signed_in, persistent=body["remember"], at=at)
        return {
            "user": signed_in.account,
            "csrf_token": csrf_token(signed_in.token),
            "expires_at": signed_in.expires_at,
        }


def set_session_cookie(signed_in: users.SignedIn, persistent: bool, at: datetime) -> None:
    secure = request.is_secure or current_app.extensions["settings"].option("SESSION_COOKIE_SECURE", "") in (
        "1",
        "true",
        "yes",
    )

    @after_this_request
    def set_cookie(response):
        response.set_cookie(
            users.SESSION_COOKIE,
            signed_in.token,
            max_age=int((signed_in.expires_at - at).total_seconds()) if persistent else None,
            httponly=True,
            secure=secure,
            samesite="Lax",
            path="/",
        )
        return response


@auth.route("/auth/sign-out")
class SignOut(MethodView):
    @auth.response(204)
    def post(self):
        """Sign out: the token presented (cookie or bearer) is revoked; the cookie is cleared."""
        end_session()


def end_session() -> None:
    """Revoke the token this request presents (cookie or bearer) and clear the session cookie."""
    _how, token = users.presented_token()
    users.revoke_token(current_app.extensions["database"], token, now())

    @after_this_request
    def clear_cookie(response):
        response.delete_cookie(users.SESSION_COOKIE, path="/", httponly=True, samesite="Lax")
        return response


@auth.route("/auth/me")
class Me(MethodView):
    @auth.response(200, MeOut)
    def get(self):
        """Who is signed in; for the console, the CSRF token again (e.g. after a reload)."""
        account = users.get_user(current_app.extensions["database"], acting_user().id)
        how, token = users.presented_token()
        answer = {"user": account, "via": how}
        if how == "cookie":
            answer["csrf_token"] = csrf_token(token)
        return answer


@auth.route("/auth/password")
class OwnPassword(MethodView):
    @auth.arguments(PasswordChangeIn)
    @auth.response(204)
    @auth.alt_response(429, description="Too many wrong current passwords: as for sign-in.")
    def post(self, body):
        """Change your own password. Your other sessions and tokens are revoked; this one stays."""
        me = acting_user().id
        _check_new_password(me, body["new_password"], "new_password")
        database = current_app.extensions["database"]
        at = now()
        try:
            # Throttled like a sign-in: a stolen session must not be a way to guess the password.
            account = users.check_password(database, me, body["current_password"], policy(), at)
        except users.SignInThrottled as throttled:
            answer = problem(429, "Too Many Requests", f"Try again in {throttled.retry_after} s.")
            answer.headers["Retry-After"] = str(throttled.retry_after)
            return answer
        if account is None:
            raise Invalid({"current_password": "This is not your current password."})
        _how, token = users.presented_token()
        users.update_user(database, me, password=body["new_password"], now=at, keep_token=token)


def _check_new_password(user_id: str, password: str, field: str) -> None:
    if problems := users.password_problems(user_id, password):
        raise Invalid({field: problems})


# --- API tokens -------------------------------------------------------------------------------


@auth.route("/auth/tokens")
class Tokens(MethodView):
    @auth.arguments(TokenListArgs, location="query")
    @auth.response(200, TokenPage)
    def get(self, args):
        """Your live sessions and API tokens (not the tokens themselves: only their ids), oldest first."""
        database = current_app.extensions["database"]
        items, total = users.live_tokens_page(database, acting_user().id, args["limit"], args["offset"], now())
        return page(items, total, args)

    @auth.arguments(TokenIn)
    @auth.response(201, NewTokenOut)
    def post(self, body):
        """A new API token for yourself, e.g. for a script; it is shown once."""
        at = now()
        lifetime = policy().lifetime("api")
        if "days" in body:
            lifetime = timedelta(days=body["days"])
        database = current_app.extensions["database"]
        with database.sessions() as session:
            token = users.issue_token(session, acting_user().id, "api", lifetime, label=body["label"], now=at)
            session.commit()
        after_this_request(_no_store)
        return {"id": users.token_digest(token), "token": token, "label": body["label"], "expires_at": at + lifetime}


@auth.route("/auth/tokens/<token_id>")
class TokenById(MethodView):
    @auth.response(204)
    def delete(self, token_id):
        """Revoke one of your own tokens by its id."""
        if not users.revoke_token_of(current_app.extensions["database"], acting_user().id, token_id, now()):
            abort(404, message=f"You have no live token {token_id}.")


# --- users (admins) ---------------------------------------------------------------------------


def _changed(account) -> dict:
    """The user as ``UserChangedOut`` shows them; an active agent is (re)registered in call routing."""
    answer = {name: getattr(account, name) for name in UserOut._declared_fields}
    registered = None
    if account.role == "agent" and account.active:
        registered = users.register_agent(upstreams(), account.id, account.name)
    return {**answer, "agent_registered": registered}


@auth.route("/users")
class Users(MethodView):
    @auth.arguments(UserListArgs, location="query")
    @auth.response(200, UserPage)
    def get(self, args):
        """Every user, by id."""
        items, total = users.users_page(current_app.extensions["database"], args["limit"], args["offset"])
        return page(items, total, args)

    @auth.arguments(UserIn)
    @auth.response(201, UserChangedOut)
    @auth.alt_response(409, description="The id is taken.")
    def post(self, body):
        """Create a user. An agent is registered in call routing too (``agent_registered`` says if that worked)."""
        account = users.create_user(
            current_app.extensions["database"], body["id"], body["name"], body["role"], body["password"], now()
        )
        # The user exists either way: call routing may be down; PATCH them (or their role) later to retry.
        return _changed(account)


@auth.route("/users/<user_id>")
class UserById(MethodView):
    @auth.response(200, UserOut)
    def get(self, user_id):
        return users.get_user(current_app.extensions["database"], user_id)

    @auth.arguments(UserPatch)
    @auth.response(200, UserChangedOut)
    @auth.alt_response(409, description="That would leave no active admin.")
    def patch(self, body, user_id):
        """Change a user's name, role, active flag or password; disabling or a new password revokes their tokens."""
        if "password" in body:
            _check_new_password(user_id, body["password"], "password")
        account = users.update_user(current_app.extensions["database"], user_id, now=now(), **body)
        return _changed(account)
