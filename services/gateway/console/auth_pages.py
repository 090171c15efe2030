"""Signing in and out of the console, and the home page that sends each role to its screen."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, make_response, redirect, request

from shared.auth import acting_user, public

from .. import users
from ..auth_api import end_session, now, policy, set_session_cookie
from .base import console, page, render
from .i18n import _

ACCESS: list = []
HOME_BY_ROLE = {"agent": "/desk", "supervisor": "/dashboard", "admin": "/dashboard"}


def _safe_next(target: str | None, fallback: str = "/") -> str:
    """Only a path on this site: never an open redirect to somewhere else."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    return target


def _same_origin() -> bool:
    """A sign-in form posted from another site (login CSRF) is refused; browsers send Origin on POST."""
    origin = request.headers.get("Origin")
    return origin is None or origin == request.host_url.rstrip("/")


@console.route("/sign-in", methods=["GET"])
@public
def sign_in_page():
    return render("console/sign_in.html", next=_safe_next(request.args.get("next")), message=None, user_id="")


@console.route("/sign-in", methods=["POST"])
@public  # the password is the credential
def sign_in_form():
    form = request.form
    target = _safe_next(form.get("next"))
    user_id, password = form.get("user_id", "").strip(), form.get("password", "")
    if not _same_origin():
        return render(
            "console/sign_in.html",
            403,
            next=target,
            user_id=user_id[:64],
            message=_("Sign in from this site's own page."),
        )
    if not user_id or not password or len(user_id) > 64 or len(password) > users.MAX_PASSWORD_LENGTH:
        return render(
            "console/sign_in.html",
            400,
            next=target,
            user_id=user_id[:64],
            message=_("Enter your user id and password."),
        )
    at = now()
    try:
        signed_in = users.sign_in(current_app.extensions["database"], user_id, password, "session", policy(), at)
    except users.SignInThrottled as throttled:
        answer = render(
            "console/sign_in.html",
            429,
            next=target,
            user_id=user_id[:64],
            message=_("Too many failed sign-ins: try again in %(seconds)s s.", seconds=throttled.retry_after),
        )
        answer.headers["Retry-After"] = str(throttled.retry_after)
        return answer
    if signed_in is None:
        return render(
            "console/sign_in.html", 401, next=target, user_id=user_id[:64], message=_("Wrong user id or password.")
        )
    set_session_cookie(signed_in, persistent=form.get("remember") == "on", at=at)
    if target == "/":
        target = HOME_BY_ROLE.get(signed_in.account.role, "/desk")
    answer = redirect(target, 303)
    answer.headers["Cache-Control"] = "no-store"
    return answer


@console.route("/sign-out", methods=["POST"])
@page
def sign_out():
    end_session()
    answer = make_response("", 204)
    answer.headers["HX-Redirect"] = "/sign-in"
    return answer


@console.route("/")
@page
def home():
    return redirect(HOME_BY_ROLE.get(acting_user().role, "/desk"), 303)
