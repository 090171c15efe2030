"""Signing in at the gateway: console cookies with CSRF, bearer tokens, throttling, sign-out, expiry.

The gateway app runs alone on its migrated database (no service behind it is needed here).
Throttling waits are seconds to minutes, so the tests give the app a clock they move
(``app.extensions["clock"]``) instead of sleeping.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from services.gateway import users
from services.gateway.app import create_app as create_gateway
from services.gateway.models import UserAccount
from shared.events import isoformat_utc

PASSWORD = "correct horse battery staple"


class MovableClock:
    def __init__(self):
        self.now = users.utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def gateway(settings_factory):
    settings, _database = settings_factory("gateway")
    app = create_gateway(settings)
    app.extensions["clock"] = MovableClock()
    return app


def make_user(app, user_id: str, role: str = "agent", password: str = PASSWORD) -> None:
    users.create_user(app.extensions["database"], user_id, user_id.title(), role, password)


def sign_in(client, user_id: str, password: str = PASSWORD, **extra):
    return client.post("/auth/sign-in", json={"user_id": user_id, "password": password, **extra})


def account(app, user_id: str) -> UserAccount:
    return users.get_user(app.extensions["database"], user_id)


def without_request_details(body: dict) -> dict:
    return {key: value for key, value in body.items() if key not in ("request_id", "instance")}


# --- signing in -------------------------------------------------------------------------------


def test_console_sign_in_sets_an_http_only_lax_cookie_and_answers_the_user_and_csrf_token(gateway):
    make_user(gateway, "agent-7")
    client = gateway.test_client()

    answer = sign_in(client, "agent-7")

    assert answer.status_code == 200
    assert answer.json["user"] == {"id": "agent-7", "name": "Agent-7", "role": "agent"}
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{users.SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http, SESSION_COOKIE_SECURE unset
    assert "Max-Age" not in cookie  # not remembered: gone when the browser closes
    assert answer.headers["Cache-Control"] == "no-store"
    clock = gateway.extensions["clock"]
    assert answer.json["expires_at"] == isoformat_utc(clock.now + timedelta(hours=12))
    me = client.get("/auth/me")
    assert me.status_code == 200
    assert me.json == {"user": answer.json["user"], "via": "cookie", "csrf_token": answer.json["csrf_token"]}


def test_remembered_console_sign_in_keeps_the_cookie_for_the_session_lifetime(gateway):
    make_user(gateway, "agent-7")

    answer = sign_in(gateway.test_client(), "agent-7", remember=True)

    assert "Max-Age=43200" in answer.headers["Set-Cookie"]


def test_console_sign_in_over_https_sets_a_secure_cookie(gateway):
    make_user(gateway, "agent-7")
    client = gateway.test_client()

    answer = client.post(
        "/auth/sign-in", json={"user_id": "agent-7", "password": PASSWORD}, base_url="https://gateway.example"
    )

    assert answer.status_code == 200
    assert "Secure" in answer.headers["Set-Cookie"]


def test_api_sign_in_answers_a_bearer_token_and_sets_no_cookie(gateway):
    make_user(gateway, "crm-sync", role="supervisor")
    client = gateway.test_client()

    answer = sign_in(client, "crm-sync", kind="api")

    assert answer.status_code == 200
    assert set(answer.json) == {"token", "expires_at"}
    assert "Set-Cookie" not in answer.headers
    clock = gateway.extensions["clock"]
    assert answer.json["expires_at"] == isoformat_utc(clock.now + timedelta(days=30))
    me = gateway.test_client().get("/auth/me", headers={"Authorization": f"Bearer {answer.json['token']}"})
    assert me.status_code == 200
    assert me.json == {"user": {"id": "crm-sync", "name": "Crm-Sync", "role": "supervisor"}, "via": "bearer"}


def test_wrong_password_is_401(gateway):
    make_user(gateway, "agent-7")

    answer = sign_in(gateway.test_client(), "agent-7", "not the password at all")

    assert answer.status_code == 401
    assert answer.content_type == "application/problem+json"
    assert "Set-Cookie" not in answer.headers


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(gateway):
    make_user(gateway, "agent-7")
    client = gateway.test_client()

    wrong_password = sign_in(client, "agent-7", "not the password at all")
    unknown_user = sign_in(client, "agent-8", "not the password at all")

    assert unknown_user.status_code == wrong_password.status_code == 401
    assert without_request_details(unknown_user.json) == without_request_details(wrong_password.json)


def test_disabled_user_cannot_sign_in_and_gets_the_same_answer(gateway):
    make_user(gateway, "agent-7")
    users.update_user(gateway.extensions["database"], "agent-7", active=False)
    client = gateway.test_client()

    answer = sign_in(client, "agent-7")

    assert answer.status_code == 401
    assert answer.json["detail"] == sign_in(client, "nobody").json["detail"]


def test_sign_in_with_missing_fields_is_422_with_field_errors(gateway):
    answer = gateway.test_client().post("/auth/sign-in", json={"user_id": "agent-7", "kind": "cookie"})

    assert answer.status_code == 422
    assert {error["field"] for error in answer.json["errors"]} == {"password", "kind"}


# --- throttling -------------------------------------------------------------------------------


def test_after_three_failures_each_attempt_waits_twice_as_long_answering_429_with_retry_after(gateway):
    make_user(gateway, "agent-7")
    clock = gateway.extensions["clock"]
    client = gateway.test_client()
    for _ in range(3):
        assert sign_in(client, "agent-7", "wrong password!").status_code == 401

    for failures, wait in ((3, 1), (4, 2), (5, 4), (6, 8)):
        early = sign_in(client, "agent-7")  # the right password, but too soon: not even checked
        assert early.status_code == 429, failures
        assert early.headers["Retry-After"] == str(wait)
        assert early.json["retry_after"] == wait
        clock.advance(wait - 0.5)
        assert sign_in(client, "agent-7").status_code == 429
        clock.advance(0.5)
        assert sign_in(client, "agent-7", "wrong password!").status_code == 401
    assert account(gateway, "agent-7").failed_sign_ins == 7


def test_ten_failures_lock_the_account_for_fifteen_minutes(gateway):
    make_user(gateway, "agent-7")
    clock = gateway.extensions["clock"]
    client = gateway.test_client()
    for failures in range(1, 11):
        assert sign_in(client, "agent-7", "wrong password!").status_code == 401
        clock.advance(2 ** max(0, failures - 3))  # each wait, just sat out

    locked = sign_in(client, "agent-7")

    assert locked.status_code == 429
    assert "locked" in locked.json["detail"]
    waited = 2 ** (10 - 3)  # the clock moved on past the lock's start by the last advance
    assert locked.headers["Retry-After"] == str(15 * 60 - waited)
    clock.advance(15 * 60 - waited - 1)
    assert sign_in(client, "agent-7").status_code == 429
    clock.advance(1)
    assert sign_in(client, "agent-7").status_code == 200
    assert account(gateway, "agent-7").failed_sign_ins == 0
    assert account(gateway, "agent-7").locked_until is None


def test_a_successful_sign_in_resets_the_failure_count(gateway):
    make_user(gateway, "agent-7")
    clock = gateway.extensions["clock"]
    client = gateway.test_client()
    for _ in range(3):
        sign_in(client, "agent-7", "wrong password!")
    clock.advance(1)

    assert sign_in(client, "agent-7").status_code == 200

    assert account(gateway, "agent-7").failed_sign_ins == 0
    for _ in range(3):  # three fresh failures before the next wait
        assert sign_in(client, "agent-7", "wrong password!").status_code == 401
    assert sign_in(client, "agent-7", "wrong password!").status_code == 429


def test_concurrent_failed_sign_ins_are_each_counted_once_and_none_passes_the_wait(gateway):
    # As from several gunicorn workers at once: each attempt is counted in its own conditional
    # UPDATE before its password is checked, so only the first three are checked at all.
    make_user(gateway, "agent-7")
    answers: list[int] = []
    start = threading.Barrier(12)

    def attempt():
        client = gateway.test_client()
        start.wait()
        answers.append(sign_in(client, "agent-7", "wrong password!").status_code)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(answers) == [401] * 3 + [429] * 9
    assert account(gateway, "agent-7").failed_sign_ins == 3


# --- tokens: sign-out, expiry, forgery --------------------------------------------------------


def test_sign_out_revokes_the_bearer_token(gateway):
    make_user(gateway, "agent-7")
    token = sign_in(gateway.test_client(), "agent-7", kind="api").json["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    client = gateway.test_client()

    assert client.post("/auth/sign-out", headers=bearer).status_code == 204

    assert client.get("/auth/me", headers=bearer).status_code == 401


def test_sign_out_revokes_the_console_session_and_clears_its_cookie(gateway):
    make_user(gateway, "agent-7")
    client = gateway.test_client()
    signed_in = sign_in(client, "agent-7")
    session_token = client.get_cookie(users.SESSION_COOKIE).value

    answer = client.post("/auth/sign-out", headers={users.CSRF_HEADER: signed_in.json["csrf_token"]})

    assert answer.status_code == 204
    assert client.get_cookie(users.SESSION_COOKIE) is None
    client.set_cookie(users.SESSION_COOKIE, session_token)  # the old cookie, replayed
    assert client.get("/auth/me").status_code == 401


def test_an_expired_token_is_401(gateway):
    make_user(gateway, "agent-7")
    database = gateway.extensions["database"]
    with database.sessions() as session:
        token = users.issue_token(
            session, "agent-7", "api", timedelta(hours=1), now=users.utcnow() - timedelta(hours=1, seconds=1)
        )
        session.commit()

    answer = gateway.test_client().get("/auth/me", headers={"Authorization": f"Bearer {token}"})

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_forged_token_is_401(gateway):
    make_user(gateway, "agent-7")
    real = sign_in(gateway.test_client(), "agent-7", kind="api").json["token"]
    client = gateway.test_client()

    for forged in (users.generated_password(), real[:-1] + ("A" if real[-1] != "A" else "B"), "", "x" * 5000):
        assert client.get("/auth/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401, forged
    client.set_cookie(users.SESSION_COOKIE, real[::-1])
    assert client.get("/auth/me").status_code == 401


# --- CSRF on cookie writes --------------------------------------------------------------------


def test_a_cookie_authenticated_write_without_the_csrf_token_is_403(gateway):
    make_user(gateway, "agent-7")
    client = gateway.test_client()
    sign_in(client, "agent-7")

    missing = client.post("/auth/tokens", json={"label": "script"})
    wrong = client.post("/auth/tokens", json={"label": "script"}, headers={users.CSRF_HEADER: "0" * 64})

    assert missing.status_code == wrong.status_code == 403
    assert missing.content_type == "application/problem+json"
    assert users.CSRF_HEADER in missing.json["detail"]


def test_a_cookie_authenticated_write_with_the_csrf_token_is_done(gateway):
    make_user(gateway, "agent-7")
    client = gateway.test_client()
    csrf = sign_in(client, "agent-7").json["csrf_token"]

    answer = client.post("/auth/tokens", json={"label": "script"}, headers={users.CSRF_HEADER: csrf})

    assert answer.status_code == 201


def test_a_bearer_write_needs_no_csrf_token(gateway):
    make_user(gateway, "agent-7")
    token = sign_in(gateway.test_client(), "agent-7", kind="api").json["token"]

    answer = gateway.test_client().post(
        "/auth/tokens", json={"label": "script"}, headers={"Authorization": f"Bearer {token}"}
    )

    assert answer.status_code == 201


# --- own API tokens and password --------------------------------------------------------------


def test_a_signed_in_user_makes_lists_and_revokes_their_own_api_token(gateway):
    make_user(gateway, "agent-7")
    make_user(gateway, "agent-8")
    own = {"Authorization": f"Bearer {sign_in(gateway.test_client(), 'agent-7', kind='api').json['token']}"}
    other = {"Authorization": f"Bearer {sign_in(gateway.test_client(), 'agent-8', kind='api').json['token']}"}
    client = gateway.test_client()

    made = client.post("/auth/tokens", json={"label": "dialer script", "days": 2}, headers=own)

    assert made.status_code == 201
    assert made.json["label"] == "dialer script"
    clock = gateway.extensions["clock"]
    assert made.json["expires_at"] == isoformat_utc(clock.now + timedelta(days=2))
    script = {"Authorization": f"Bearer {made.json['token']}"}
    assert client.get("/auth/me", headers=script).json["user"]["id"] == "agent-7"
    listed = client.get("/auth/tokens", headers=own).json
    assert made.json["id"] in {token["id"] for token in listed["items"]}
    assert listed["total"] == len(listed["items"]) == 2  # the sign-in's token and the script's
    assert "token" not in listed["items"][0]
    assert client.delete(f"/auth/tokens/{made.json['id']}", headers=other).status_code == 404  # not theirs
    assert client.delete(f"/auth/tokens/{made.json['id']}", headers=own).status_code == 204
    assert client.get("/auth/me", headers=script).status_code == 401


def test_changing_ones_own_password_keeps_this_session_and_revokes_the_others(gateway):
    make_user(gateway, "agent-7")
    this = {"Authorization": f"Bearer {sign_in(gateway.test_client(), 'agent-7', kind='api').json['token']}"}
    other = {"Authorization": f"Bearer {sign_in(gateway.test_client(), 'agent-7', kind='api').json['token']}"}
    client = gateway.test_client()
    new_password = "a brand new passphrase"

    answer = client.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": new_password}, headers=this
    )

    assert answer.status_code == 204
    assert client.get("/auth/me", headers=this).status_code == 200
    assert client.get("/auth/me", headers=other).status_code == 401
    assert sign_in(client, "agent-7").status_code == 401
    assert sign_in(client, "agent-7", new_password).status_code == 200


def test_changing_ones_own_password_needs_the_current_one_and_a_good_new_one(gateway):
    make_user(gateway, "agent-7")
    bearer = {"Authorization": f"Bearer {sign_in(gateway.test_client(), 'agent-7', kind='api').json['token']}"}
    client = gateway.test_client()

    wrong_current = client.post(
        "/auth/password",
        json={"current_password": "a wrong password", "new_password": "a brand new one!"},
        headers=bearer,
    )
    too_short = client.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=bearer
    )
    is_the_id = client.post(
        "/auth/password", json={"current_password": PASSWORD, "new_password": "AGENT-7"}, headers=bearer
    )

    assert wrong_current.status_code == too_short.status_code == is_the_id.status_code == 422
    assert [error["field"] for error in wrong_current.json["errors"]] == ["current_password"]
    assert [error["field"] for error in too_short.json["errors"]] == ["new_password"]
    assert "not be the user id" in str(is_the_id.json["errors"])
    assert account(gateway, "agent-7").failed_sign_ins == 1  # the wrong current password counts
